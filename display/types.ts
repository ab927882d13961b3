import type * as v from "valibot";
import type { Clock } from "../agent/core/clock.ts";
import type { Output } from "../agent/core/output.ts";
import type { Libc } from "../agent/linux/libc.ts";
import type { GpioLine, I2CBus, SpiBus } from "./bus/types.ts";
import type { Bitmap } from "./render/bitmap.ts";
import type { QrMatrix } from "./render/qr.ts";
import type { Screen } from "./screens.ts";

/**
 * The shapes every display type shares: what a driver looks like to the set, what it needs of the
 * machine (`Hardware`: kernel devices on a Pi, simulators in tests and previews), and the registry
 * entry each type's folder exports (display/drivers/<type>/index.ts, listed in ../registry.ts).
 */

/** A driver as the set drives it (LEDs have no init; a driver that needs no time ignores `now`). */
export interface DriverLike {
  init?(): Promise<void>;
  show(screen: Screen, now: number): Promise<void>;
  /** Takes whatever is shown off the glass (a blank screen, the LEDs off, the prompt wiped). */
  clear(): Promise<void>;
}

/** An opened driver with whatever releases its buses and lines. */
export interface Opened {
  readonly driver: DriverLike;
  release(): Promise<void>;
}

export interface GpioOutputOptions {
  readonly initial: 0 | 1;
  /** Asked of the kernel (the line's flag), so that drivers write what they mean. */
  readonly activeLow: boolean;
}

export interface GpioInputOptions {
  readonly activeLow?: boolean;
  readonly bias?: "pull-up" | "pull-down" | "disabled";
  readonly edges?: "rising" | "falling" | "both";
}

/** Where fbN's device node and its sysfs directory are found (a temp dir for the simulator). */
export interface FramebufferRoots {
  readonly devRoot?: string;
  readonly sysfsRoot?: string;
  /** What answers FBIOGET_VSCREENINFO on the open device (the simulator's); default libc's. */
  readonly ioctl?: Pick<Libc, "ioctl" | "errno">;
}

/** One place the terminal display writes to, and whether it takes ANSI colour there. */
export interface TerminalOutput {
  readonly out: Output;
  readonly color: boolean;
}

export type QrEncoder = (text: string) => QrMatrix;

export interface PreviewOptions {
  /** Pixel multiplier; defaults per type so a small panel is viewable (OLED 4, e-ink 3, others 1-2). */
  readonly scale?: number;
  /** LCD size; default 16x2. */
  readonly columns?: 16 | 20;
  readonly rows?: 2 | 4;
  /** The simulated HDMI screen; default 1280x720 at 32 bpp. */
  readonly framebuffer?: FramebufferSize;
  /** LEDs: how long a timeline to draw, ms; default 4000, in steps of `stepMs` (default 100). */
  readonly durationMs?: number;
  readonly stepMs?: number;
  /** The page of a paged display (1-based): the OLED's QR and code pages, the LCD's URL pages. */
  readonly page?: number;
  /** Every page side by side in one picture. */
  readonly sheet?: boolean;
  /** A pixel display's `rotate` (0, 90, 180, 270); default 0. */
  readonly rotate?: 0 | 90 | 180 | 270;
}

export interface FramebufferSize {
  readonly width: number;
  readonly height: number;
  readonly bitsPerPixel: 16 | 32;
}

export interface PreviewRequest {
  readonly type: string;
  readonly screen: Screen;
  /** Epoch ms: the countdown's time. */
  readonly now: number;
  /**
   * Epoch ms since when this screen has been up (default `now`): a paged display turns its pages
   * counted from then. `options.page` sets it for the page asked for.
   */
  readonly since?: number;
  readonly options?: PreviewOptions;
}

/** Draws a preview PNG: the PNG display's renderer (the preview path, injected: no import circle). */
export type PreviewRenderer = (request: PreviewRequest) => Promise<Uint8Array>;

/**
 * What a display needs of the machine. The real one opens kernel devices (display/hardware.ts);
 * the simulated one hands out simulators that decode the wire (display/simulated.ts). Drivers are
 * opened on either by the same code (each type's `open`).
 */
export interface Hardware {
  i2c(bus: number): Promise<I2CBus>;
  spi(bus: number, chipSelect: number, speedHz: number): Promise<SpiBus>;
  output(name: string, options: GpioOutputOptions): Promise<GpioLine>;
  input(name: string, options: GpioInputOptions): Promise<GpioLine>;
  framebuffer(): FramebufferRoots;
  /** The outputs the terminal display writes to: stderr, and the controlling terminal when a script captures stderr. */
  terminals(): readonly TerminalOutput[];
  /** The QR encoder the terminal draws with (loaded lazily by the CLI); none: no QR code. */
  readonly qr: QrEncoder | undefined;
  /** What the PNG display draws with. */
  readonly preview: PreviewRenderer | undefined;
}

export interface OpenContext {
  readonly clock: Clock;
  readonly hardware: Hardware;
  /**
   * For errors that surface outside a call (an LED pattern running in the background): the next
   * `show` throws it, so the set learns of it like any other failure.
   */
  readonly fail: (error: unknown) => void;
}

/** A resource two displays cannot share, and the field (relative to the display) that names it. */
export interface Claim {
  readonly resource: string;
  /** [] for the display itself. */
  readonly field: readonly string[];
}

/** A picture of a display for a preview: 1-bit (the pixel panels) or RGB (LCD glass, LEDs, terminal). */
export type Picture =
  | { readonly kind: "bitmap"; readonly bitmap: Bitmap; readonly on: "black" | "white" }
  | { readonly kind: "rgb"; readonly width: number; readonly height: number; readonly rgb: Uint8Array };

export interface SimulationContext {
  readonly clock: Clock;
  /** The simulated HDMI screen; default 1280x720 at 32 bpp. */
  readonly framebuffer?: FramebufferSize;
  /** The simulated terminal; default not a TTY, 80 columns. */
  readonly terminal?: { readonly isTTY: boolean; readonly columns: number; readonly rows: number };
}

/** A simulated chip for one display: the parts of `Hardware` it provides, and what tests read. */
export interface Simulated<H> {
  readonly hardware: Partial<Hardware>;
  readonly sim: H;
  /** Removes what the simulator made (a framebuffer's temp files). */
  dispose?(): Promise<void>;
}

export interface PictureContext {
  /** The clock the display ran on; an LED timeline is advanced on it. */
  readonly clock: { advance(ms: number): void };
  /** When the screen was shown (epoch ms). */
  readonly start: number;
  readonly options: PreviewOptions;
}

/** A type's simulator and preview: loaded only when simulating (./drivers/<type>/simulate.ts). */
export interface Simulation<C, H> {
  attach(config: C, context: SimulationContext): Promise<Simulated<H>>;
  /** The preview's pixel multiplier unless asked otherwise: a small panel must be viewable. */
  readonly scale?: number;
  /** The preview runs on a clock that moves only when told (an LED pattern never ends by itself). */
  readonly manualClock?: boolean;
  /** The configuration a preview draws (input to the schema), from the preview's options. */
  previewConfig?(options: PreviewOptions): Record<string, unknown>;
  /** When each page of `screen` is up, ms after the screen appeared: [0] for an unpaged display. */
  pages?(screen: Screen, config: C): readonly number[];
  /** The picture of what the simulator shows; undefined for a type that has none. */
  picture?(sim: H, context: PictureContext): Promise<Picture>;
}

/** A type's configuration schema: a strict object tagged by `type` (valibot). */
export type DisplaySchema = v.VariantOptions<"type">[number];

/**
 * One display type, as registered in display/registry.ts. Everything about the type is here or
 * reached from here; the simulator only through `simulation()`, so that the real-hardware path
 * never loads one.
 */
export interface DisplayEntry<S extends DisplaySchema, H> {
  readonly type: v.InferOutput<S> extends { readonly type: infer T } ? T : never;
  /** Its part of the configuration, with its defaults. */
  readonly schema: S;
  /** Where it is attached, for logs and `display test`: " on I2C bus 1 at 0x3C". */
  where(config: v.InferOutput<S>): string;
  /** What it takes for itself: no two displays may claim the same. */
  claims(config: v.InferOutput<S>): readonly Claim[];
  /** The GPIO line of its sign-in button, if it has one. */
  button?(config: v.InferOutput<S>): string | undefined;
  /** Whether `display preview` draws it. */
  readonly previewable: boolean;
  /**
   * How often a code screen must be shown to it again while it is up, ms (its countdown moves,
   * its pages turn); absent when it keeps itself current.
   */
  readonly tickMs?: number;
  /** Opens the driver on `context.hardware` (kernel devices or simulators alike). */
  open(config: v.InferOutput<S>, context: OpenContext): Promise<Opened>;
  simulation(): Promise<Simulation<v.InferOutput<S>, H>>;
}
