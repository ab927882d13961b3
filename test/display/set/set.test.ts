import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { createLogger } from "../../../agent/pino-logger.ts";
import { oledFrame } from "../../../display/drivers/ssd1306/layout.ts";
import { TerminalSimulator } from "../../../display/drivers/terminal/sim.ts";
import { createDisplays } from "../../../display/hardware.ts";
import type { Screen } from "../../../display/screens.ts";
import { type Display, DisplaySet } from "../../../display/set.ts";
import { createSimulatedDisplays, type SimulatedHardware } from "../../../display/simulated.ts";
import { displaysOf, flush } from "../configs.ts";
import { CODE, codeScreen, sample, T0 } from "../samples.ts";

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly display?: string;
}

function logs() {
  const lines: LogLine[] = [];
  const logger = createLogger({
    level: "debug",
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
  });
  return { logger, lines, at: (level: string) => lines.filter((line) => line.level === level) };
}

const ERROR = "error";
const INFO = "info";
const DEBUG = "debug";

/** A display that fails while `failing` is set, recording every call. */
class FakeDisplay implements Display {
  readonly name: string;
  readonly tickMs: number | undefined;
  readonly calls: string[] = [];
  /** When each screen was shown (the `now` it was handed). */
  readonly shownAt: number[] = [];
  failing = false;

  constructor(name: string, tickMs?: number) {
    this.name = name;
    this.tickMs = tickMs;
  }

  async init(): Promise<void> {
    this.calls.push("init");
    if (this.failing) throw new Error("No device answers at 0x27: check the wiring.");
  }

  async show(screen: Screen, now: number): Promise<void> {
    this.calls.push(`show ${screen.kind}`);
    this.shownAt.push(now);
    if (this.failing) throw new Error("Input/output error on the bus: check the wiring.");
  }

  async clear(): Promise<void> {
    this.calls.push("clear");
  }

  async close(): Promise<void> {
    this.calls.push("close");
  }
}

function simOf<T extends SimulatedHardware["type"]>(
  hardware: readonly SimulatedHardware[],
  type: T,
): Extract<SimulatedHardware, { type: T }> {
  const found = hardware.find((h): h is Extract<SimulatedHardware, { type: T }> => h.type === type);
  if (found === undefined) throw new Error(`no ${type}`);
  return found;
}

async function simulated(displays: unknown[]) {
  const clock = new VirtualClock(T0);
  // LED patterns loop forever: their sleeps (≥ 400 ms) wait for `advance`; driver waits run at once.
  clock.passiveSleepsFromMs = 400;
  const log = logs();
  const sims = await createSimulatedDisplays(displaysOf(displays), { clock, logger: log.logger });
  return { clock, log, ...sims };
}

describe("DisplaySet", () => {
  test("show fans out to every display: the LCD and the terminal show the code, the status LED blinks", async () => {
    const { set, hardware, log, dispose } = await simulated([
      { type: "hd44780" },
      { type: "leds" },
      { type: "terminal" },
    ]);
    await set.show(codeScreen, T0);
    expect(simOf(hardware, "hd44780").sim.lines().join("\n")).toContain(CODE);
    expect(simOf(hardware, "leds").sim.get("GPIO23")?.level).toBe(1);
    expect(simOf(hardware, "terminal").sim.shows(`2. Enter code: ${CODE}`)).toBe(true);
    expect(set.status().map((s) => s.health)).toEqual(["ok", "ok", "ok"]);
    expect(set.displays.map((d) => d.name)).toEqual([
      "displays[0] hd44780 on I2C bus 1 at 0x27",
      "displays[1] leds on GPIO23",
      "displays[2] terminal",
    ]);
    expect(log.at(ERROR)).toEqual([]);
    await set.close();
    await dispose();
  });

  test("one display failing never stops the others, and show never rejects", async () => {
    const { clock, log, set: simSet, hardware, dispose } = await simulated([{ type: "ssd1306" }]);
    const broken = new FakeDisplay("displays[0] hd44780 on I2C bus 1 at 0x27");
    broken.failing = true;
    const set = new DisplaySet({ displays: [broken, ...simSet.displays], logger: log.logger, clock });
    await expect(set.show(codeScreen, T0)).resolves.toBeUndefined();
    const oled = simOf(hardware, "ssd1306").sim;
    expect(oled.pixels().equals(oledFrame(codeScreen, T0))).toBe(true);
    expect(set.status()).toEqual([
      {
        name: broken.name,
        health: "failed",
        error: "No device answers at 0x27: check the wiring.",
        retryAt: T0 + 5000,
      },
      { name: "displays[0] ssd1306 on I2C bus 1 at 0x3C", health: "ok" },
    ]);
    expect(log.at(ERROR).map((l) => l.msg)).toEqual([
      `${broken.name}: No device answers at 0x27: check the wiring. The other displays keep working.`,
    ]);
    await set.close();
    await dispose();
  });

  test("a failed display is retried with exponential back-off and logged once per failure streak", async () => {
    const clock = new VirtualClock(T0, { auto: false });
    const log = logs();
    const lcd = new FakeDisplay("lcd");
    lcd.failing = true;
    const set = new DisplaySet({
      displays: [lcd],
      logger: log.logger,
      clock,
      retry: { firstMs: 5000, maxMs: 20_000 },
    });
    const inits: number[] = [];
    // A countdown: the caller shows the screen every second for a minute.
    for (let s = 0; s <= 60; s++) {
      const before = lcd.calls.filter((c) => c === "init").length;
      await set.show(sample("waiting"), T0 + s * 1000);
      if (lcd.calls.filter((c) => c === "init").length > before) inits.push(s);
    }
    // Failures at 0, 5, 15, 35 s (waits 5, 10, 20 s), then capped at 20 s: 55 s.
    expect(inits).toEqual([0, 5, 15, 35, 55]);
    expect(log.at(ERROR)).toHaveLength(1);
    expect(log.at(DEBUG)).toHaveLength(4);
    lcd.failing = false;
    await set.show(sample("waiting"), T0 + 75_000);
    expect(set.status()[0]?.health).toBe("ok");
    expect(log.at(INFO).map((l) => l.msg)).toEqual(["lcd works again"]);
    // A new streak is logged again, and starts over at the first wait.
    lcd.failing = true;
    await set.show(sample("waiting"), T0 + 76_000);
    expect(log.at(ERROR)).toHaveLength(2);
    expect(set.status()[0]?.retryAt).toBe(T0 + 81_000);
    await set.close();
  });

  test("a screen that takes the code off is tried at once, back-off or not", async () => {
    const clock = new VirtualClock(T0, { auto: false });
    const log = logs();
    const lcd = new FakeDisplay("lcd");
    const set = new DisplaySet({ displays: [lcd], logger: log.logger, clock });
    await set.show(codeScreen, T0);
    lcd.failing = true;
    await set.show(sample("waiting"), T0 + 1000);
    lcd.failing = false;
    await set.show(sample("signed-in"), T0 + 2000);
    expect(lcd.calls).toEqual(["init", "show code", "show waiting", "init", "show signed-in"]);
    expect(set.status()[0]?.health).toBe("ok");
    await set.close();
  });

  test("while a display is busy only the newest screen is kept for it", async () => {
    const clock = new VirtualClock(T0, { auto: false });
    const log = logs();
    let release: () => void = () => undefined;
    const slow = new FakeDisplay("eink");
    const shown: string[] = [];
    slow.show = async (screen: Screen) => {
      shown.push(screen.kind);
      if (screen.kind === "code") await new Promise<void>((resolve) => (release = resolve));
    };
    const set = new DisplaySet({ displays: [slow], logger: log.logger, clock });
    const first = set.show(codeScreen, T0);
    await new Promise((resolve) => setImmediate(resolve));
    const second = set.show(sample("waiting"), T0 + 1000);
    const third = set.show(sample("signed-in"), T0 + 2000);
    release();
    await Promise.all([first, second, third]);
    expect(shown).toEqual(["code", "signed-in"]);
    await set.close();
  });

  test("close takes the code off every display (even a failed one) before releasing it", async () => {
    const {
      clock,
      log,
      set: simSet,
      hardware,
      dispose,
    } = await simulated([{ type: "hd44780" }, { type: "ssd1306" }, { type: "leds" }]);
    const flaky = new FakeDisplay("flaky");
    const set = new DisplaySet({ displays: [...simSet.displays, flaky], logger: log.logger, clock });
    await set.show(codeScreen, T0);
    flaky.failing = true;
    await set.show(sample("waiting"), T0 + 1000);
    flaky.failing = false;
    await set.close();
    const lcd = simOf(hardware, "hd44780").sim.lines().join("\n");
    expect(lcd).not.toContain(CODE);
    expect(lcd).toContain("Cancel");
    expect(
      simOf(hardware, "ssd1306")
        .sim.pixels()
        .equals(oledFrame({ kind: "cancelled" }, clock.now())),
    ).toBe(true);
    const status = simOf(hardware, "leds").sim.get("GPIO23");
    expect(status?.level).toBe(0);
    expect(status?.closed).toBe(true);
    expect(flaky.calls.slice(-3)).toEqual(["init", "show cancelled", "close"]);
    expect(set.status().map((s) => s.health)).toEqual(["closed", "closed", "closed", "closed"]);
    // Closed: later screens go nowhere.
    await set.show(codeScreen, clock.now());
    expect(simOf(hardware, "hd44780").sim.lines().join("\n")).not.toContain(CODE);
    await dispose();
  });

  test("close after signed-in leaves the screen alone (no code to take off)", async () => {
    const clock = new VirtualClock(T0, { auto: false });
    const log = logs();
    const lcd = new FakeDisplay("lcd");
    const set = new DisplaySet({ displays: [lcd], logger: log.logger, clock });
    await set.show(codeScreen, T0);
    await set.show(sample("signed-in"), T0 + 1000);
    await set.close();
    expect(lcd.calls).toEqual(["init", "show code", "show signed-in", "close"]);
  });
});

describe("the countdown ticker", () => {
  /** A set of one recording display on a clock that moves only when the test moves it. */
  function ticking(others: readonly FakeDisplay[] = []) {
    const clock = new VirtualClock(T0, { auto: false });
    const lcd = new FakeDisplay("lcd", 1000);
    const set = new DisplaySet({ displays: [lcd, ...others], logger: logs().logger, clock });
    const advance = async (ms: number): Promise<void> => {
      for (let t = 0; t < ms; t += 500) {
        clock.advance(500);
        await flush();
        await set.settled();
      }
    };
    return { clock, lcd, set, advance };
  }

  test("a code screen is shown again every second of the clock, so the countdown moves", async () => {
    const { lcd, set, advance } = ticking();
    await set.show(codeScreen, T0);
    await advance(3000);
    expect(lcd.calls).toEqual(["init", "show code", "show code", "show code", "show code"]);
    expect(lcd.shownAt).toEqual([T0, T0 + 1000, T0 + 2000, T0 + 3000]);
    // A later state (a poll's note) replaces what the ticker shows, not its rhythm.
    await set.show(sample("waiting"), T0 + 3000);
    await advance(1000);
    expect(lcd.calls.slice(-2)).toEqual(["show waiting", "show waiting"]);
    await set.close();
  });

  test("the display that needs it most often sets the pace; displays that keep themselves current need none", async () => {
    const terminal = new FakeDisplay("terminal", 60_000);
    const { set, advance } = ticking([terminal]);
    await set.show(codeScreen, T0);
    await advance(2000);
    expect(terminal.shownAt).toEqual([T0, T0 + 1000, T0 + 2000]);
    await set.close();

    const clock = new VirtualClock(T0, { auto: false });
    const leds = new FakeDisplay("leds");
    const alone = new DisplaySet({
      displays: [leds, new FakeDisplay("terminal", 60_000)],
      logger: logs().logger,
      clock,
    });
    await alone.show(codeScreen, T0);
    expect(clock.sleeps).toEqual([60_000]);
    const quiet = new DisplaySet({ displays: [leds], logger: logs().logger, clock });
    await quiet.show(codeScreen, T0);
    // Nothing to wake up for: an LED pattern runs on its own.
    expect(clock.sleeps).toEqual([60_000]);
    await alone.close();
    await quiet.close();
  });

  test("it stops when a screen without the code comes, and on close", async () => {
    const { clock, lcd, set, advance } = ticking();
    await set.show(codeScreen, T0);
    await advance(1000);
    await set.show(sample("signed-in"), T0 + 1000);
    await advance(5000);
    expect(lcd.calls).toEqual(["init", "show code", "show code", "show signed-in"]);
    expect(clock.waitingSleeps).toBe(0);

    await set.show(codeScreen, T0 + 6000);
    expect(clock.waitingSleeps).toBe(1);
    await set.close();
    expect(clock.waitingSleeps).toBe(0);
    await advance(3000);
    expect(lcd.calls.slice(-3)).toEqual(["show code", "show cancelled", "close"]);
  });
});

describe("createDisplays on the real buses", () => {
  test("missing devices become failed displays with the fix, logged once each; nothing throws", async () => {
    const dir = await mkdtemp(join(tmpdir(), "entratool-nodev-"));
    try {
      const clock = new VirtualClock(T0, { auto: false });
      const log = logs();
      const terminal = new TerminalSimulator({ isTTY: false });
      const set = createDisplays(
        displaysOf([{ type: "hd44780" }, { type: "leds" }, { type: "framebuffer" }, { type: "terminal" }]),
        {
          clock,
          logger: log.logger,
          devDir: dir,
          sysfsRoot: dir,
          terminals: [{ out: terminal, color: false }],
        },
      );
      await set.init();
      await set.show(codeScreen, T0);
      const status = set.status();
      // The terminal is no kernel device: it works where the others cannot.
      expect(status.map((s) => s.health)).toEqual(["failed", "failed", "failed", "ok"]);
      expect(terminal.shows(CODE)).toBe(true);
      expect(status[0]?.error).toMatch(/I2C is not enabled|C library cannot be loaded/);
      expect(status[1]?.error).toMatch(/No GPIO character device|C library cannot be loaded/);
      expect(status[2]?.error).toMatch(/fb0/);
      expect(log.at(ERROR)).toHaveLength(3);
      await set.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
