import { arch, cpus, type } from "node:os";
import { join } from "node:path";
import { validateConfig } from "../agent/config/load.ts";
import type { AgentConfig } from "../agent/config/schema.ts";
import { deferredLogger, type Logger } from "../agent/core/log.ts";
import { VirtualClock } from "../agent/core/virtual-clock.ts";
import { FramebufferDisplay } from "../display/drivers/framebuffer/driver.ts";
import { FramebufferSimulator } from "../display/drivers/framebuffer/sim.ts";
import { sampleScreen } from "../display/samples.ts";
import type { Screen } from "../display/screens.ts";
import type { Display } from "../display/set.ts";
import type { GpioLineSimulator } from "../display/sim/gpio.ts";
import { createSimulatedDisplays, type SimulatedHardware } from "../display/simulated.ts";
import { writeResults } from "./bench-results.ts";

const _root = join(import.meta.dir, "..");
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15;

/** A whole minute, so the countdowns start at 15:00; the paged displays count their pages from here. */
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
/** Init runs before T0, so the first code frame is drawn at T0 exactly. */
const INIT_LEAD_MS = 1000;
const USER_CODE = "FZ2X8LQ3N";
const URL = "https://microsoft.com/devicelogin";
const CODE_SCREEN: Screen = sampleScreen("code", USER_CODE, URL, T0);
const SIGNED_IN: Screen = sampleScreen("signed-in", USER_CODE, URL, T0);
/** OLED: 4 s QR page then 6 s code page; LCD: a URL page every 3 s (the drivers' defaults). */
const OLED_FLIP_MS = 4000;
const LCD_FLIP_MS = 3000;
const EINK_TICKS = 60;
const LED_WINDOW_MS = 10_000;
const LED_STEP_MS = 10;
/** Frame sizes on the wire: OLED GDDRAM 128x64 bits; e-ink one RAM plane is 16 bytes x 250 gates, two planes. */
const OLED_FRAME_BYTES = 1024;
const EINK_PLANE_BYTES = 16 * 250;
/** "Much smaller than a frame": a countdown tick costs at most this share of the code frame. */
const TICK_SHARE = 0.1;
const LED_PINS = { status: "GPIO23", error: "GPIO22", buzzer: "GPIO18" } as const;

interface Counters {
  /** Bytes on the bus (I2C data bytes, SPI bytes, bytes written to the framebuffer device). */
  readonly bytes: number;
  /** Pixel data among them: OLED GDDRAM bytes, e-ink RAM bytes; equal to `bytes` for the framebuffer. */
  readonly pixelBytes: number;
  readonly fullRefreshes: number;
  readonly partialRefreshes: number;
  /** E-ink RAM plane writes (commands 0x24 and 0x26). */
  readonly planeWrites: number;
  /** GPIO `set()` calls on every line (LEDs). */
  readonly lineWrites: number;
}

type DriverKind = "hd44780" | "ssd1306" | "ssd1680" | "framebuffer" | "leds";

interface Rig {
  readonly clock: VirtualClock;
  init(): Promise<void>;
  show(screen: Screen, now: number): Promise<void>;
  counters(): Counters;
  /** LEDs: the line simulators (requested anew by each init). */
  lines(): readonly GpioLineSimulator[];
  close(): Promise<void>;
}

interface Case {
  readonly name: string;
  readonly kind: DriverKind;
  /** Where the driver turns a page of the code screen, ms after T0; undefined if it does not page. */
  readonly flipMs: number | undefined;
  make(): Promise<Rig>;
}

const ZERO: Counters = {
  bytes: 0,
  pixelBytes: 0,
  fullRefreshes: 0,
  partialRefreshes: 0,
  planeWrites: 0,
  lineWrites: 0,
};

function minus(a: Counters, b: Counters): Counters {
  return {
    bytes: a.bytes - b.bytes,
    pixelBytes: a.pixelBytes - b.pixelBytes,
    fullRefreshes: a.fullRefreshes - b.fullRefreshes,
    partialRefreshes: a.partialRefreshes - b.partialRefreshes,
    planeWrites: a.planeWrites - b.planeWrites,
    lineWrites: a.lineWrites - b.lineWrites,
  };
}

function silentLogger(): Logger {
  return deferredLogger({ level: "silent", destination: { write: () => undefined } }, () => {
    throw new Error("the bench logger writes nothing");
  });
}

function configFor(entry: Record<string, unknown>): AgentConfig {
  const checked = validateConfig({ version: 1, displays: [entry] });
  if (!checked.ok) throw new Error(`bad bench configuration: ${checked.errors.join("; ")}`);
  return checked.config;
}

function hardwareCounters(hardware: SimulatedHardware): Counters {
  switch (hardware.type) {
    case "hd44780":
      return { ...ZERO, bytes: hardware.sim.stats.bytes };
    case "ssd1306": {
      const { bytes, dataBytes } = hardware.sim.stats;
      return { ...ZERO, bytes, pixelBytes: dataBytes };
    }
    case "ssd1680": {
      const { spiBytes, fullRefreshes, partialRefreshes } = hardware.sim.counts;
      const planeWrites = hardware.sim.commands.filter((c) => c.opcode === 0x24 || c.opcode === 0x26).length;
      return {
        ...ZERO,
        bytes: spiBytes,
        // RAM data: everything on SPI but the commands and their parameters.
        pixelBytes: spiBytes - hardware.sim.commands.reduce((sum, c) => sum + 1 + c.params.length, 0),
        fullRefreshes,
        partialRefreshes,
        planeWrites,
      };
    }
    case "leds":
      return {
        ...ZERO,
        lineWrites: ledLines(hardware).reduce((sum, line) => sum + line.writes, 0),
      };
    case "framebuffer":
      throw new Error("the framebuffer is counted by its driver");
    default:
      throw new Error(`the bench does not count ${hardware.type}`);
  }
}

function ledLines(hardware: SimulatedHardware): GpioLineSimulator[] {
  if (hardware.type !== "leds") return [];
  return Object.values(LED_PINS)
    .map((name) => hardware.sim.get(name))
    .filter((line): line is GpioLineSimulator => line !== undefined);
}

/** A driver on its simulator through `createSimulatedDisplays`, straight to the display (not the set). */
async function simulatedRig(entry: Record<string, unknown>): Promise<Rig> {
  const clock = new VirtualClock(T0 - INIT_LEAD_MS);
  const simulated = await createSimulatedDisplays(configFor(entry).displays, {
    clock,
    logger: silentLogger(),
  });
  const display: Display | undefined = simulated.set.displays[0];
  const hardware = simulated.hardware[0];
  if (display === undefined || hardware === undefined)
    throw new Error(`no simulator for ${String(entry.type)}`);
  // LED patterns loop forever: time moves only when the bench advances it.
  if (hardware.type === "leds") clock.auto = false;
  return {
    clock,
    init: () => display.init(),
    show: (screen, now) => display.show(screen, now),
    counters: () => hardwareCounters(hardware),
    lines: () => ledLines(hardware),
    close: async () => {
      await display.close();
      await simulated.dispose();
    },
  };
}

/** The framebuffer driver on a simulated device file, opened as the set opens it. */
async function framebufferRig(width: number, height: number, bitsPerPixel: 16 | 32): Promise<Rig> {
  const clock = new VirtualClock(T0 - INIT_LEAD_MS);
  const sim = await FramebufferSimulator.create({ width, height, bitsPerPixel });
  let driver: FramebufferDisplay | undefined;
  const opened = (): FramebufferDisplay => {
    if (driver === undefined) throw new Error("the framebuffer is not open");
    return driver;
  };
  return {
    clock,
    init: async () => {
      driver = await FramebufferDisplay.open({
        device: sim.device,
        devRoot: sim.devRoot,
        sysfsRoot: sim.sysfsRoot,
      });
    },
    show: (screen, now) => opened().show(screen, now),
    counters: () => {
      const { bytes } = driver?.stats ?? { bytes: 0 };
      return { ...ZERO, bytes, pixelBytes: bytes };
    },
    lines: () => [],
    close: async () => {
      await driver?.close();
      await sim.dispose();
    },
  };
}

const CASES: readonly Case[] = [
  {
    name: "hd44780 16x2",
    kind: "hd44780",
    flipMs: LCD_FLIP_MS,
    make: () => simulatedRig({ type: "hd44780", columns: 16, rows: 2 }),
  },
  {
    name: "hd44780 20x4",
    kind: "hd44780",
    flipMs: LCD_FLIP_MS,
    make: () => simulatedRig({ type: "hd44780", columns: 20, rows: 4 }),
  },
  { name: "ssd1306", kind: "ssd1306", flipMs: OLED_FLIP_MS, make: () => simulatedRig({ type: "ssd1306" }) },
  { name: "ssd1680", kind: "ssd1680", flipMs: undefined, make: () => simulatedRig({ type: "ssd1680" }) },
  {
    name: "framebuffer 1920x1080x32",
    kind: "framebuffer",
    flipMs: undefined,
    make: () => framebufferRig(1920, 1080, 32),
  },
  {
    name: "framebuffer 640x480x16",
    kind: "framebuffer",
    flipMs: undefined,
    make: () => framebufferRig(640, 480, 16),
  },
  {
    name: "leds",
    kind: "leds",
    flipMs: undefined,
    make: () =>
      simulatedRig({
        type: "leds",
        pins: { status: LED_PINS.status, error: LED_PINS.error },
        buzzer: LED_PINS.buzzer,
      }),
  },
];

/** Lets woken sleepers (the LED loop) run before time moves again. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Moves the virtual clock to `at` (if it is not there yet) and returns the time to draw at. */
async function until(rig: Rig, at: number, step = Number.POSITIVE_INFINITY): Promise<number> {
  while (rig.clock.now() < at) {
    rig.clock.advance(Math.min(step, at - rig.clock.now()));
    await settle();
  }
  return rig.clock.now();
}

interface Timing {
  readonly medianMs: number;
  readonly minMs: number;
  /** Modelled hardware time of the same show() on the virtual clock (bus, BUSY, delays). */
  readonly simMs: number;
}

async function timeCodeFrame(c: Case): Promise<Timing> {
  const wall: number[] = [];
  let simMs = 0;
  for (let i = 0; i < RUNS; i++) {
    const rig = await c.make();
    try {
      await rig.init();
      const now = await until(rig, T0);
      if (now !== T0) throw new Error(`${c.name}: init took more than ${INIT_LEAD_MS} ms of virtual time`);
      const started = performance.now();
      await rig.show(CODE_SCREEN, now);
      wall.push(performance.now() - started);
      simMs = rig.clock.now() - now;
    } finally {
      await rig.close();
    }
  }
  const sorted = [...wall].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const medianMs = sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { medianMs, minMs: sorted[0] ?? 0, simMs };
}

interface Traffic {
  readonly init: Counters;
  readonly code: Counters;
  /** The same frame shown again at the same time: must send nothing. */
  readonly repeat: Counters;
  readonly tick: Counters;
  readonly flip: Counters | undefined;
  readonly signedIn: Counters;
  /** E-ink: refreshes over the code frame and 60 one-second ticks after it. */
  readonly refreshes: { readonly full: number; readonly partial: number; readonly bytes: number } | undefined;
  /** LEDs: level changes a second on each line over 10 s of waiting. */
  readonly ledChangesPerSecond: Readonly<Record<string, number>> | undefined;
}

/** Runs `step` and returns what it cost on the bus. */
async function cost(rig: Rig, step: () => Promise<void>): Promise<Counters> {
  const before = rig.counters();
  await step();
  return minus(rig.counters(), before);
}

async function traffic(c: Case): Promise<Traffic> {
  const rig = await c.make();
  try {
    const init = await cost(rig, () => rig.init());
    await until(rig, T0);
    const code = await cost(rig, () => rig.show(CODE_SCREEN, T0));
    const repeat = await cost(rig, () => rig.show(CODE_SCREEN, T0));
    const ledStep = c.kind === "leds" ? LED_STEP_MS : Number.POSITIVE_INFINITY;
    // The e-ink refresh may have taken the clock past T0 + 1 s; the tick is then drawn at the clock's time.
    const tickAt = await until(rig, T0 + 1000, ledStep);
    const tick = await cost(rig, () => rig.show(CODE_SCREEN, tickAt));

    let refreshes: Traffic["refreshes"];
    let ledChangesPerSecond: Traffic["ledChangesPerSecond"];
    if (c.kind === "ssd1680") {
      // The code frame and tick 1 are counted above; ticks 2..60 follow, one a second.
      const spread = await cost(rig, async () => {
        for (let k = 2; k <= EINK_TICKS; k++) await rig.show(CODE_SCREEN, await until(rig, T0 + k * 1000));
      });
      const total = [code, repeat, tick, spread];
      refreshes = {
        full: total.reduce((sum, x) => sum + x.fullRefreshes, 0),
        partial: total.reduce((sum, x) => sum + x.partialRefreshes, 0),
        bytes: total.reduce((sum, x) => sum + x.bytes, 0),
      };
    }
    if (c.kind === "leds") {
      // Ticks every second, as the CLI's ticker does, over the window.
      for (let s = 2; s <= LED_WINDOW_MS / 1000; s++) {
        await rig.show(CODE_SCREEN, await until(rig, T0 + s * 1000, LED_STEP_MS));
      }
      const windowEnd = T0 + LED_WINDOW_MS;
      const perSecond: Record<string, number> = {};
      for (const line of rig.lines()) {
        const changes = line
          .timeline()
          .slice(1)
          .filter((change) => change.at >= T0 && change.at < windowEnd).length;
        perSecond[line.name] = changes / (LED_WINDOW_MS / 1000);
      }
      ledChangesPerSecond = perSecond;
    }

    let flip: Counters | undefined;
    if (c.flipMs !== undefined) {
      // From the tick's picture to the next page (no tick in between, so only the flip is counted).
      const at = await until(rig, T0 + c.flipMs);
      flip = await cost(rig, () => rig.show(CODE_SCREEN, at));
    }
    const signedAt = rig.clock.now();
    const signedIn = await cost(rig, () => rig.show(SIGNED_IN, signedAt));
    return { init, code, repeat, tick, flip, signedIn, refreshes, ledChangesPerSecond };
  } finally {
    await rig.close();
  }
}

interface Claim {
  readonly claim: string;
  readonly pass: boolean;
  readonly detail: string;
}

function claims(results: ReadonlyArray<{ readonly c: Case; readonly t: Traffic }>): Claim[] {
  const out: Claim[] = [];
  for (const { c, t } of results) {
    if (c.kind === "ssd1306") {
      out.push({
        claim: `${c.name}: a new code sends at most one full frame (≤ ${OLED_FRAME_BYTES} GDDRAM bytes)`,
        pass: t.code.pixelBytes <= OLED_FRAME_BYTES,
        detail: `${t.code.pixelBytes} GDDRAM bytes, ${t.code.bytes} on the bus`,
      });
    }
    if (c.kind === "ssd1680") {
      out.push({
        claim: `${c.name}: a new code is one full refresh, each RAM plane written once (≤ ${2 * EINK_PLANE_BYTES} RAM bytes)`,
        pass:
          t.code.fullRefreshes === 1 &&
          t.code.partialRefreshes === 0 &&
          t.code.planeWrites === 2 &&
          t.code.pixelBytes <= 2 * EINK_PLANE_BYTES,
        detail: `${t.code.fullRefreshes} full, ${t.code.partialRefreshes} partial, ${t.code.planeWrites} plane writes, ${t.code.pixelBytes} RAM bytes`,
      });
      const r = t.refreshes;
      out.push({
        claim: `${c.name}: no refresh every second (code + ${EINK_TICKS} ticks: 1 full, ≤ 1 partial)`,
        pass: r !== undefined && r.full === 1 && r.partial <= 1,
        detail:
          r === undefined ? "not measured" : `${r.full} full, ${r.partial} partial over ${EINK_TICKS} s`,
      });
    }
    if (c.kind === "ssd1306" || c.kind === "ssd1680") {
      out.push({
        claim: `${c.name}: no redundant transfer (the same frame again sends 0 bytes)`,
        pass: t.repeat.bytes === 0,
        detail: `${t.repeat.bytes} bytes`,
      });
    }
    if (c.kind !== "leds") {
      out.push({
        claim: `${c.name}: a countdown tick is much smaller than the code frame (≤ ${TICK_SHARE * 100}%)`,
        pass: t.tick.bytes <= TICK_SHARE * t.code.bytes,
        detail: `${t.tick.bytes} vs ${t.code.bytes} bytes (${pct(t.tick.bytes, t.code.bytes)})`,
      });
    }
  }
  return out;
}

function pct(part: number, whole: number): string {
  return whole === 0 ? "–" : `${((100 * part) / whole).toFixed(1)}%`;
}

function bytesCell(kind: DriverKind, x: Counters | undefined): string {
  if (x === undefined) return "–";
  if (kind === "leds") return `${x.lineWrites}w`;
  const refresh =
    x.fullRefreshes + x.partialRefreshes > 0
      ? ` ${x.fullRefreshes}F${x.partialRefreshes ? `+${x.partialRefreshes}P` : ""}`
      : "";
  return `${x.bytes}${refresh}`;
}

function extra(c: Case, t: Traffic): string {
  if (t.refreshes)
    return `60 s: ${t.refreshes.full} full, ${t.refreshes.partial} partial, ${t.refreshes.bytes} B`;
  if (t.ledChangesPerSecond) {
    return Object.entries(t.ledChangesPerSecond)
      .map(([name, n]) => `${name} ${n}/s`)
      .join(", ");
  }
  if (c.kind === "framebuffer") return "bytes written to /dev/fbN";
  if (c.kind === "ssd1306") return `GDDRAM: code ${t.code.pixelBytes}, tick ${t.tick.pixelBytes}`;
  return "";
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  "),
    )
    .join("\n");
}

async function main(): Promise<void> {
  if (!Number.isInteger(RUNS) || RUNS < 1) {
    process.stderr.write("usage: bun scripts/bench-display.ts [--runs N] (N ≥ 1)\n");
    process.exit(2);
  }
  const measured: { c: Case; timing: Timing; t: Traffic }[] = [];
  for (const c of CASES) measured.push({ c, timing: await timeCodeFrame(c), t: await traffic(c) });

  const header = [
    "driver",
    "show ms med",
    "min",
    "sim ms",
    "init",
    "code",
    "again",
    "tick",
    "flip",
    "signed-in",
    "notes",
  ];
  const rows = measured.map(({ c, timing, t }) => [
    c.name,
    timing.medianMs.toFixed(2),
    timing.minMs.toFixed(2),
    String(Math.round(timing.simMs)),
    bytesCell(c.kind, t.init),
    bytesCell(c.kind, t.code),
    bytesCell(c.kind, t.repeat),
    bytesCell(c.kind, t.tick),
    bytesCell(c.kind, t.flip),
    bytesCell(c.kind, t.signedIn),
    extra(c, t),
  ]);
  const cpu = cpus()[0]?.model ?? "unknown";
  process.stdout.write(
    `\n${cpu}, Bun ${Bun.version}; ${RUNS} runs. Bytes on the bus per step (F/P: full/partial e-ink refreshes; LEDs: w = line writes)\n\n`,
  );
  process.stdout.write(`${table([header, ...rows])}\n\n`);
  const checked = claims(measured);
  for (const claim of checked)
    process.stdout.write(`${claim.pass ? "PASS" : "FAIL"}  ${claim.claim}: ${claim.detail}\n`);

  const displays = {
    date: new Date().toISOString(),
    machine: { cpu, cores: cpus().length, os: `${type()} ${arch()}`, bun: Bun.version },
    runs: RUNS,
    screen: { userCode: USER_CODE, verificationUri: URL, at: new Date(T0).toISOString() },
    drivers: Object.fromEntries(
      measured.map(({ c, timing, t }) => [
        c.name,
        {
          showCodeMs: { median: timing.medianMs, min: timing.minMs },
          simulatedHardwareMs: timing.simMs,
          bytes: {
            init: t.init.bytes,
            code: t.code.bytes,
            codeAgain: t.repeat.bytes,
            tick: t.tick.bytes,
            ...(t.flip === undefined ? {} : { pageFlip: t.flip.bytes }),
            signedIn: t.signedIn.bytes,
          },
          ...(c.kind === "ssd1306" || c.kind === "ssd1680"
            ? { pixelBytes: { code: t.code.pixelBytes, tick: t.tick.pixelBytes } }
            : {}),
          ...(t.refreshes === undefined ? {} : { refreshesOver60Ticks: t.refreshes }),
          ...(c.kind === "leds"
            ? {
                lineWrites: {
                  code: t.code.lineWrites,
                  tick: t.tick.lineWrites,
                  signedIn: t.signedIn.lineWrites,
                },
                levelChangesPerSecondWaiting: t.ledChangesPerSecond,
              }
            : {}),
        },
      ]),
    ),
    claims: checked,
  };
  writeResults({ displays });
  process.stdout.write("\nwrote bench/results.json (displays)\n");
  if (checked.some((claim) => !claim.pass)) process.exitCode = 1;
}

await main();
