import type { Clock } from "../../../agent/core/clock.ts";
import { SerialQueue } from "../../../agent/core/serial.ts";
import type { I2CBus } from "../../bus/types.ts";
import { DisplayError } from "../../errors.ts";
import { Bitmap } from "../../render/bitmap.ts";
import type { Rotation } from "../../schema.ts";
import { type Screen, screenFamily } from "../../screens.ts";
import {
  OLED_HEIGHT,
  OLED_LANDSCAPE,
  OLED_PORTRAIT,
  OLED_WIDTH,
  type OledGeometry,
  type OledTiming,
  oledFrame,
} from "./layout.ts";

/**
 * SSD1306 128x64 OLED on I2C, write-only. Renders each screen into a Bitmap (ssd1306-layout.ts)
 * and sends only what changed: per 8-row page, the smallest column range that differs from what
 * GDDRAM holds, through a column/page address window in horizontal addressing mode. A countdown
 * tick rewrites a few columns of two pages (tens of bytes) instead of the 1024-byte frame.
 *
 * `rotate`: 180 costs nothing per frame (the controller's segment remap and COM scan turn the
 * picture); 90 and 270 lay the screens out on a 64x128 page, turned a quarter in software before
 * they go to GDDRAM (270 being that plus the controller's half turn).
 *
 * Section numbers are those of the Solomon Systech SSD1306 datasheet, Rev 1.5.
 */

export type Ssd1306Address = 0x3c | 0x3d;

export interface Ssd1306DisplayOptions {
  readonly bus: I2CBus;
  /** 7-bit I2C address: 0x3C (default, SA0 low) or 0x3D (SA0 high, the module's address jumper). */
  readonly address?: Ssd1306Address;
  /** For the power-up wait after display on (tAF, §8.9). */
  readonly clock: Clock;
  /** How the panel is mounted: the page is turned clockwise by this much; default 0. */
  readonly rotate?: Rotation;
  /** Page timings of the code/QR alternation and long messages; see ssd1306-layout.ts. */
  readonly timing?: OledTiming;
  /** Contrast 0-255 (0x81); default 0xCF, the value for the internal charge pump. */
  readonly contrast?: number;
}

export type Ssd1306ErrorCode =
  /** The options cannot describe a real module (address, contrast). */
  | "E_DISPLAY_CONFIG"
  /** A write to the module failed (not acknowledged, no adapter, no permission). */
  | "E_DISPLAY_WRITE";

/** Every failure of this driver: a stable code and one sentence with what to check. */
export class Ssd1306Error extends DisplayError<Ssd1306ErrorCode> {
  override readonly name = "Ssd1306Error";
}

/** Control bytes (§8.1.5.1): Co=0, so the rest of the write is all commands or all data. */
const COMMANDS = 0x00;
const DATA = 0x40;

/** tAF: SEG/COM turn on about 100 ms after 0xAF (§8.9, power-on sequence). */
const DISPLAY_ON_MS = 100;

/** Bytes a window costs besides its data: 0x00 0x21 a b 0x22 p q, then the 0x40 before the data. */
const WINDOW_OVERHEAD = 8;

const PAGES = OLED_HEIGHT / 8;

/** A column/page address window to rewrite: columns `c0..c1`, pages `p0..p1`, inclusive. */
interface Window {
  readonly c0: number;
  readonly c1: number;
  readonly p0: number;
  readonly p1: number;
}

export class Ssd1306Display {
  readonly #bus: I2CBus;
  readonly #address: Ssd1306Address;
  readonly #clock: Clock;
  /** The controller turns the picture a half turn (rotate 180 and 270). */
  readonly #flip: boolean;
  /** The page is laid out in portrait and turned a quarter in software (rotate 90 and 270). */
  readonly #quarter: boolean;
  readonly #geometry: OledGeometry;
  readonly #timing: OledTiming;
  readonly #contrast: number;
  /** What GDDRAM holds, in page bytes; undefined when unknown, which forces init and a full frame. */
  #shown: Uint8Array | undefined;
  /** The last frame rendered, as laid out (what the glass shows once sent, before `rotate`). */
  #frame: Bitmap;
  /** Since when the screen up now has been up: its pages turn from then (see screenFamily). */
  #since: { readonly family: string; readonly at: number } | undefined;
  /** Calls run one at a time, in order: a slow bus must not interleave two frames. */
  readonly #queue = new SerialQueue();

  constructor(options: Ssd1306DisplayOptions) {
    const address = options.address ?? 0x3c;
    if (address !== 0x3c && address !== 0x3d) {
      throw new Ssd1306Error(
        "E_DISPLAY_CONFIG",
        `The SSD1306 address ${String(address)} is not one the chip can have; use 0x3C, or 0x3D if the module's address jumper is moved.`,
      );
    }
    const contrast = options.contrast ?? 0xcf;
    if (!Number.isInteger(contrast) || contrast < 0 || contrast > 255) {
      throw new Ssd1306Error(
        "E_DISPLAY_CONFIG",
        `The SSD1306 contrast must be 0-255, got ${String(contrast)}.`,
      );
    }
    this.#bus = options.bus;
    this.#address = address;
    this.#clock = options.clock;
    const rotate = options.rotate ?? 0;
    this.#flip = rotate === 180 || rotate === 270;
    this.#quarter = rotate === 90 || rotate === 270;
    this.#geometry = this.#quarter ? OLED_PORTRAIT : OLED_LANDSCAPE;
    this.#frame = this.#blank();
    this.#timing = options.timing ?? {};
    this.#contrast = contrast;
  }

  /**
   * The datasheet's software initialisation flow chart (Application Example), with the charge pump
   * enabled as its Charge Pump Regulator section asks for modules without external VCC; then a
   * blank frame into GDDRAM, whose power-on content is undefined, before the display goes on.
   * Resolves once the panel is lit. `show()` initialises by itself when needed, with its own frame.
   */
  init(): Promise<void> {
    return this.#queue.run(() => this.#init(this.#blank()));
  }

  /** Draws `screen` as it should look at `now` (epoch ms), sending only the pages and columns that changed. */
  show(screen: Screen, now: number): Promise<void> {
    return this.#queue.run(() => {
      const family = screenFamily(screen);
      if (this.#since?.family !== family) this.#since = { family, at: now };
      return this.#draw(oledFrame(screen, now, this.#timing, this.#since.at, this.#geometry));
    });
  }

  /** Blanks the glass (GDDRAM to 0; the display stays on, so the next screen needs no init). */
  clear(): Promise<void> {
    return this.#queue.run(() => {
      this.#since = undefined;
      return this.#draw(this.#blank());
    });
  }

  /** A copy of the last frame rendered, on = lit, as laid out (before `rotate`). */
  frame(): Bitmap {
    return this.#frame.clone();
  }

  /** Configures the panel, writes `first` as a whole frame (GDDRAM's power-on content is undefined), then switches on. */
  async #init(first: Bitmap): Promise<void> {
    this.#shown = undefined;
    this.#frame = first;
    const sequence: ReadonlyArray<readonly number[]> = [
      // Display off while configuring (§10.1.12).
      [0xae],
      // Clock: divide ratio 1, oscillator at its default (§10.1.16).
      [0xd5, 0x80],
      // Multiplex ratio 64 (§10.1.11), no display offset (§10.1.15), start line 0 (§10.1.6).
      [0xa8, OLED_HEIGHT - 1],
      [0xd3, 0x00],
      [0x40],
      // Charge pump on, before display on: these modules have no external VCC (Charge Pump Regulator, 8Dh).
      [0x8d, 0x14],
      // Horizontal addressing, so that one window write covers several pages (§10.1.3).
      [0x20, 0x00],
      // On the usual module SEG0 is at the right and COM63 at the top: remap both so that column 0
      // is on the left and page 0 at the top with the pins up; a panel mounted upside down keeps
      // the chip's own order instead (§10.1.8, §10.1.14).
      [this.#flip ? 0xa0 : 0xa1],
      [this.#flip ? 0xc0 : 0xc8],
      // Alternative COM pins, no left/right remap: what 128x64 glass is wired for (§10.1.18, Table 10-3).
      [0xda, 0x12],
      // Contrast (§10.1.7); pre-charge 15/1 DCLKs for the internal pump (§10.1.17); VCOMH about
      // 0.83 x VCC (§10.1.19).
      [0x81, this.#contrast],
      [0xd9, 0xf1],
      [0xdb, 0x30],
      // Output follows RAM (§10.1.9), not inverted (§10.1.10), scrolling off in case a previous
      // program left it on (§10.2.3).
      [0xa4],
      [0xa6],
      [0x2e],
    ];
    await this.#send(COMMANDS, sequence.flat());
    const pages = this.#pageBytes(first);
    await this.#writeWindow({ c0: 0, c1: OLED_WIDTH - 1, p0: 0, p1: PAGES - 1 }, pages);
    await this.#send(COMMANDS, [0xaf]);
    this.#shown = pages;
    await this.#clock.sleep(DISPLAY_ON_MS);
  }

  async #draw(frame: Bitmap): Promise<void> {
    const shown = this.#shown;
    // Never initialised, or a write failed: the frame goes in whole, before the display goes on.
    if (shown === undefined) return this.#init(frame);
    const next = this.#pageBytes(frame);
    this.#frame = frame;
    for (const window of dirtyWindows(shown, next)) await this.#writeWindow(window, next);
    this.#shown = next;
  }

  /** An empty page in the layout's geometry. */
  #blank(): Bitmap {
    return new Bitmap(this.#geometry.width, this.#geometry.height);
  }

  /** The page as GDDRAM bytes: a portrait page turned a quarter onto the 128x64 panel first. */
  #pageBytes(frame: Bitmap): Uint8Array {
    return (this.#quarter ? frame.rotate(90) : frame).toPageBytes();
  }

  /** Points the horizontal-mode window at `window` (§10.1.4, §10.1.5) and streams its bytes of `pages`. */
  async #writeWindow(window: Window, pages: Uint8Array): Promise<void> {
    const { c0, c1, p0, p1 } = window;
    await this.#send(COMMANDS, [0x21, c0, c1, 0x22, p0, p1]);
    const data: number[] = [];
    for (let page = p0; page <= p1; page++) {
      for (let column = c0; column <= c1; column++) data.push(pages[page * OLED_WIDTH + column] ?? 0);
    }
    // A full frame is 1025 bytes in one write, well under i2c-dev's 8192-byte message limit.
    await this.#send(DATA, data);
  }

  async #send(control: number, bytes: readonly number[]): Promise<void> {
    try {
      await this.#bus.write(this.#address, Uint8Array.from([control, ...bytes]));
    } catch (error) {
      // The write may have stopped part-way: the registers, the write pointer and GDDRAM are now
      // unknown (the module may even have been power-cycled), so the next show() starts from init.
      this.#shown = undefined;
      const why = error instanceof Error ? error.message : String(error);
      const address = `0x${this.#address.toString(16).toUpperCase()}`;
      throw new Ssd1306Error(
        "E_DISPLAY_WRITE",
        `The SSD1306 OLED at I2C address ${address} did not accept a write (${why}). Check its wiring (SDA, SCL, VCC, GND), that I2C is enabled ('sudo raspi-config', Interface Options, I2C) and its address ('i2cdetect -y 1' lists what answers; these modules use 0x3C, or 0x3D with the address jumper moved).`,
        error,
      );
    }
  }
}

/**
 * The windows to rewrite to turn `before` into `after` (both page bytes, 128 a page): per page,
 * the smallest column range that differs; runs of neighbouring dirty pages are merged into one
 * window over the union of their columns when that costs no more bytes than separate windows
 * (each window costs its data plus `WINDOW_OVERHEAD`).
 */
export function dirtyWindows(before: Uint8Array, after: Uint8Array): Window[] {
  const ranges: Array<[number, number] | undefined> = [];
  for (let page = 0; page < PAGES; page++) {
    let first = -1;
    let last = -1;
    for (let column = 0; column < OLED_WIDTH; column++) {
      const i = page * OLED_WIDTH + column;
      if (before[i] === after[i]) continue;
      if (first < 0) first = column;
      last = column;
    }
    ranges.push(first < 0 ? undefined : [first, last]);
  }
  const windows: Window[] = [];
  const cost = (w: Window): number => WINDOW_OVERHEAD + (w.c1 - w.c0 + 1) * (w.p1 - w.p0 + 1);
  for (const [page, range] of ranges.entries()) {
    if (range === undefined) continue;
    const own: Window = { c0: range[0], c1: range[1], p0: page, p1: page };
    const previous = windows.at(-1);
    if (previous !== undefined && previous.p1 === page - 1) {
      const merged: Window = {
        c0: Math.min(previous.c0, own.c0),
        c1: Math.max(previous.c1, own.c1),
        p0: previous.p0,
        p1: page,
      };
      if (cost(merged) <= cost(previous) + cost(own)) {
        windows[windows.length - 1] = merged;
        continue;
      }
    }
    windows.push(own);
  }
  return windows;
}
