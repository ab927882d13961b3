import type { Clock } from "../../../agent/core/clock.ts";
import { SerialQueue } from "../../../agent/core/serial.ts";
import type { I2CBus } from "../../bus/types.ts";
import { DisplayError } from "../../errors.ts";
import { type Screen, screenFamily } from "../../screens.ts";
import { DEFAULT_PAGE_MS, lcdFrame } from "./layout.ts";

/**
 * HD44780 character LCD (16x2, 20x4) on a PCF8574 I2C backpack, write-only: R/W is held low,
 * so the busy flag is never read and every wait is a timed sleep on the injected clock.
 *
 * Datasheet references are to the Hitachi HD44780U (ADE-207-272(Z)) and the NXP PCF8574.
 * Every wait is explicit, whatever the bus speed: at 100 kHz two I2C bytes between E edges are
 * 180 µs, but boards often run the bus at 400 kHz (`dtparam=i2c_arm_baudrate=400000`, for an OLED
 * on the same bus), and 45 µs is no margin over an instruction's 37-41 µs (Table 6), which a slow
 * oscillator stretches further. So each instruction or character goes in a write of its own
 * followed by `EXEC_WAIT_MS` on the injected clock (on a Pi, a timer: a millisecond or so), as
 * RPLCD waits 100 µs after each; Clear Display, the power-on wait and the Figure 24 waits are
 * longer sleeps. A full 20x4 frame is then some 90 writes, a tenth of a second; a countdown tick
 * a few.
 */

/** PCF8574 outputs on the common backpack: P0=RS, P1=R/W, P2=E, P3=backlight, P4..P7=DB4..DB7. */
const RS = 0x01;
const E = 0x04;
const BACKLIGHT = 0x08;

/** Figure 24: more than 40 ms after VCC rises to 2.7 V (15 ms after 4.5 V); we cannot tell which, or when. */
const POWER_ON_WAIT_MS = 50;
/** Figure 24: more than 4.1 ms after the first 0x3. */
const FIRST_WAIT_MS = 4.5;
/** Figure 24: more than 100 µs after the second 0x3. */
const SECOND_WAIT_MS = 0.15;
/**
 * Clear Display: 1.52 ms at fOSC = 270 kHz (Table 6); the datasheet allows an oscillator down to
 * 190 kHz, which stretches it to 2.16 ms.
 */
const CLEAR_WAIT_MS = 2.5;
/**
 * After any other instruction or character: 37 µs (+ tADD 4 µs for a RAM write) at 270 kHz,
 * 58 µs at 190 kHz; 100 µs, as RPLCD waits, leaves room for a slow clone.
 */
const EXEC_WAIT_MS = 0.1;

const FUNCTION_SET_4BIT_2LINE_5X8 = 0x28;
const DISPLAY_OFF = 0x08;
const CLEAR = 0x01;
const ENTRY_INCREMENT = 0x06;
const DISPLAY_ON_NO_CURSOR = 0x0c;
const SET_DDRAM = 0x80;

export interface Hd44780DisplayOptions {
  readonly bus: I2CBus;
  /** 7-bit I2C address of the backpack: 0x27 (PCF8574) or 0x3F (PCF8574A) as shipped. */
  readonly address: number;
  readonly columns: 16 | 20;
  readonly rows: 2 | 4;
  readonly clock: Clock;
  /** Backlight on; default true. */
  readonly backlight?: boolean;
  /** How long each page of a long URL or message stays up, ms; default 3000. */
  readonly pageMs?: number;
}

export type Hd44780ErrorCode =
  /** The options cannot describe a real module (address, size). */
  | "E_DISPLAY_CONFIG"
  /** A write to the backpack failed (not acknowledged, no adapter, no permission). */
  | "E_DISPLAY_WRITE";

/** Every failure of this driver: a stable code and one sentence with what to check. */
export class Hd44780Error extends DisplayError<Hd44780ErrorCode> {
  override readonly name = "Hd44780Error";
}

/** One I2C write of PCF8574 bytes, then how long the controller needs before the next. */
interface Write {
  readonly bytes: number[];
  readonly waitMs: number;
}

/** The writes of one step, the bytes not yet closed into a write, and the RS level they leave on the pins. */
interface Burst {
  readonly writes: Write[];
  bytes: number[];
  rs: 0 | 1 | undefined;
}

export class Hd44780Display {
  readonly #bus: I2CBus;
  readonly #address: number;
  readonly #columns: 16 | 20;
  readonly #rows: 2 | 4;
  readonly #clock: Clock;
  readonly #pageMs: number;
  #backlight: number;
  /** RS as last driven onto the PCF8574; undefined when unknown (before init, after a failure). */
  #rs: 0 | 1 | undefined;
  /** The rows we know are on the glass; undefined when unknown, which forces init and a full draw. */
  #shown: string[] | undefined;
  /** Since when the screen up now has been up: its pages turn from then (see screenFamily). */
  #since: { readonly family: string; readonly at: number } | undefined;
  /** Calls run one at a time, in order: a slow bus must not interleave two frames. */
  readonly #queue = new SerialQueue();

  constructor(options: Hd44780DisplayOptions) {
    if (!Number.isInteger(options.address) || options.address < 0x03 || options.address > 0x77) {
      throw new Hd44780Error(
        "E_DISPLAY_CONFIG",
        `The HD44780 address ${String(options.address)} is not a 7-bit I2C device address (0x03-0x77); backpacks use 0x27 or 0x3F.`,
      );
    }
    if (![16, 20].includes(options.columns) || ![2, 4].includes(options.rows)) {
      throw new Hd44780Error(
        "E_DISPLAY_CONFIG",
        `An HD44780 of ${String(options.columns)}x${String(options.rows)} is not supported; use 16x2 or 20x4.`,
      );
    }
    this.#bus = options.bus;
    this.#address = options.address;
    this.#columns = options.columns;
    this.#rows = options.rows;
    this.#clock = options.clock;
    this.#pageMs = options.pageMs ?? DEFAULT_PAGE_MS;
    this.#backlight = options.backlight === false ? 0 : BACKLIGHT;
  }

  /**
   * Initialisation by instruction (Figure 24, 4-bit). Works from power-on and from a controller
   * already in 4-bit mode, whatever its nibble alignment: three 0x3s read as 8-bit Function Sets
   * from 8-bit mode; in 4-bit mode the first one or two complete a pending byte and the rest pair
   * up as 0x33, which is 8-bit Function Set too. Either way the controller is in 8-bit mode
   * before the 0x2 that selects 4 bits.
   */
  init(): Promise<void> {
    return this.#queue.run(() => this.#init());
  }

  /** Draws `screen` as it should look at `now` (epoch ms), writing only the cells that changed. */
  show(screen: Screen, now: number): Promise<void> {
    return this.#queue.run(async () => {
      if (this.#shown === undefined) await this.#init();
      const family = screenFamily(screen);
      if (this.#since?.family !== family) this.#since = { family, at: now };
      const geometry = { columns: this.#columns, rows: this.#rows };
      await this.#draw(lcdFrame(screen, now, geometry, this.#pageMs, this.#since.at));
    });
  }

  /** Blanks the glass (Clear Display). */
  clear(): Promise<void> {
    return this.#queue.run(async () => {
      this.#since = undefined;
      if (this.#shown === undefined) {
        await this.#init();
        return;
      }
      await this.#clear();
    });
  }

  /** Switches the backlight (PCF8574 P3) without touching the controller. */
  setBacklight(on: boolean): Promise<void> {
    return this.#queue.run(async () => {
      this.#backlight = on ? BACKLIGHT : 0;
      // E stays low, so the HD44780 ignores this byte; RS keeps its level.
      await this.#send([this.#backlight | (this.#rs === 1 ? RS : 0)]);
    });
  }

  async #init(): Promise<void> {
    this.#shown = undefined;
    // E, RS and R/W low. After the PCF8574's power-on reset all its pins are high (E too); this
    // ends that pulse before we start our own.
    await this.#send([this.#backlight]);
    this.#rs = 0;
    await this.#clock.sleep(POWER_ON_WAIT_MS);
    await this.#sendBurst((b) => this.#nibble(b, 0, 0x3));
    await this.#clock.sleep(FIRST_WAIT_MS);
    await this.#sendBurst((b) => this.#nibble(b, 0, 0x3));
    await this.#clock.sleep(SECOND_WAIT_MS);
    await this.#sendBurst((b) => {
      // In 8-bit mode each of these single nibbles is a whole instruction, with its own wait.
      this.#nibble(b, 0, 0x3);
      this.#settle(b, EXEC_WAIT_MS);
      this.#nibble(b, 0, 0x2);
      this.#settle(b, EXEC_WAIT_MS);
      // Both 16x2 and 20x4 modules are 2-line controllers (20x4 splits each line over two rows).
      this.#instruction(b, FUNCTION_SET_4BIT_2LINE_5X8);
      this.#instruction(b, DISPLAY_OFF);
    });
    await this.#clear();
    await this.#sendBurst((b) => {
      this.#instruction(b, ENTRY_INCREMENT);
      this.#instruction(b, DISPLAY_ON_NO_CURSOR);
    });
  }

  async #clear(): Promise<void> {
    this.#shown = undefined;
    await this.#sendBurst((b) => this.#instruction(b, CLEAR, CLEAR_WAIT_MS));
    this.#shown = Array.from({ length: this.#rows }, () => " ".repeat(this.#columns));
  }

  async #draw(frame: readonly string[]): Promise<void> {
    const shown = this.#shown ?? [];
    const burst: Burst = { writes: [], bytes: [], rs: this.#rs };
    for (const [row, text] of frame.entries()) {
      const before = shown[row] ?? "";
      for (const [start, end] of changedRuns(before, text)) {
        this.#instruction(burst, SET_DDRAM | (this.#rowAddress(row) + start));
        for (let column = start; column < end; column++) this.#data(burst, romCode(text.charAt(column)));
      }
    }
    if (burst.writes.length === 0) return;
    this.#shown = undefined;
    await this.#flush(burst);
    this.#shown = [...frame];
  }

  /** DDRAM address of a row's first cell: 0x00, 0x40, then the second halves of both lines. */
  #rowAddress(row: number): number {
    return (row % 2) * 0x40 + (row >= 2 ? this.#columns : 0);
  }

  #instruction(burst: Burst, value: number, waitMs = EXEC_WAIT_MS): void {
    this.#nibble(burst, 0, value >> 4);
    this.#nibble(burst, 0, value & 0x0f);
    this.#settle(burst, waitMs);
  }

  #data(burst: Burst, value: number): void {
    this.#nibble(burst, 1, value >> 4);
    this.#nibble(burst, 1, value & 0x0f);
    this.#settle(burst, EXEC_WAIT_MS);
  }

  /** Ends a write at the instruction just latched: the controller gets `waitMs` before the next. */
  #settle(burst: Burst, waitMs: number): void {
    burst.writes.push({ bytes: burst.bytes, waitMs });
    burst.bytes = [];
  }

  /** One nibble: E high then E low with the data held; RS set beforehand when it changes (tAS, Figure 25). */
  #nibble(burst: Burst, rs: 0 | 1, nibble: number): void {
    const pins = ((nibble & 0x0f) << 4) | this.#backlight | (rs === 1 ? RS : 0);
    if (burst.rs !== rs) burst.bytes.push(pins);
    burst.bytes.push(pins | E, pins);
    burst.rs = rs;
  }

  async #sendBurst(fill: (burst: Burst) => void): Promise<void> {
    const burst: Burst = { writes: [], bytes: [], rs: this.#rs };
    fill(burst);
    // A lone nibble of the init sequence has its own sleep after it, taken by the caller.
    if (burst.bytes.length > 0) this.#settle(burst, 0);
    await this.#flush(burst);
  }

  /** Each write, then its wait on the clock: the controller's time, whatever the bus's speed. */
  async #flush(burst: Burst): Promise<void> {
    for (const write of burst.writes) {
      await this.#send(write.bytes);
      if (write.waitMs > 0) await this.#clock.sleep(write.waitMs);
    }
    this.#rs = burst.rs;
  }

  async #send(bytes: readonly number[]): Promise<void> {
    try {
      await this.#bus.write(this.#address, Uint8Array.from(bytes));
    } catch (error) {
      // The write may have stopped part-way: the pins, the nibble alignment and the glass are now
      // unknown, so the next show() starts again from init.
      this.#rs = undefined;
      this.#shown = undefined;
      const why = error instanceof Error ? error.message : String(error);
      throw new Hd44780Error(
        "E_DISPLAY_WRITE",
        `The HD44780 LCD at I2C address 0x${this.#address.toString(16).toUpperCase()} did not accept a write (${why}). Check its wiring and address ('i2cdetect -y 1' lists what answers; backpacks use 0x27 or 0x3F).`,
        error,
      );
    }
  }
}

/**
 * Half-open [start, end) column ranges that differ between two rows. Runs one unchanged cell
 * apart are merged: rewriting a cell costs 4 bytes, a new Set DDRAM Address 4 to 6.
 */
export function changedRuns(before: string, after: string): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (let column = 0; column < after.length; column++) {
    if (before.charAt(column) === after.charAt(column)) continue;
    const last = runs.at(-1);
    if (last !== undefined && column - last[1] <= 1) last[1] = column + 1;
    else runs.push([column, column + 1]);
  }
  return runs;
}

/** The A00 ROM code for a character of an `lcdFrame` row; anything outside its ASCII part as "?". */
function romCode(char: string): number {
  const code = char.charCodeAt(0);
  return code >= 0x20 && code <= 0x7d && code !== 0x5c ? code : 0x3f;
}
