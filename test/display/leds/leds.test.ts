import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { LedError, StatusLeds } from "../../../display/drivers/leds/driver.ts";
import { LED_PATTERNS } from "../../../display/drivers/leds/layout.ts";
import { SCREEN_KINDS, type Screen } from "../../../display/screens.ts";
import { GpioLineSimulator, GpioSimulatorError, type LevelChange } from "../../../display/sim/gpio.ts";

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const URL = "https://microsoft.com/devicelogin";
const code: Screen = {
  kind: "code",
  userCode: "FZ2X8LQ3N",
  verificationUri: URL,
  expiresAt: T0 + 900_000,
  qrPayload: URL,
};
const waiting: Screen = { ...code, kind: "waiting" };
const signedIn: Screen = { kind: "signed-in", username: "ada@contoso.com", expiresAt: T0 + 3_600_000 };

/** Let the pattern loop run its pending continuations (sleeps resolve on advance). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Moves virtual time `ms` forward in 50 ms steps (every pattern edge is a multiple of 50 ms). */
async function run(clock: VirtualClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    clock.advance(50);
    await settle();
  }
}

function rig(options: { error?: boolean; buzzer?: boolean; activeLow?: boolean } = {}) {
  const clock = new VirtualClock(T0);
  // Every sleep waits for `advance`, so the test decides how far time goes.
  clock.passiveSleepsFromMs = 0;
  const line = (name: string) => new GpioLineSimulator({ name, direction: "output", clock });
  const status = line("GPIO17");
  const error = options.error ? line("GPIO27") : undefined;
  const buzzer = options.buzzer ? line("GPIO22") : undefined;
  const leds = new StatusLeds({
    lines: { status, ...(error === undefined ? {} : { error }) },
    ...(buzzer === undefined ? {} : { buzzer }),
    clock,
    ...(options.activeLow === undefined ? {} : { activeLow: options.activeLow }),
  });
  return { clock, status, error, buzzer, leds };
}

/** The timeline relative to T0, as [ms, level] pairs, without the request's initial level. */
const rel = (timeline: readonly LevelChange[]): Array<[number, 0 | 1]> =>
  timeline.slice(1).map((c) => [c.at - T0, c.level]);

describe("StatusLeds", () => {
  test("code: slow blink, toggling every 500 ms at 50 %", async () => {
    const { clock, status, leds } = rig();
    await leds.show(code);
    await run(clock, 3000);
    expect(rel(status.timeline())).toEqual([
      [0, 1],
      [500, 0],
      [1000, 1],
      [1500, 0],
      [2000, 1],
      [2500, 0],
      [3000, 1],
    ]);
    await leds.close();
  });

  test("countdown ticks (waiting, same code) keep the blink's rhythm", async () => {
    const { clock, status, leds } = rig();
    await leds.show(code);
    await run(clock, 250);
    await leds.show(waiting);
    await run(clock, 850);
    expect(rel(status.timeline())).toEqual([
      [0, 1],
      [500, 0],
      [1000, 1],
    ]);
    expect(leds.pattern).toBe("slow-blink");
    await leds.close();
  });

  test("a new screen stops the old pattern at once", async () => {
    const { clock, status, leds } = rig();
    await leds.show(code);
    await run(clock, 700);
    await leds.show({ kind: "expired" });
    const at = clock.now() - T0;
    await run(clock, 5000);
    expect(rel(status.timeline())).toEqual([
      [0, 1],
      [500, 0],
    ]);
    expect(status.level).toBe(0);
    expect(at).toBe(700);
    expect(leds.pattern).toBe("off");
  });

  test("signed-in: solid on, no further writes", async () => {
    const { clock, status, leds } = rig();
    await leds.show(code);
    await run(clock, 200);
    await leds.show(signedIn);
    const writes = status.writes;
    await run(clock, 10_000);
    expect(status.level).toBe(1);
    expect(status.writes).toBe(writes);
    expect(rel(status.timeline())).toEqual([[0, 1]]);
    await leds.close();
  });

  test("starting: short blink; sign-in-needed: double blink", async () => {
    const a = rig();
    await a.leds.show({ kind: "starting" });
    await run(a.clock, 2000);
    expect(rel(a.status.timeline())).toEqual([
      [0, 1],
      [100, 0],
      [1000, 1],
      [1100, 0],
      [2000, 1],
    ]);
    await a.leds.close();

    const b = rig();
    await b.leds.show({ kind: "sign-in-needed", reason: "The refresh token expired." });
    await run(b.clock, 2000);
    expect(rel(b.status.timeline())).toEqual([
      [0, 1],
      [150, 0],
      [300, 1],
      [450, 0],
      [2000, 1],
    ]);
    await b.leds.close();
  });

  test("error states fast-blink the error LED, the status LED off", async () => {
    const { clock, status, error, leds } = rig({ error: true });
    await leds.show(code);
    await leds.show({ kind: "offline", message: "Cannot reach Microsoft Entra ID." });
    await run(clock, 400);
    expect(rel(error?.timeline() ?? [])).toEqual([
      [0, 1],
      [100, 0],
      [200, 1],
      [300, 0],
      [400, 1],
    ]);
    expect(status.level).toBe(0);
    await leds.close();
  });

  test("without an error LED, errors fast-blink the status LED", async () => {
    const { clock, status, leds } = rig();
    await leds.show({ kind: "error", code: "E_IDP", message: "Unexpected error." });
    await run(clock, 200);
    expect(rel(status.timeline())).toEqual([
      [0, 1],
      [100, 0],
      [200, 1],
    ]);
    await leds.close();
  });

  test("every screen kind has a pattern; expired and cancelled are dark", () => {
    expect(LED_PATTERNS.expired).toBe("off");
    expect(LED_PATTERNS.cancelled).toBe("off");
    expect(Object.keys(LED_PATTERNS).sort()).toEqual([...SCREEN_KINDS].sort());
  });

  test("buzzer: one beep for a new code, none for a tick, two on success", async () => {
    const { clock, buzzer, leds } = rig({ buzzer: true });
    await leds.show(code);
    await run(clock, 1000);
    await leds.show(waiting);
    await run(clock, 1000);
    await leds.show(signedIn);
    await run(clock, 1000);
    expect(rel(buzzer?.timeline() ?? [])).toEqual([
      [0, 1],
      [100, 0],
      [2000, 1],
      [2100, 0],
      [2200, 1],
      [2300, 0],
    ]);
    await leds.close();
  });

  test("activeLow inverts writes; close() leaves every LED dark and releases the lines", async () => {
    const { clock, status, leds } = rig({ activeLow: true });
    await leds.show(signedIn);
    expect(status.level).toBe(0);
    await run(clock, 100);
    await leds.close();
    expect(status.level).toBe(1);
    expect(status.closed).toBe(true);
    await leds.show(code);
    expect(status.closed).toBe(true);
  });

  test("a failing line: show() rejects with an LedError that says what to check", async () => {
    const clock = new VirtualClock(T0);
    const input = new GpioLineSimulator({ name: "GPIO17", direction: "input", clock });
    const leds = new StatusLeds({ lines: { status: input }, clock });
    const failure = leds.show(code);
    await expect(failure).rejects.toBeInstanceOf(LedError);
    await expect(failure).rejects.toThrow(/gpioinfo/);
  });
});

describe("GpioLineSimulator", () => {
  test("rejects set() on an input and get() after close", async () => {
    const clock = new VirtualClock(T0);
    const input = new GpioLineSimulator({ direction: "input", clock });
    await expect(input.set(1)).rejects.toMatchObject({ code: "E_DIRECTION" });
    const output = new GpioLineSimulator({ direction: "output", clock, activeLow: true });
    await output.set(1);
    expect(output.pin).toBe(0);
    await output.close();
    await expect(output.get()).rejects.toBeInstanceOf(GpioSimulatorError);
  });

  test("levelAt reads the timeline", async () => {
    const clock = new VirtualClock(T0);
    const output = new GpioLineSimulator({ direction: "output", clock });
    await output.set(1);
    clock.advance(10);
    await output.set(0);
    expect([output.levelAt(T0 - 1), output.levelAt(T0 + 5), output.levelAt(T0 + 10)]).toEqual([0, 1, 0]);
  });
});
