import type { SignInState } from "../agent/auth/signin.ts";
import { deferredLogger, type Logger } from "../agent/core/log.ts";
import { VirtualClock } from "../agent/core/virtual-clock.ts";
import { type AgentConfig, type DisplayType, validateConfig } from "./config.ts";
import type { Hd44780Simulator } from "./drivers/hd44780/sim.ts";
import { DeviceCodePrompt } from "./drivers/terminal/driver.ts";
import { DisplayError } from "./errors.ts";
import { Bitmap } from "./render/bitmap.ts";
import { drawText } from "./render/font.ts";
import { font6x10 } from "./render/fonts/6x10.ts";
import { encodeBitmapPng, encodeRgbPng } from "./render/png.ts";
import { type Screen, showsCode } from "./screens.ts";
import { createSimulatedDisplays, type SimulatedHardware } from "./set.ts";
import type { GpioLineSimulator } from "./sim/gpio.ts";

/**
 * `entratool display preview`: a PNG of what a person would see, rendered THROUGH THE SIMULATOR.
 * The real driver is driven into its chip's simulator (the same path as `display test` without
 * hardware), and the picture is drawn from what the simulator decoded off the wire, not from the
 * driver's own idea of its frame. A preview therefore shows driver bugs instead of hiding them.
 */

export interface PreviewOptions {
  /** Pixel multiplier; defaults per driver so a small panel is viewable (OLED 4, e-ink 3, others 1-2). */
  readonly scale?: number;
  /** LCD size; default 16x2. */
  readonly columns?: 16 | 20;
  readonly rows?: 2 | 4;
  /** The simulated HDMI screen; default 1280x720 at 32 bpp. */
  readonly framebuffer?: { readonly width: number; readonly height: number; readonly bitsPerPixel: 16 | 32 };
  /** LEDs: how long a timeline to draw, ms; default 4000, in steps of `stepMs` (default 100). */
  readonly durationMs?: number;
  readonly stepMs?: number;
}

export interface PreviewRequest {
  readonly driver: DisplayType;
  readonly screen: Screen;
  /** Epoch ms: the countdown, and which page of a paged screen is up. */
  readonly now: number;
  readonly options?: PreviewOptions;
}

export class PreviewError extends DisplayError<"E_PREVIEW"> {
  override readonly name = "PreviewError";

  constructor(message: string) {
    super("E_PREVIEW", message);
  }
}

/** A PNG of `screen` on `driver` at `now`. */
export async function renderPreview(request: PreviewRequest): Promise<Uint8Array> {
  const { driver, screen, now, options = {} } = request;
  if (driver === "terminal") return terminalPreview(screen, now, options);
  const clock = new VirtualClock(now);
  const config = previewConfig(driver, options);
  const simulated = await createSimulatedDisplays(config, {
    clock,
    logger: silentLogger(),
    ...(options.framebuffer === undefined ? {} : { framebuffer: options.framebuffer }),
  });
  try {
    const [display] = simulated.set.displays;
    const [hardware] = simulated.hardware;
    if (display === undefined || hardware === undefined) throw new PreviewError(`no simulator for ${driver}`);
    if (hardware.type === "leds") clock.auto = false;
    // Straight to the display, not through the set: a preview must fail loudly, not log and carry on.
    await display.init();
    await display.show(screen, now);
    const png = await picture(hardware, clock, now, options);
    await display.close();
    return png;
  } finally {
    await simulated.dispose();
  }
}

function previewConfig(driver: Exclude<DisplayType, "terminal">, options: PreviewOptions): AgentConfig {
  const entry: Record<string, unknown> = { type: driver };
  if (driver === "hd44780") Object.assign(entry, { columns: options.columns ?? 16, rows: options.rows ?? 2 });
  // Every line, so that each pattern (fast blink goes to the error LED) and the beeps show.
  if (driver === "leds")
    Object.assign(entry, { pins: { status: "GPIO23", error: "GPIO22" }, buzzer: "GPIO18" });
  const checked = validateConfig({ version: 1, displays: [entry] });
  if (!checked.ok) throw new PreviewError(`Invalid preview options: ${checked.errors.join("; ")}.`);
  return checked.config;
}

/** The set wants a logger; the preview talks to the display directly and has nothing to log. */
function silentLogger(): Logger {
  return deferredLogger({ level: "silent", destination: { write: () => undefined } }, () => {
    throw new Error("the preview logger writes nothing");
  });
}

async function picture(
  hardware: SimulatedHardware,
  clock: VirtualClock,
  now: number,
  options: PreviewOptions,
): Promise<Uint8Array> {
  switch (hardware.type) {
    case "hd44780":
      return lcdGlass(hardware.sim, options.scale ?? 1);
    case "ssd1306":
      // Lit pixels glow white on the black panel.
      return encodeBitmapPng(hardware.sim.pixels(), { scale: options.scale ?? 4, on: "white" });
    case "ssd1680":
      return encodeBitmapPng(hardware.sim.panel(), { scale: options.scale ?? 3, on: "black" });
    case "framebuffer": {
      const { sim } = hardware;
      return encodeRgbPng(sim.width, sim.height, await sim.rgb(), { scale: options.scale ?? 1 });
    }
    case "leds":
      return ledTimeline(hardware, clock, now, options);
  }
}

type Rgb = readonly [number, number, number];

/** An RGB canvas for the drawn previews (LCD glass, LED strip, terminal). */
class Canvas {
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;

  constructor(width: number, height: number, background: Rgb) {
    this.width = width;
    this.height = height;
    this.rgb = new Uint8Array(width * height * 3);
    this.fill(0, 0, width, height, background);
  }

  fill(x0: number, y0: number, w: number, h: number, colour: Rgb): void {
    for (let y = Math.max(0, y0); y < Math.min(this.height, y0 + h); y++) {
      for (let x = Math.max(0, x0); x < Math.min(this.width, x0 + w); x++)
        this.rgb.set(colour, (y * this.width + x) * 3);
    }
  }

  disc(cx: number, cy: number, r: number, colour: Rgb): void {
    for (let y = cy - r; y <= cy + r; y++) {
      for (let x = cx - r; x <= cx + r; x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) this.fill(x, y, 1, 1, colour);
      }
    }
  }

  /** Paints the on pixels of `bitmap` at (x, y). */
  stamp(bitmap: Bitmap, x: number, y: number, colour: Rgb): void {
    for (let by = 0; by < bitmap.height; by++) {
      for (let bx = 0; bx < bitmap.width; bx++)
        if (bitmap.get(bx, by)) this.fill(x + bx, y + by, 1, 1, colour);
    }
  }

  png(scale: number): Uint8Array {
    return encodeRgbPng(this.width, this.height, this.rgb, { scale });
  }
}

/** LCD geometry in output pixels: a dot is 3 px with a 1 px gap; cells and rows one dot pitch apart, as on the glass. */
export const LCD_DOT = 3;
export const LCD_PITCH = 4;
export const LCD_MARGIN = 16;

/** Where the top left of cell (row, column)'s dot (dotRow, dotColumn) is drawn in the LCD preview. */
export function lcdDotOrigin(
  row: number,
  column: number,
  dotRow: number,
  dotColumn: number,
): [number, number] {
  return [
    LCD_MARGIN + column * 6 * LCD_PITCH + dotColumn * LCD_PITCH,
    LCD_MARGIN + row * 9 * LCD_PITCH + dotRow * LCD_PITCH,
  ];
}

/** The character LCD as glass: a blue-green STN panel, unlit dots faintly visible, lit dots light. */
function lcdGlass(sim: Hd44780Simulator, scale: number): Uint8Array {
  const lit = sim.backlight;
  const background: Rgb = lit ? [18, 64, 78] : [8, 24, 28];
  const unlitDot: Rgb = lit ? [26, 80, 96] : [12, 30, 34];
  const litDot: Rgb = lit ? [214, 240, 250] : [72, 86, 90];
  const width = 2 * LCD_MARGIN + (sim.columns * 6 - 1) * LCD_PITCH;
  const height = 2 * LCD_MARGIN + (sim.rows * 9 - 1) * LCD_PITCH;
  const canvas = new Canvas(width, height, background);
  const glass = sim.glass();
  for (let row = 0; row < sim.rows; row++) {
    for (let column = 0; column < sim.columns; column++) {
      for (let dotRow = 0; dotRow < 8; dotRow++) {
        for (let dotColumn = 0; dotColumn < 5; dotColumn++) {
          const on = glass[row * 8 + dotRow]?.[column * 5 + dotColumn] ?? false;
          const [x, y] = lcdDotOrigin(row, column, dotRow, dotColumn);
          canvas.fill(x, y, LCD_DOT, LCD_DOT, on ? litDot : unlitDot);
        }
      }
    }
  }
  return canvas.png(scale);
}

/** LED strip geometry: one row per line, one circle per step. */
export const LED_LABEL_WIDTH = 56;
export const LED_PITCH = 16;
export const LED_RADIUS = 6;
export const LED_TOP = 20;
export const LED_ROWS: ReadonlyArray<{
  readonly name: string;
  readonly label: string;
  readonly colour: Rgb;
}> = [
  { name: "GPIO23", label: "status", colour: [60, 220, 90] },
  { name: "GPIO22", label: "error", colour: [240, 60, 50] },
  { name: "GPIO18", label: "buzzer", colour: [250, 200, 40] },
];
const LED_DARK: Rgb = [48, 48, 52];

/** The centre of step `step`'s circle on row `row` of the LED timeline. */
export function ledCircleCentre(row: number, step: number): [number, number] {
  return [LED_LABEL_WIDTH + step * LED_PITCH + LED_PITCH / 2, LED_TOP + row * LED_PITCH + LED_PITCH / 2];
}

/**
 * The LEDs over time, as a person watching them would describe it: for every step (100 ms) a
 * circle per line, lit when the line was on for at least half the step. The pattern is run on the
 * virtual clock for the whole duration and read back from the GPIO simulators' timelines.
 */
async function ledTimeline(
  hardware: Extract<SimulatedHardware, { type: "leds" }>,
  clock: VirtualClock,
  start: number,
  options: PreviewOptions,
): Promise<Uint8Array> {
  const durationMs = options.durationMs ?? 4000;
  const stepMs = options.stepMs ?? 100;
  const steps = Math.ceil(durationMs / stepMs);
  // Patterns change level on multiples of 50 ms; advancing in such steps wakes the loop at each edge.
  for (let t = 0; t < durationMs; t += 50) {
    clock.advance(50);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const canvas = new Canvas(
    LED_LABEL_WIDTH + steps * LED_PITCH + 8,
    LED_TOP + LED_ROWS.length * LED_PITCH + 8,
    [16, 16, 18],
  );
  const labels = new Bitmap(canvas.width, canvas.height);
  for (let second = 0; second * 1000 < durationMs; second++) {
    const [x] = ledCircleCentre(0, (second * 1000) / stepMs);
    drawText(labels, font6x10, `${second}s`, x - LED_PITCH / 2, 4);
  }
  LED_ROWS.forEach(({ name, label, colour }, row) => {
    const [, y] = ledCircleCentre(row, 0);
    drawText(labels, font6x10, label, 4, y - 5);
    const line = hardware.lines.get(name);
    for (let step = 0; step < steps; step++) {
      const from = start + step * stepMs;
      const on = line !== undefined && onTime(line, from, from + stepMs) * 2 >= stepMs;
      const [cx, cy] = ledCircleCentre(row, step);
      canvas.disc(cx, cy, LED_RADIUS, on ? colour : LED_DARK);
    }
  });
  canvas.stamp(labels, 0, 0, [200, 200, 200]);
  return canvas.png(options.scale ?? 2);
}

/** How long `line` was on (logical level 1) within [from, to). */
export function onTime(line: GpioLineSimulator, from: number, to: number): number {
  let on = 0;
  let level = line.levelAt(from);
  let at = from;
  for (const change of line.timeline()) {
    if (change.at <= from) continue;
    if (change.at >= to) break;
    if (level === 1) on += change.at - at;
    level = change.level;
    at = change.at;
  }
  if (level === 1) on += to - at;
  return on;
}

/** Terminal colours: light grey on near-black, as most terminal themes. */
export const TERMINAL_COLUMNS = 80;
const BOX_ASCII: Readonly<Record<string, string>> = {
  "┌": "+",
  "┐": "+",
  "└": "+",
  "┘": "+",
  "├": "+",
  "┤": "+",
  "─": "-",
  "│": "|",
};

/** What the terminal prompt prints for `screen`, as lines of at most 80 columns (the terminal wraps). */
export function terminalLines(screen: Screen, now: number): string[] {
  if (!showsCode(screen)) {
    throw new PreviewError(
      `The terminal shows only the code screens (code, waiting); on '${screen.kind}' it wipes the code and prints nothing of its own.`,
    );
  }
  const chunks: string[] = [];
  // Not a TTY: plain lines without colour or cursor movement, which is what a picture can show.
  const prompt = new DeviceCodePrompt(
    { write: (chunk) => void chunks.push(chunk), isTTY: false, columns: TERMINAL_COLUMNS },
    { now: () => now, sleep: () => Promise.resolve() },
    { color: false },
  );
  const state: SignInState = {
    kind: "code-issued",
    profile: "default",
    userCode: screen.userCode,
    verificationUri: screen.verificationUri,
    // Entra's own instruction, which the prompt prints above its box.
    message: `To sign in, use a web browser to open the page ${screen.verificationUri} and enter the code ${screen.userCode} to authenticate.`,
    expiresAt: screen.expiresAt,
    intervalSeconds: 5,
    qrPayload: screen.qrPayload,
  };
  prompt.onState(state);
  return chunks
    .join("")
    .replace(/\n$/, "")
    .split("\n")
    .flatMap((line) => {
      const chars = [...line];
      const rows: string[] = [];
      for (let i = 0; i < Math.max(1, chars.length); i += TERMINAL_COLUMNS) {
        rows.push(chars.slice(i, i + TERMINAL_COLUMNS).join(""));
      }
      return rows;
    });
}

/**
 * The terminal prompt as an 80-column terminal shows it, in the bundled 6x10 font. The font has
 * printable ASCII only, so the box-drawing characters become + - |, as on a console without them.
 */
function terminalPreview(screen: Screen, now: number, options: PreviewOptions): Uint8Array {
  const lines = terminalLines(screen, now).map((line) =>
    [...line].map((char) => BOX_ASCII[char] ?? char).join(""),
  );
  const margin = 6;
  const bitmap = new Bitmap(TERMINAL_COLUMNS * 6 + 2 * margin, lines.length * font6x10.height + 2 * margin);
  lines.forEach((line, row) => {
    drawText(bitmap, font6x10, line, margin, margin + row * font6x10.height);
  });
  const canvas = new Canvas(bitmap.width, bitmap.height, [18, 18, 20]);
  canvas.stamp(bitmap, 0, 0, [220, 220, 220]);
  return canvas.png(options.scale ?? 2);
}
