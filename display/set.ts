import type { Clock } from "../agent/core/clock.ts";
import type { Logger } from "../agent/core/log.ts";
import type { Libc } from "../agent/linux/libc.ts";
import { formatI2CAddress } from "./bus/errors.ts";
import { GpioCdev } from "./bus/gpio-cdev.ts";
import { LinuxI2CBus } from "./bus/linux-i2c.ts";
import { LinuxSpiBus } from "./bus/linux-spi.ts";
import type { GpioLine, I2CBus, SpiBus } from "./bus/types.ts";
import type {
  AgentConfig,
  DisplayConfig,
  FramebufferConfig,
  Hd44780Config,
  LedsConfig,
  Ssd1306Config,
  Ssd1680Config,
} from "./config.ts";
import { FramebufferDisplay } from "./drivers/framebuffer/driver.ts";
import { FramebufferSimulator } from "./drivers/framebuffer/sim.ts";
import { Hd44780Display } from "./drivers/hd44780/driver.ts";
import { Hd44780Simulator } from "./drivers/hd44780/sim.ts";
import { StatusLeds } from "./drivers/leds/driver.ts";
import { PngSink } from "./drivers/png/driver.ts";
import { Ssd1306Display } from "./drivers/ssd1306/driver.ts";
import { Ssd1306Simulator } from "./drivers/ssd1306/sim.ts";
import { Ssd1680Display } from "./drivers/ssd1680/driver.ts";
import { Ssd1680Simulator } from "./drivers/ssd1680/sim.ts";
import { type Screen, showsCode } from "./screens.ts";
import { GpioLineSimulator } from "./sim/gpio.ts";

/** A screen that does not carry the user code: what a display is left with when the code is void. */
export type NoCodeScreen = Exclude<Screen, { kind: "code" | "waiting" }>;

/** What the set needs of a display; every driver is adapted to it (`DriverDisplay`). */
export interface Display {
  /** For logs: the driver, where it is attached, and its place in the configuration. */
  readonly name: string;
  /** Opens the buses and initialises the hardware; called again to recover after a failure. */
  init(): Promise<void>;
  show(screen: Screen, now: number): Promise<void>;
  clear(): Promise<void>;
  /** Releases the buses and lines; the glass keeps what it shows. */
  close(): Promise<void>;
}

/** A driver as the hardware drivers are shaped (LEDs have no init and ignore `now`). */
export interface DriverLike {
  init?(): Promise<void>;
  show(screen: Screen, now: number): Promise<void>;
  clear(): Promise<void>;
}

/** An opened driver with whatever releases its buses and lines. */
export interface Opened {
  readonly driver: DriverLike;
  release(): Promise<void>;
}

/**
 * Opens a driver. `fail` is for errors that surface outside a call (an LED pattern running in the
 * background): the next `show` throws it, so the set learns of it like any other failure.
 */
export type Opener = (fail: (error: unknown) => void) => Promise<Opened>;

/**
 * A driver behind `Display`, opening its buses in `init()`. Every `init()` starts from scratch
 * (releasing what an earlier attempt opened), so that recovery after a pulled cable or a line
 * taken by another program works the same way as the first start.
 */
export class DriverDisplay implements Display {
  readonly name: string;
  readonly #open: Opener;
  #opened: Opened | undefined;
  #failure: { readonly error: unknown } | undefined;

  constructor(name: string, open: Opener) {
    this.name = name;
    this.#open = open;
  }

  async init(): Promise<void> {
    await this.#release();
    this.#failure = undefined;
    const opened = await this.#open((error) => {
      this.#failure ??= { error };
    });
    try {
      await opened.driver.init?.();
    } catch (error) {
      await opened.release().catch(() => undefined);
      throw error;
    }
    this.#opened = opened;
  }

  async show(screen: Screen, now: number): Promise<void> {
    const failure = this.#failure;
    if (failure !== undefined) {
      this.#failure = undefined;
      throw failure.error;
    }
    await this.#driver().show(screen, now);
  }

  async clear(): Promise<void> {
    await this.#driver().clear();
  }

  async close(): Promise<void> {
    await this.#release();
  }

  #driver(): DriverLike {
    if (this.#opened === undefined) throw new Error(`${this.name} is not initialised`);
    return this.#opened.driver;
  }

  async #release(): Promise<void> {
    const opened = this.#opened;
    this.#opened = undefined;
    await opened?.release();
  }
}

export type DisplayHealth = "new" | "ok" | "failed" | "closed";

export interface DisplayStatus {
  readonly name: string;
  readonly health: DisplayHealth;
  /** The last failure's sentence, while failed. */
  readonly error?: string;
  /** When the next attempt is due (epoch ms), while failed. */
  readonly retryAt?: number;
}

export interface RetryPolicy {
  /** Wait after the first failure of a streak, ms; default 5 s. */
  readonly firstMs: number;
  /** Longest wait, ms; default 5 min: a display plugged in later shows up within minutes. */
  readonly maxMs: number;
}

export interface DisplaySetOptions {
  readonly displays: readonly Display[];
  readonly logger: Logger;
  /** For `init()` and `close()`, which are not handed a time. */
  readonly clock: Clock;
  readonly retry?: Partial<RetryPolicy>;
}

interface Entry {
  readonly display: Display;
  health: DisplayHealth;
  /** Consecutive failures; sets the back-off. */
  streak: number;
  retryAt: number;
  error: string | undefined;
  /** A code screen was sent (even if it failed half-way): the glass may show the code. */
  codeMayBeUp: boolean;
  /** The newest screen not yet handed to this display (older ones are dropped: only the latest matters). */
  pending: { readonly screen: Screen; readonly now: number } | undefined;
  running: Promise<void> | undefined;
}

/**
 * Several displays at once. `show` fans a screen out to every display; one that throws is logged
 * and marked failed and never stops the others (nor the caller: `show` never rejects). A failed
 * display is re-initialised on a later `show` after an exponential back-off, and logged once per
 * failure streak (then at debug), so a missing LCD does not write a line every second.
 *
 * Each display runs on its own: a slow one (an e-ink refresh takes seconds) does not hold the
 * others back, and while it is busy only the newest screen is kept for it, so it catches up with
 * the present instead of replaying the countdown.
 */
export class DisplaySet {
  readonly #entries: Entry[];
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #retry: RetryPolicy;
  #closed = false;

  constructor(options: DisplaySetOptions) {
    this.#entries = options.displays.map((display) => ({
      display,
      health: "new",
      streak: 0,
      retryAt: 0,
      error: undefined,
      codeMayBeUp: false,
      pending: undefined,
      running: undefined,
    }));
    this.#logger = options.logger;
    this.#clock = options.clock;
    this.#retry = { firstMs: options.retry?.firstMs ?? 5000, maxMs: options.retry?.maxMs ?? 300_000 };
  }

  get displays(): readonly Display[] {
    return this.#entries.map((entry) => entry.display);
  }

  status(): DisplayStatus[] {
    return this.#entries.map(({ display, health, error, retryAt }) => ({
      name: display.name,
      health,
      ...(health === "failed" && error !== undefined ? { error, retryAt } : {}),
    }));
  }

  /**
   * Initialises every display not yet working, at once, so that wiring and permission problems
   * are logged at start-up rather than with the first code. Never rejects.
   */
  async init(): Promise<void> {
    const now = this.#clock.now();
    await Promise.all(
      this.#entries.map(async (entry) => {
        if (entry.health !== "new") return;
        try {
          await entry.display.init();
          entry.health = "ok";
        } catch (error) {
          this.#failed(entry, error, now);
        }
      }),
    );
  }

  /** Shows `screen` on every display; resolves once each has drawn it (or skipped or failed). Never rejects. */
  async show(screen: Screen, now: number): Promise<void> {
    if (this.#closed) return;
    await Promise.all(this.#entries.map((entry) => this.#offer(entry, screen, now)));
  }

  /**
   * Takes the code off every display that may show it (with `final`, by default "cancelled": the
   * code dies with the process), then releases every bus. Never rejects; problems are logged.
   */
  async close(final: NoCodeScreen = { kind: "cancelled" }): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#entries.map((entry) => entry.running));
    const now = this.#clock.now();
    await Promise.all(
      this.#entries.map(async (entry) => {
        const { display } = entry;
        if (entry.codeMayBeUp && !showsCode(final)) {
          try {
            // A failed display gets one more try: its glass may still hold the code.
            if (entry.health !== "ok") await display.init();
            await display.show(final, now);
            entry.codeMayBeUp = false;
          } catch (error) {
            this.#logger.warn(
              { display: display.name, err: error },
              `${display.name}: could not take the code off the display (${messageOf(error)})`,
            );
          }
        }
        try {
          await display.close();
        } catch (error) {
          this.#logger.warn({ display: display.name, err: error }, `${display.name}: ${messageOf(error)}`);
        }
        entry.health = "closed";
      }),
    );
  }

  #offer(entry: Entry, screen: Screen, now: number): Promise<void> {
    entry.pending = { screen, now };
    entry.running ??= this.#drain(entry);
    return entry.running;
  }

  async #drain(entry: Entry): Promise<void> {
    for (;;) {
      const next = entry.pending;
      if (next === undefined || this.#closed) {
        // Cleared in the same turn as the check, so an offer made after it starts a new drain.
        entry.running = undefined;
        return;
      }
      entry.pending = undefined;
      await this.#attempt(entry, next.screen, next.now);
    }
  }

  async #attempt(entry: Entry, screen: Screen, now: number): Promise<void> {
    const { display } = entry;
    if (entry.health === "closed") return;
    // Leaving a void code on the glass is worse than retrying early: such screens skip the back-off.
    const clearsCode = entry.codeMayBeUp && !showsCode(screen);
    if (entry.health === "failed" && now < entry.retryAt && !clearsCode) return;
    if (showsCode(screen)) entry.codeMayBeUp = true;
    try {
      if (entry.health !== "ok") await display.init();
      await display.show(screen, now);
    } catch (error) {
      this.#failed(entry, error, now);
      return;
    }
    if (!showsCode(screen)) entry.codeMayBeUp = false;
    if (entry.health === "failed") {
      this.#logger.info({ display: display.name }, `${display.name} works again`);
    }
    entry.health = "ok";
    entry.streak = 0;
    entry.error = undefined;
  }

  #failed(entry: Entry, error: unknown, now: number): void {
    const { display } = entry;
    entry.streak++;
    const delay = Math.min(this.#retry.maxMs, this.#retry.firstMs * 2 ** (entry.streak - 1));
    entry.retryAt = now + delay;
    entry.error = messageOf(error);
    const fields = { display: display.name, err: error, failures: entry.streak, retryInMs: delay };
    if (entry.health !== "failed") {
      this.#logger.error(fields, `${display.name}: ${entry.error} The other displays keep working.`);
    } else {
      this.#logger.debug(fields, `${display.name} still failing: ${entry.error}`);
    }
    entry.health = "failed";
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Closes what was opened, newest first; used when a later step of an opener fails. */
class Resources {
  readonly #closers: Array<() => Promise<void>> = [];

  add<T extends { close(): Promise<void> }>(resource: T): T {
    this.#closers.push(() => resource.close());
    return resource;
  }

  async release(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) await close().catch(() => undefined);
  }

  /** Runs `build`; on failure releases everything added so far and rethrows. */
  async guard<T>(build: () => Promise<T>): Promise<T> {
    try {
      return await build();
    } catch (error) {
      await this.release();
      throw error;
    }
  }
}

/** The parts a driver needs, whether they are kernel devices or simulators. */
interface Hardware {
  i2c(bus: number): Promise<I2CBus>;
  spi(config: Ssd1680Config["spi"]): Promise<SpiBus>;
  output(name: string, options: { readonly initial: 0 | 1; readonly activeLow: boolean }): Promise<GpioLine>;
  input(name: string): Promise<GpioLine>;
  framebuffer(config: FramebufferConfig): Promise<FramebufferDisplay>;
}

/** `displays[i] hd44780 on /dev/i2c-1 at 0x27`: enough to find the entry and the wire. */
export function displayName(config: DisplayConfig, index: number): string {
  const where = ((): string => {
    switch (config.type) {
      case "hd44780":
      case "ssd1306":
        return ` on I2C bus ${config.bus} at ${formatI2CAddress(config.address)}`;
      case "ssd1680":
        return ` on SPI ${config.spi.bus}.${config.spi.chipSelect}`;
      case "framebuffer":
        return ` on ${config.device}`;
      case "leds":
        return ` on ${[config.pins.status, config.pins.error, config.buzzer].filter((p) => p !== undefined).join(", ")}`;
      case "png":
        return ` as ${config.as} to ${config.file}`;
      case "terminal":
        return "";
    }
  })();
  return `displays[${index}] ${config.type}${where}`;
}

function opener(config: Exclude<DisplayConfig, { type: "terminal" }>, hw: Hardware, clock: Clock): Opener {
  switch (config.type) {
    case "hd44780":
      return (_fail) => openI2C(hw, config, (bus) => hd44780Driver(config, bus, clock));
    case "ssd1306":
      return (_fail) => openI2C(hw, config, (bus) => ssd1306Driver(config, bus, clock));
    case "ssd1680":
      return async (_fail) => {
        const resources = new Resources();
        return resources.guard(async () => {
          const spi = resources.add(await hw.spi(config.spi));
          // DC starts low (command); RST starts high: low would hold the chip in reset.
          const dc = resources.add(await hw.output(config.pins.dc, { initial: 0, activeLow: false }));
          const rst = resources.add(await hw.output(config.pins.rst, { initial: 1, activeLow: false }));
          const busy = resources.add(await hw.input(config.pins.busy));
          const driver = new Ssd1680Display({ spi, dc, rst, busy, clock, rotate180: config.rotate180 });
          return { driver, release: () => resources.release() };
        });
      };
    case "framebuffer":
      return async (_fail) => {
        const fb = await hw.framebuffer(config);
        return { driver: fb, release: () => fb.close() };
      };
    case "leds":
      return (fail) => openLeds(config, hw, clock, fail);
    case "png":
      // A file, not hardware: the same on the kernel's devices and in simulation.
      return async (_fail) => {
        const { file, as, scale } = config;
        const driver = new PngSink({
          file,
          as,
          ...(scale === undefined ? {} : { scale }),
          now: () => clock.now(),
        });
        return { driver, release: async () => undefined };
      };
  }
}

async function openI2C(
  hw: Hardware,
  config: Hd44780Config | Ssd1306Config,
  build: (bus: I2CBus) => DriverLike,
): Promise<Opened> {
  const resources = new Resources();
  return resources.guard(async () => {
    const bus = resources.add(await hw.i2c(config.bus));
    return { driver: build(bus), release: () => resources.release() };
  });
}

function hd44780Driver(config: Hd44780Config, bus: I2CBus, clock: Clock): Hd44780Display {
  const { address, columns, rows, backlight } = config;
  return new Hd44780Display({ bus, address, columns, rows, backlight, clock });
}

function ssd1306Driver(config: Ssd1306Config, bus: I2CBus, clock: Clock): Ssd1306Display {
  return new Ssd1306Display({ bus, address: config.address, rotate180: config.rotate180, clock });
}

async function openLeds(
  config: LedsConfig,
  hw: Hardware,
  clock: Clock,
  fail: (error: unknown) => void,
): Promise<Opened> {
  const resources = new Resources();
  return resources.guard(async () => {
    // Active-low is asked of the kernel (the line flag), so the driver writes what it means.
    const line = async (name: string): Promise<GpioLine> =>
      resources.add(await hw.output(name, { initial: 0, activeLow: config.activeLow }));
    const status = await line(config.pins.status);
    const error = config.pins.error === undefined ? undefined : await line(config.pins.error);
    const buzzer = config.buzzer === undefined ? undefined : await line(config.buzzer);
    const leds = new StatusLeds({
      lines: { status, ...(error === undefined ? {} : { error }) },
      ...(buzzer === undefined ? {} : { buzzer }),
      clock,
      onError: fail,
    });
    const driver: DriverLike = {
      show: (screen) => leds.show(screen),
      clear: () => leds.off(),
    };
    // StatusLeds.close turns everything off and closes the lines itself.
    return { driver, release: () => leds.close() };
  });
}

export interface CreatedDisplays {
  readonly set: DisplaySet;
  /** Whether the configuration lists the terminal (the CLI's own prompt, not part of the set). */
  readonly terminal: boolean;
}

export interface DisplayDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy>;
  /** Where /dev/i2c-N, /dev/spidevB.C, /dev/gpiochipN and /dev/fbN live; "/dev" unless a test says. */
  readonly devDir?: string;
  /** Where /sys/class/graphics lives for the framebuffer; "/sys" unless a test says. */
  readonly sysfsRoot?: string;
  readonly libc?: Libc;
}

/**
 * The configured displays on the kernel's devices. Nothing is opened here: each display opens its
 * bus in `init()`, so a missing /dev/i2c-1 or a busy GPIO line becomes a logged, failed display
 * (with the sentence that says the fix) when the set is initialised, never a crash.
 */
export function createDisplays(config: AgentConfig, deps: DisplayDeps): CreatedDisplays {
  const { clock, devDir, libc } = deps;
  const gpio = new GpioCdev({
    clock,
    ...(devDir === undefined ? {} : { devDir }),
    ...(libc ? { libc } : {}),
  });
  const busOptions = { ...(devDir === undefined ? {} : { devDir }), ...(libc ? { libc } : {}) };
  const hw: Hardware = {
    i2c: (bus) => LinuxI2CBus.open(bus, busOptions),
    spi: ({ bus, chipSelect, speedHz }) => LinuxSpiBus.open(bus, chipSelect, { ...busOptions, speedHz }),
    output: (name, { initial, activeLow }) =>
      gpio.requestLine({ name }, { direction: "output", initial, activeLow }),
    input: (name) => gpio.requestLine({ name }, { direction: "input" }),
    framebuffer: (fb) =>
      FramebufferDisplay.open({
        device: fb.deviceNumber,
        ...(devDir === undefined ? {} : { devRoot: devDir }),
        ...(deps.sysfsRoot === undefined ? {} : { sysfsRoot: deps.sysfsRoot }),
      }),
  };
  const displays: Display[] = [];
  config.displays.forEach((entry, index) => {
    if (entry.type === "terminal") return;
    displays.push(new DriverDisplay(displayName(entry, index), opener(entry, hw, clock)));
  });
  return created(config, displays, deps);
}

/** The set of `displays`, and whether the configuration also lists the terminal (kept by the CLI). */
function created(
  config: AgentConfig,
  displays: Display[],
  deps: { readonly clock: Clock; readonly logger: Logger; readonly retry?: Partial<RetryPolicy> },
): CreatedDisplays {
  return {
    set: new DisplaySet({
      displays,
      logger: deps.logger,
      clock: deps.clock,
      ...(deps.retry ? { retry: deps.retry } : {}),
    }),
    terminal: config.displays.some((entry) => entry.type === "terminal"),
  };
}

/** The chips behind one simulated display, for tests and previews to read what a person would see. */
export type SimulatedHardware =
  | { readonly type: "hd44780"; readonly index: number; readonly sim: Hd44780Simulator }
  | { readonly type: "ssd1306"; readonly index: number; readonly sim: Ssd1306Simulator }
  | { readonly type: "ssd1680"; readonly index: number; readonly sim: Ssd1680Simulator }
  | { readonly type: "framebuffer"; readonly index: number; readonly sim: FramebufferSimulator }
  | { readonly type: "leds"; readonly index: number; readonly lines: SimulatedLines };

/**
 * The GPIO lines of simulated LEDs by name ("GPIO23"). A line is requested anew on every `init()`
 * (as the kernel would hand out a new request), so read them after the display was initialised.
 */
export class SimulatedLines {
  readonly #lines = new Map<string, GpioLineSimulator>();

  get(name: string): GpioLineSimulator | undefined {
    return this.#lines.get(name);
  }

  set(name: string, line: GpioLineSimulator): void {
    this.#lines.set(name, line);
  }
}

export interface SimulatedDisplays extends CreatedDisplays {
  readonly hardware: readonly SimulatedHardware[];
  /** Removes the simulated framebuffers' temp files (after `set.close()`). */
  dispose(): Promise<void>;
}

export interface SimulatedDisplayDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy>;
  /** The simulated HDMI screen; default 1280x720 at 32 bpp. */
  readonly framebuffer?: { readonly width: number; readonly height: number; readonly bitsPerPixel: 16 | 32 };
}

/** A bus onto a simulated chip whose close() leaves the chip alone: closing an fd does not unplug it. */
function keepOpen<T extends { close(): Promise<void> }>(bus: T): T {
  return new Proxy(bus, {
    get: (target, property) => {
      if (property === "close") return async () => undefined;
      const value: unknown = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * The same drivers on simulators (`display test` without hardware, `display preview`, tests): one
 * chip per configured display, created now so that its state outlives re-initialisation.
 */
export async function createSimulatedDisplays(
  config: AgentConfig,
  deps: SimulatedDisplayDeps,
): Promise<SimulatedDisplays> {
  const { clock } = deps;
  const hardware: SimulatedHardware[] = [];
  const framebuffers: FramebufferSimulator[] = [];
  const displays: Display[] = [];
  try {
    for (const [index, entry] of config.displays.entries()) {
      if (entry.type === "terminal") continue;
      const hw = await simulatedHardware(entry, index, deps, hardware, framebuffers);
      displays.push(new DriverDisplay(displayName(entry, index), opener(entry, hw, clock)));
    }
  } catch (error) {
    await Promise.all(framebuffers.map((fb) => fb.dispose()));
    throw error;
  }
  return {
    ...created(config, displays, deps),
    hardware,
    dispose: async () => {
      await Promise.all(framebuffers.map((fb) => fb.dispose()));
    },
  };
}

async function simulatedHardware(
  entry: Exclude<DisplayConfig, { type: "terminal" }>,
  index: number,
  deps: SimulatedDisplayDeps,
  hardware: SimulatedHardware[],
  framebuffers: FramebufferSimulator[],
): Promise<Hardware> {
  const { clock } = deps;
  const none = (what: string) => (): Promise<never> =>
    Promise.reject(new Error(`a simulated ${entry.type} has no ${what}`));
  const base: Hardware = {
    i2c: none("I2C bus"),
    spi: none("SPI bus"),
    output: none("GPIO output"),
    input: none("GPIO input"),
    framebuffer: none("framebuffer"),
  };
  switch (entry.type) {
    case "png":
      return base;
    case "hd44780": {
      const { address, columns, rows } = entry;
      const sim = new Hd44780Simulator({ address, columns, rows, clock });
      hardware.push({ type: "hd44780", index, sim });
      return { ...base, i2c: async () => keepOpen(sim) };
    }
    case "ssd1306": {
      const sim = new Ssd1306Simulator({ address: entry.address });
      hardware.push({ type: "ssd1306", index, sim });
      return { ...base, i2c: async () => keepOpen(sim) };
    }
    case "ssd1680": {
      const sim = new Ssd1680Simulator({ clock });
      hardware.push({ type: "ssd1680", index, sim });
      const pins = new Map<string, GpioLine>([
        [entry.pins.dc, sim.dc],
        [entry.pins.rst, sim.rst],
        [entry.pins.busy, sim.busy],
      ]);
      const pin = async (name: string): Promise<GpioLine> => {
        const line = pins.get(name);
        if (line === undefined) throw new Error(`the simulated SSD1680 has no line ${name}`);
        return keepOpen(line);
      };
      return { ...base, spi: async () => keepOpen(sim.spi), output: pin, input: pin };
    }
    case "framebuffer": {
      const size = deps.framebuffer ?? { width: 1280, height: 720, bitsPerPixel: 32 };
      const sim = await FramebufferSimulator.create({ ...size, device: entry.deviceNumber });
      framebuffers.push(sim);
      hardware.push({ type: "framebuffer", index, sim });
      return {
        ...base,
        framebuffer: (fb) =>
          FramebufferDisplay.open({
            device: fb.deviceNumber,
            devRoot: sim.devRoot,
            sysfsRoot: sim.sysfsRoot,
          }),
      };
    }
    case "leds": {
      const lines = new SimulatedLines();
      hardware.push({ type: "leds", index, lines });
      return {
        ...base,
        output: async (name, { initial, activeLow }) => {
          const line = new GpioLineSimulator({ name, direction: "output", clock, initial, activeLow });
          lines.set(name, line);
          return line;
        },
      };
    }
  }
}
