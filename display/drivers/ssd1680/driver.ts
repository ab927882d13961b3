import type { Clock } from "../../../agent/core/clock.ts";
import { SerialQueue } from "../../../agent/core/serial.ts";
import type { GpioLine, SpiBus } from "../../bus/types.ts";
import { DisplayError } from "../../errors.ts";
import { Bitmap } from "../../render/bitmap.ts";
import type { Rotation } from "../../schema.ts";
import { type Screen, showsCode } from "../../screens.ts";
import {
  EINK_HEIGHT,
  EINK_LANDSCAPE,
  EINK_PORTRAIT,
  EINK_WIDTH,
  type EinkGeometry,
  einkFrame,
} from "./layout.ts";

/**
 * SSD1680 e-ink panel, 2.13" 250x122 (Waveshare V4 class), on SPI plus DC, RST and BUSY lines.
 * Renders each screen into a Bitmap (layout.ts; landscape, or portrait when `rotate` is 90 or 270),
 * turns it by `rotate` onto the landscape glass and from there into the controller's portrait RAM
 * (122 sources by 250 gates), and refreshes the glass. The panel's power switch (`pwr`, on
 * Waveshare's newer HATs) is not the driver's: it is raised when the display is opened and lowered
 * when it is released (index.ts).
 *
 * Refresh policy (each refresh is visible: about 2 s of flashing for a full one, 0.5 s for a
 * partial one):
 * - Full refresh when the glass is unknown (first draw, after an error), when a new user code
 *   appears, and whenever the screen changes kind. "code" and "waiting" with the same user code
 *   count as one kind: the waiting screen is the same picture plus a note, and a second full
 *   refresh right after the first would only flash. Every non-code screen after a code screen is
 *   a full refresh, which drives every pixel, so the code is really gone from the glass (e-ink
 *   keeps its image unpowered; a partial refresh could leave a ghost of it).
 * - The countdown is in whole minutes and is redrawn with a partial refresh at most once every
 *   `COUNTDOWN_INTERVAL_MS` (60 s): a change that comes sooner waits for a later `show()`, so one
 *   call a second costs about 15 partial refreshes over a 15-minute code, not 900.
 * - Nothing is sent when the frame equals what the glass shows.
 * After each refresh the chip goes into deep sleep (mode 1, BUSY stays high); the next draw wakes
 * it with a hardware reset and configures it again.
 */

export interface Ssd1680DisplayOptions {
  readonly spi: SpiBus;
  /** Data/command select (output): low for command bytes, high for their data. */
  readonly dc: GpioLine;
  /** Reset (output, active low). */
  readonly rst: GpioLine;
  /** BUSY (input): high while the controller works or sleeps. */
  readonly busy: GpioLine;
  readonly clock: Clock;
  /** How long BUSY may stay high before E_DISPLAY_BUSY, ms; default 10 000 (a full refresh takes about 2 s). */
  readonly busyTimeoutMs?: number;
  /** How the panel is mounted: the page is turned clockwise by this much before it goes to RAM; default 0. */
  readonly rotate?: Rotation;
}

export type Ssd1680ErrorCode =
  /** BUSY stayed high past the timeout: unplugged BUSY wire, no power, a dead panel. */
  | "E_DISPLAY_BUSY"
  /** A write on SPI or a GPIO line failed. */
  | "E_DISPLAY_WRITE"
  | "E_DISPLAY_CONFIG";

export class Ssd1680Error extends DisplayError<Ssd1680ErrorCode> {
  override readonly name = "Ssd1680Error";
}

/** The shortest time between two countdown refreshes. */
export const COUNTDOWN_INTERVAL_MS = 60_000;
/** How often BUSY is read while waiting: small next to a 2 s refresh, cheap on a GPIO line. */
const BUSY_POLL_MS = 10;
/** RST held low, then the wait before BUSY is read (the chip raises BUSY within this). */
const RESET_LOW_MS = 10;
const RESET_SETTLE_MS = 10;
/** spidev's default buffer (bufsiz): larger writes fail with EMSGSIZE. */
const SPI_CHUNK = 4096;
/** RAM geometry for the 2.13" glass: 122 sources in 16 bytes a row, 250 gates. */
const GATES = EINK_WIDTH;
const ROW_BYTES = Math.ceil(EINK_HEIGHT / 8);

type Refresh = "full" | "partial";

export class Ssd1680Display {
  readonly #spi: SpiBus;
  readonly #dc: GpioLine;
  readonly #rst: GpioLine;
  readonly #busy: GpioLine;
  readonly #clock: Clock;
  readonly #busyTimeoutMs: number;
  readonly #rotate: Rotation;
  /** The page the screens are laid out on: landscape, or portrait when turned a quarter. */
  readonly #geometry: EinkGeometry;
  /** What the glass shows, as laid out (before `rotate`); undefined when unknown (forces a full refresh). */
  #glass: Bitmap | undefined;
  /** Which picture the glass holds: "code:<user code>", or a screen kind; decides full vs partial. */
  #family: string | undefined;
  #lastRefreshAt = Number.NEGATIVE_INFINITY;
  #frame: Bitmap;
  /** Calls run one at a time: two refreshes must never interleave on the bus. */
  readonly #queue = new SerialQueue();

  constructor(options: Ssd1680DisplayOptions) {
    const timeout = options.busyTimeoutMs ?? 10_000;
    if (!(timeout > 0) || !Number.isFinite(timeout)) {
      throw new Ssd1680Error(
        "E_DISPLAY_CONFIG",
        `The e-ink BUSY timeout must be a positive number of ms, got ${String(timeout)}.`,
      );
    }
    this.#spi = options.spi;
    this.#dc = options.dc;
    this.#rst = options.rst;
    this.#busy = options.busy;
    this.#clock = options.clock;
    this.#busyTimeoutMs = timeout;
    this.#rotate = options.rotate ?? 0;
    this.#geometry = this.#rotate === 90 || this.#rotate === 270 ? EINK_PORTRAIT : EINK_LANDSCAPE;
    this.#frame = new Bitmap(this.#geometry.width, this.#geometry.height);
  }

  /**
   * Wakes the controller (hardware reset, BUSY low), configures it and puts it back to deep sleep,
   * leaving the glass as it was: a check of the wiring that costs no refresh.
   */
  init(): Promise<void> {
    return this.#queue.run(async () => {
      await this.#guard(async () => {
        await this.#wake();
        await this.#command(0x10, [0x01]);
      });
    });
  }

  /** Draws `screen` as it should look at `now` (epoch ms), under the refresh policy above. */
  show(screen: Screen, now: number): Promise<void> {
    return this.#queue.run(async () => {
      const frame = einkFrame(screen, now, this.#geometry);
      this.#frame = frame;
      const family = showsCode(screen) ? `code:${screen.userCode}` : screen.kind;
      const refresh = this.#refreshFor(frame, family, showsCode(screen), now);
      if (refresh === undefined) return;
      await this.#draw(frame, refresh);
      this.#family = family;
      this.#lastRefreshAt = now;
    });
  }

  /** Whites the whole glass with a full refresh. */
  clear(): Promise<void> {
    return this.#queue.run(async () => {
      const white = new Bitmap(this.#geometry.width, this.#geometry.height);
      this.#frame = white;
      await this.#draw(white, "full");
      this.#family = "clear";
      this.#lastRefreshAt = this.#clock.now();
    });
  }

  /** A copy of the last frame rendered, as laid out (before `rotate`), on = ink. */
  frame(): Bitmap {
    return this.#frame.clone();
  }

  #refreshFor(frame: Bitmap, family: string, countdown: boolean, now: number): Refresh | undefined {
    const glass = this.#glass;
    if (glass === undefined || family !== this.#family) return "full";
    if (frame.equals(glass)) return undefined;
    // Same picture family, new countdown (or note): a partial refresh, at most once a minute.
    if (countdown && now - this.#lastRefreshAt < COUNTDOWN_INTERVAL_MS) return undefined;
    return "partial";
  }

  async #draw(frame: Bitmap, refresh: Refresh): Promise<void> {
    const previous = this.#glass;
    await this.#guard(async () => {
      await this.#wake();
      // Full: both RAMs get the new image. Partial: RED RAM gets what the glass shows, since
      // display mode 2 drives exactly the pixels whose new and old bits differ; RAM is rewritten
      // every time because the reset after deep sleep leaves no promise about it.
      const next = this.#ramBytes(frame);
      const old = refresh === "partial" && previous !== undefined ? this.#ramBytes(previous) : next;
      // Border: follow the white LUT on a full refresh; hold it (VSS) on a partial one, so it does not flicker.
      await this.#command(0x3c, [refresh === "full" ? 0x05 : 0x80]);
      await this.#writeRam(0x26, old);
      await this.#writeRam(0x24, next);
      // 0xF7: clock, analog, load temperature and LUT, display mode 1 (full), off again.
      // 0xFF: the same with display mode 2 (partial).
      await this.#command(0x22, [refresh === "full" ? 0xf7 : 0xff]);
      await this.#command(0x20, []);
      await this.#waitIdle();
      await this.#command(0x10, [0x01]);
    });
    this.#glass = frame.clone();
  }

  /** Hardware reset (also the only way out of deep sleep), software reset, configuration. */
  async #wake(): Promise<void> {
    await this.#rst.set(0);
    await this.#clock.sleep(RESET_LOW_MS);
    await this.#rst.set(1);
    await this.#clock.sleep(RESET_SETTLE_MS);
    await this.#waitIdle();
    await this.#command(0x12, []);
    await this.#waitIdle();
    // 250 gates (MUX = 249), default scan order.
    await this.#command(0x01, [(GATES - 1) & 0xff, (GATES - 1) >> 8, 0x00]);
    // X then Y, both incrementing: RAM rows are gates, top to bottom.
    await this.#command(0x11, [0x03]);
    await this.#command(0x44, [0x00, ROW_BYTES - 1]);
    await this.#command(0x45, [0x00, 0x00, (GATES - 1) & 0xff, (GATES - 1) >> 8]);
    // RAM as written (no inversion or bypass); sources S8-S167, as the 2.13" glass is wired.
    await this.#command(0x21, [0x00, 0x80]);
    // The internal temperature sensor, so the waveform suits the room.
    await this.#command(0x18, [0x80]);
    await this.#waitIdle();
  }

  /**
   * The page as portrait RAM rows: 1 = white, leftmost source in bit 7. The glass held in landscape
   * shows RAM turned a quarter back, so the page is turned by `rotate` and then a quarter more.
   */
  #ramBytes(frame: Bitmap): Uint8Array {
    const turn = ((this.#rotate + 90) % 360) as Rotation;
    const portrait = turn === 0 ? frame : frame.rotate(turn);
    return portrait.toRowBytes({ msbFirst: true, onValue: 0 });
  }

  async #writeRam(opcode: 0x24 | 0x26, bytes: Uint8Array): Promise<void> {
    await this.#command(0x4e, [0x00]);
    await this.#command(0x4f, [0x00, 0x00]);
    await this.#command(opcode, []);
    await this.#dc.set(1);
    for (let i = 0; i < bytes.length; i += SPI_CHUNK) await this.#spi.write(bytes.subarray(i, i + SPI_CHUNK));
  }

  async #command(opcode: number, params: readonly number[]): Promise<void> {
    await this.#dc.set(0);
    await this.#spi.write(Uint8Array.of(opcode));
    if (params.length === 0) return;
    await this.#dc.set(1);
    await this.#spi.write(Uint8Array.from(params));
  }

  /** Polls BUSY until low; E_DISPLAY_BUSY after the timeout (virtual time in tests). */
  async #waitIdle(): Promise<void> {
    const start = this.#clock.now();
    while ((await this.#busy.get()) === 1) {
      if (this.#clock.now() - start >= this.#busyTimeoutMs) {
        throw new Ssd1680Error(
          "E_DISPLAY_BUSY",
          `The e-ink panel stayed busy for ${formatSeconds(this.#busyTimeoutMs)} s: check the BUSY wire and power, then restart`,
        );
      }
      await this.#clock.sleep(BUSY_POLL_MS);
    }
  }

  /** Runs `task`; on any failure the glass and registers are unknown, so the next draw starts over with a full refresh. */
  async #guard(task: () => Promise<void>): Promise<void> {
    try {
      await task();
    } catch (error) {
      this.#glass = undefined;
      this.#family = undefined;
      if (error instanceof Ssd1680Error) throw error;
      const why = error instanceof Error ? error.message : String(error);
      throw new Ssd1680Error(
        "E_DISPLAY_WRITE",
        `The e-ink panel did not accept a write (${why}). Check its wiring (DIN, CLK, CS, DC, RST, BUSY, power) and that SPI is enabled ('sudo raspi-config', Interface Options, SPI).`,
        error,
      );
    }
  }
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return Number.isInteger(seconds) ? String(seconds) : seconds.toFixed(1);
}
