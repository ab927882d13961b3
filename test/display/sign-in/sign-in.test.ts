import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { SessionState } from "../../../agent/auth/session-state.ts";
import { openSignInDisplays } from "../../../agent/cli/display.ts";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { createLogger } from "../../../agent/pino-logger.ts";
import type { ButtonAction } from "../../../display/drivers/leds/button.ts";
import { TerminalSimulator } from "../../../display/drivers/terminal/sim.ts";
import { openButtons, startSignInDisplays } from "../../../display/sign-in.ts";
import type { GpioLineSimulator } from "../../../display/sim/gpio.ts";
import { createSimulatedDisplays } from "../../../display/simulated.ts";
import { displaysOf, flush } from "../configs.ts";
import { CODE, codeScreen, T0, URL } from "../samples.ts";

const silent = () => createLogger({ level: "silent", destination: { write: () => undefined } });

const issued: SessionState = {
  kind: "code-issued",
  profile: "default",
  userCode: CODE,
  verificationUri: URL,
  message: codeScreen.message ?? "",
  expiresAt: T0 + 900_000,
  intervalSeconds: 5,
  qrPayload: URL,
};

describe("openSignInDisplays", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "entratool-sign-in-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function open(configFile?: string) {
    const stderr = new TerminalSimulator({ isTTY: false });
    const displays = await openSignInDisplays({
      clock: new VirtualClock(T0, { auto: false }),
      logger: silent(),
      env: {},
      io: { stderr },
      ...(configFile === undefined ? {} : { configFile }),
    });
    return { stderr, displays };
  }

  test.each([
    ["without a configuration file", undefined],
    ["with a file that lists the terminal itself", [{ type: "terminal" }]],
    ["with a file that does not list it", [{ type: "png", file: "/nonexistent-dir/screen.png" }]],
  ])("%s: the prompt is shown once, and taken off on close", async (_name, displays) => {
    let file: string | undefined;
    if (displays !== undefined) {
      file = join(dir, "config.json");
      await writeFile(file, JSON.stringify({ displays }));
    }
    const { stderr, displays: signIn } = await open(file);
    signIn.onState(issued);
    signIn.onState({ ...issued, kind: "waiting", poll: { type: "pending" } });
    await signIn.close();
    expect(stderr.text.match(/Enter code: FZ2X8LQ3N/g)).toHaveLength(1);
  });

  test("a configuration file with a mistake is an E_CONFIG error naming it", async () => {
    const file = join(dir, "config.json");
    await writeFile(file, JSON.stringify({ displays: [{ type: "terminal", colour: 1 }] }));
    await expect(open(file)).rejects.toMatchObject({
      code: "E_CONFIG",
      message: `The configuration file ${file} has 1 error: displays[0].colour: unknown field.`,
    });
  });
});

describe("the displays of a sign-in", () => {
  test("the button's presses go to the listener; states become screens; close takes the code off", async () => {
    const clock = new VirtualClock(T0);
    // The LED pattern and the countdown ticker wait for the test; the drivers' short waits do not.
    clock.passiveSleepsFromMs = 400;
    const displays = displaysOf([{ type: "hd44780" }, { type: "leds", button: "GPIO27" }]);
    const sims = await createSimulatedDisplays(displays, { clock, logger: silent() });
    const buttons = await openButtons(displays, sims.input, clock, silent());
    const signIn = await startSignInDisplays(sims.set, buttons, clock);
    const presses: ButtonAction[] = [];
    const stop = signIn.onButton((action) => presses.push(action));

    signIn.onState(issued);
    await flush();
    await sims.set.settled();
    const lcd = sims.hardware.find((h) => h.type === "hd44780");
    expect(lcd?.type === "hd44780" && lcd.sim.lines()[0]).toBe("Code: FZ2X8LQ3N ");

    const leds = sims.hardware.find((h) => h.type === "leds");
    const button = leds?.type === "leds" ? (leds.sim.get("GPIO27") as GpioLineSimulator) : undefined;
    if (button === undefined) throw new Error("no simulated button");
    await button.press(200);
    await flush();
    expect(presses).toEqual(["new-code"]);

    stop();
    await signIn.close();
    expect(lcd?.type === "hd44780" && lcd.sim.lines().join("\n")).not.toContain(CODE);
    expect(button.closed).toBe(true);
    await sims.dispose();
  });
});
