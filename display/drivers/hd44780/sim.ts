import type { Clock } from "../../../agent/core/clock.ts";
import type { I2CBus } from "../../bus/types.ts";
import { SimulatorError } from "../../sim/error.ts";
import { a00Glyph, a00Text } from "./sim-font.ts";

/**
 * An HD44780 character LCD behind a PCF8574 I2C backpack, modelled at the bus: every byte the
 * driver writes sets the PCF8574's eight outputs, and the HD44780 on the other side sees only
 * those pins. Nothing here knows about our driver; it decodes the wire the way the chips would,
 * and rejects (as `Hd44780SimulatorError`) what the chips would not accept or what would only
 * work by luck on real hardware.
 *
 * Datasheet references are to the Hitachi HD44780U (ADE-207-272(Z)) and the NXP PCF8574.
 *
 * The pin map is written here on purpose rather than shared with the driver, so that a wiring
 * mistake in one is caught by the other.
 */

/** PCF8574 outputs on the common backpack: P0=RS, P1=R/W, P2=E, P3=backlight, P4..P7=DB4..DB7. */
const RS = 0x01;
const RW = 0x02;
const E = 0x04;
const BACKLIGHT = 0x08;
const DATA = 0xf0;

/** Table 6 execution times at fOSC = 270 kHz, in ms; they stretch as the oscillator runs slower. */
const EXEC_MS = 0.037;
/** Writes to RAM take 37 µs plus tADD = 4 µs before the address counter moves (Table 6 note). */
const WRITE_MS = 0.037 + 0.004;
/** Clear Display and Return Home: 1.52 ms (Table 6). */
const HOME_MS = 1.52;
/** The oscillator Table 6's times are given at. */
const NOMINAL_OSC_HZ = 270_000;
/**
 * The slowest oscillator the datasheet allows (fOSC with Rf, 190-350 kHz, Electrical
 * Characteristics): a driver must wait long enough for that module, not only for a typical one.
 */
export const SLOWEST_OSC_HZ = 190_000;
/** Figure 24: wait more than 40 ms after VCC rises to 2.7 V (15 ms after 4.5 V); we do not know which supply. */
const POWER_ON_MS = 40;

export type Hd44780SimulatorErrorCode =
  /** Nothing acknowledged the address (another address than the backpack's). */
  | "E_NACK"
  | "E_CLOSED"
  /** An instruction or data before the init-by-instruction sequence (Figure 24) completed. */
  | "E_NOT_INITIALISED"
  /** An E pulse with R/W=1: a read. We never read (R/W is driven low), so it is a driver bug. */
  | "E_READ"
  /** The two halves of one 4-bit transfer disagree on RS: a nibble lost its partner. */
  | "E_NIBBLE_PAIR"
  /** A nibble latched while the controller was still executing (Table 6) or resetting (Figure 24). */
  | "E_BUSY"
  /** RS, R/W or DB changed on the same PCF8574 write as an E edge (setup/hold times, Figure 25). */
  | "E_TIMING"
  /** Set DDRAM Address outside the map of the current line mode. */
  | "E_ADDRESS";

export class Hd44780SimulatorError extends SimulatorError<Hd44780SimulatorErrorCode> {
  override readonly name = "Hd44780SimulatorError";
}

/** The state the simulated module is in when the simulator is created. */
export type Hd44780StartState =
  /** Both chips just powered: the PCF8574's outputs all high (its power-on reset), the HD44780 in 8-bit mode, uninitialised, display off. */
  | { readonly kind: "power-on" }
  /**
   * Initialised earlier by another program (or an earlier run of ours), 2-line, display on, E low.
   * `pendingNibble` (4-bit only) is the first half of a transfer already latched: the nibble
   * alignment is off, as after a stray E pulse or a writer stopped between the halves.
   */
  | {
      readonly kind: "running";
      readonly interface: "4-bit" | "8-bit";
      readonly pendingNibble?: { readonly rs: boolean; readonly value: number };
      /** What that program left on the glass, row by row. */
      readonly text?: readonly string[];
    };

export interface Hd44780SimulatorOptions {
  /** 7-bit I2C address the backpack answers; default 0x27 (PCF8574 with A0-A2 high; a PCF8574A is 0x3F). */
  readonly address?: number;
  /** Glass columns; default 16. */
  readonly columns?: 16 | 20;
  /** Glass rows; default 2. */
  readonly rows?: 2 | 4;
  /**
   * Time for the timing checks (power-on wait, Figure 24 waits, Table 6 execution times). Each
   * write also takes its transfer time on this clock, as a real I2C write blocks for it. Without a
   * clock, timing is not checked.
   */
  readonly clock?: Clock;
  /**
   * I2C clock in Hz; default 100 kHz, the PCF8574's maximum. Boards often run 400 kHz
   * (`dtparam=i2c_arm_baudrate=400000`, for an OLED on the same bus), and the PCF8574 follows:
   * then two bytes between E edges are 45 µs, no longer enough on their own.
   */
  readonly busHz?: number;
  /**
   * The controller's oscillator in Hz; default the datasheet's slowest, 190 kHz, so that a
   * driver which only works on a typical (270 kHz) module is caught. Table 6's times scale by
   * 270 kHz / this (37 µs becomes 53 µs, 1.52 ms becomes 2.16 ms).
   */
  readonly oscillatorHz?: number;
  /** Default `{ kind: "power-on" }`. */
  readonly start?: Hd44780StartState;
  /** What `lines()` shows for a CGRAM character; default the circled index (⓪, ①…⑦). */
  readonly customCharText?: (index: number) => string;
}

export interface Hd44780SimulatorStats {
  /** Data bytes written to the PCF8574 (the address byte of each transaction not counted). */
  readonly bytes: number;
  /** I2C write transactions. */
  readonly transactions: number;
  /** Nibbles (or 8-bit transfers) latched by a falling E. */
  readonly transfers: number;
  /** Instructions executed (RS=0). */
  readonly instructions: number;
  /** Data writes to DDRAM or CGRAM (RS=1). */
  readonly dataWrites: number;
  /**
   * 4-bit transfers whose halves came in different I2C writes: the init sequence's lone 0x3s, or a
   * half left over from before (a stray pulse, an interrupted writer) being completed.
   */
  readonly splitPairs: number;
}

export interface Hd44780Cursor {
  readonly visible: boolean;
  readonly blink: boolean;
  /** Where the address counter is on the glass; undefined when it points at CGRAM or off-screen DDRAM. */
  readonly row: number | undefined;
  readonly column: number | undefined;
}

type Phase =
  /** Power-on, 8-bit: only the Figure 24 sequence is accepted; `step` counts the 0x3s seen. */
  | { readonly kind: "power-on"; readonly step: number }
  /** Just switched to 4-bit: Figure 24 wants Function Set (lines, font) first. */
  | { readonly kind: "awaiting-function-set" }
  | { readonly kind: "ready" };

interface PendingNibble {
  readonly rs: boolean;
  readonly value: number;
  /** The transaction that latched it, to tell a driver's own mismatched pair from a stray half. */
  readonly transaction: number;
}

export class Hd44780Simulator implements I2CBus {
  readonly address: number;
  readonly columns: 16 | 20;
  readonly rows: 2 | 4;
  readonly #clock: Clock | undefined;
  readonly #byteMs: number;
  /** Table 6's times stretched for this oscillator. */
  readonly #execMs: number;
  readonly #writeMs: number;
  readonly #homeMs: number;
  readonly #customCharText: (index: number) => string;

  /** The PCF8574's output latch. */
  #pins: number;
  /** Whether E's current high level was raised by a written byte (not by the PCF8574's power-on reset). */
  #pulseWritten = false;
  #interface: 4 | 8;
  #phase: Phase;
  #pending: PendingNibble | undefined;
  #busyUntil = 0;
  #busyWhy = "";
  /** When the bus is next free: a second writer waits for the first. */
  #busFreeAt = 0;
  #closed = false;

  #twoLines: boolean;
  #font5x10 = false;
  #displayOn: boolean;
  #cursorOn = false;
  #blinkOn = false;
  #increment = true;
  #shiftOnWrite = false;
  #addressCounter = 0;
  #target: "ddram" | "cgram" = "ddram";
  /** Display shift in characters (Cursor or Display Shift, or Entry Mode S=1). */
  #shift = 0;
  /** Indexed by DDRAM address (0x00-0x7F; which addresses exist depends on the line mode). */
  readonly #ddram = new Uint8Array(0x80).fill(0x20);
  /** 8 characters x 8 rows of 5-bit masks (5x8 font). */
  readonly #cgram = new Uint8Array(0x40);

  #bytes = 0;
  #transactions = 0;
  #transfers = 0;
  #instructions = 0;
  #dataWrites = 0;
  #splitPairs = 0;

  constructor(options: Hd44780SimulatorOptions = {}) {
    this.address = options.address ?? 0x27;
    this.columns = options.columns ?? 16;
    this.rows = options.rows ?? 2;
    this.#clock = options.clock;
    // One byte on I2C is 8 data bits plus the acknowledge bit.
    this.#byteMs = (9 / (options.busHz ?? 100_000)) * 1000;
    const stretch = NOMINAL_OSC_HZ / (options.oscillatorHz ?? SLOWEST_OSC_HZ);
    this.#execMs = EXEC_MS * stretch;
    this.#writeMs = WRITE_MS * stretch;
    this.#homeMs = HOME_MS * stretch;
    this.#customCharText =
      options.customCharText ?? ((index) => (index === 0 ? "\u24ea" : String.fromCharCode(0x245f + index)));
    const start = options.start ?? { kind: "power-on" };
    if (start.kind === "power-on") {
      // PCF8574 §"Power-on reset": all I/Os high, so E is high and R/W=1 until the first write.
      this.#pins = 0xff;
      this.#interface = 8;
      this.#phase = { kind: "power-on", step: 0 };
      this.#twoLines = false;
      this.#displayOn = false;
      this.#busyUntil = (this.#clock?.now() ?? 0) + POWER_ON_MS;
      this.#busyWhy = `the controller is still in its power-on reset (wait more than ${POWER_ON_MS} ms, Figure 24)`;
    } else {
      this.#pins = BACKLIGHT;
      this.#interface = start.interface === "4-bit" ? 4 : 8;
      this.#phase = { kind: "ready" };
      this.#twoLines = true;
      this.#displayOn = true;
      if (start.pendingNibble !== undefined && this.#interface === 4) {
        this.#pending = {
          rs: start.pendingNibble.rs,
          value: start.pendingNibble.value & 0x0f,
          transaction: 0,
        };
      }
      for (const [row, text] of (start.text ?? []).entries()) {
        for (let column = 0; column < Math.min(text.length, this.columns); column++) {
          const address = this.#cellAddress(row, column);
          if (address !== undefined) this.#ddram[address] = text.charCodeAt(column) & 0xff;
        }
      }
    }
  }

  // --- I2CBus -------------------------------------------------------------------------------

  async write(address: number, data: Uint8Array): Promise<void> {
    if (this.#closed) throw new Hd44780SimulatorError("E_CLOSED", "The simulated I2C bus is closed.");
    if (address !== this.address) {
      throw new Hd44780SimulatorError(
        "E_NACK",
        `No device acknowledged I2C address 0x${hex(address)} (the simulated backpack is at 0x${hex(this.address)}).`,
      );
    }
    this.#transactions++;
    const start = Math.max(this.#clock?.now() ?? 0, this.#busFreeAt);
    // The outputs change at the acknowledge of each byte, after the address byte (PCF8574 Figure "Write mode").
    for (const [index, byte] of data.entries()) {
      this.#bytes++;
      this.#output(byte, start + (index + 2) * this.#byteMs);
    }
    const end = start + (data.length + 1) * this.#byteMs;
    this.#busFreeAt = end;
    // A real write returns once the bytes are on the wire; on a virtual clock that is a sleep.
    if (this.#clock !== undefined) await this.#clock.sleep(Math.max(0, end - this.#clock.now()));
  }

  async probe(address: number): Promise<boolean> {
    return !this.#closed && address === this.address;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  // --- What a person sees ---------------------------------------------------------------------

  /** The glass as text, row by row (blank when the display is off or a row is not driven). */
  lines(): string[] {
    return Array.from({ length: this.rows }, (_, row) =>
      Array.from({ length: this.columns }, (_, column) => {
        const code = this.#visibleCode(row, column);
        if (code === undefined) return " ";
        if (code < 0x10) return this.#customCharText(code & 0x07);
        return a00Text(code) ?? "\ufffd";
      }).join(""),
    );
  }

  /** The character code shown in a cell, or undefined when nothing is shown there. */
  codeAt(row: number, column: number): number | undefined {
    return this.#visibleCode(row, column);
  }

  /**
   * The 5x8 dots of one cell (8 rows of 5), true = lit. The cursor underlines the eighth row;
   * a blinking cursor lights the whole cell during `blinkPhase` (it alternates every 409.6 ms at
   * fcp = 250 kHz, "Display On/Off Control"). Codes whose pattern is not modelled (katakana,
   * Greek) are drawn hatched.
   */
  cellDots(row: number, column: number, blinkPhase = false): boolean[][] {
    const code = this.#visibleCode(row, column);
    let masks: readonly number[];
    if (code === undefined) masks = [0, 0, 0, 0, 0, 0, 0, 0];
    else if (code < 0x10) masks = [...this.#cgram.subarray((code & 0x07) * 8, (code & 0x07) * 8 + 8)];
    else masks = a00Glyph(code) ?? [0x15, 0x0a, 0x15, 0x0a, 0x15, 0x0a, 0x15, 0];
    const cursor = this.cursor;
    const here = code !== undefined && cursor.row === row && cursor.column === column;
    return masks.map((mask, dotRow) => {
      let lit = mask & 0x1f;
      if (here && cursor.visible && dotRow === 7) lit = 0x1f;
      if (here && cursor.blink && blinkPhase) lit = 0x1f;
      return [0x10, 0x08, 0x04, 0x02, 0x01].map((bit) => (lit & bit) !== 0);
    });
  }

  /** The whole glass as dots: `rows * 8` rows of `columns * 5` dots, cells abutting (no gaps). */
  glass(blinkPhase = false): boolean[][] {
    const dots: boolean[][] = [];
    for (let row = 0; row < this.rows; row++) {
      const cells = Array.from({ length: this.columns }, (_, column) =>
        this.cellDots(row, column, blinkPhase),
      );
      for (let dotRow = 0; dotRow < 8; dotRow++) dots.push(cells.flatMap((cell) => cell[dotRow] ?? []));
    }
    return dots;
  }

  /** PCF8574 P3: the backlight transistor. */
  get backlight(): boolean {
    return (this.#pins & BACKLIGHT) !== 0;
  }

  get displayOn(): boolean {
    return this.#displayOn;
  }

  get cursor(): Hd44780Cursor {
    const place = this.#target === "ddram" ? this.#placeOf(this.#addressCounter) : undefined;
    return { visible: this.#cursorOn, blink: this.#blinkOn, row: place?.row, column: place?.column };
  }

  /** 4 or 8: the interface width the controller currently expects. */
  get interfaceBits(): 4 | 8 {
    return this.#interface;
  }

  /** 1 or 2 (Function Set N). */
  get lineMode(): 1 | 2 {
    return this.#twoLines ? 2 : 1;
  }

  /** Function Set F; 5x10 only takes effect in 1-line mode (Table 8), and is not drawn by `glass`. */
  get font(): "5x8" | "5x10" {
    return this.#font5x10 && !this.#twoLines ? "5x10" : "5x8";
  }

  /** Entry Mode Set: I/D and S. */
  get entryMode(): { readonly increment: boolean; readonly shift: boolean } {
    return { increment: this.#increment, shift: this.#shiftOnWrite };
  }

  /** Whether the init-by-instruction sequence and its Function Set have been done. */
  get initialised(): boolean {
    return this.#phase.kind === "ready";
  }

  get stats(): Hd44780SimulatorStats {
    return {
      bytes: this.#bytes,
      transactions: this.#transactions,
      transfers: this.#transfers,
      instructions: this.#instructions,
      dataWrites: this.#dataWrites,
      splitPairs: this.#splitPairs,
    };
  }

  // --- PCF8574 pins → HD44780 bus cycles ------------------------------------------------------

  #output(byte: number, at: number): void {
    const before = this.#pins;
    this.#pins = byte;
    const wasHigh = (before & E) !== 0;
    const isHigh = (byte & E) !== 0;
    if (!wasHigh && isHigh) {
      if ((byte & RW) !== 0) {
        throw new Hd44780SimulatorError(
          "E_READ",
          "E was raised with R/W=1 (a read); the driver must keep R/W low.",
        );
      }
      // RS and R/W must be stable tAS = 40 ns before E rises (Figure 25); the PCF8574 switches all
      // its outputs together, so they must already be set by an earlier byte.
      if (((before ^ byte) & (RS | RW)) !== 0) {
        throw new Hd44780SimulatorError(
          "E_TIMING",
          "RS changed on the same PCF8574 write that raised E: set RS with E low first (tAS, Figure 25).",
        );
      }
      this.#pulseWritten = true;
      return;
    }
    if (wasHigh && !isHigh) {
      if (!this.#pulseWritten) {
        // The high E left by the PCF8574's power-on reset ends with the first write: the HD44780
        // saw a read cycle (R/W was high too), which changes nothing a driver relies on.
        return;
      }
      this.#pulseWritten = false;
      // DB and RS must hold tH/tAH = 10 ns after E falls: unchanged on the byte that lowers E.
      if (((before ^ byte) & (RS | RW | DATA)) !== 0) {
        throw new Hd44780SimulatorError(
          "E_TIMING",
          "DB4-DB7 or RS changed on the same PCF8574 write that lowered E: they must hold while E falls (tH, Figure 25).",
        );
      }
      this.#latch((before & RS) !== 0, (before & DATA) >> 4, at);
      return;
    }
    if (wasHigh && isHigh && this.#pulseWritten) {
      if ((byte & RW) !== 0) {
        throw new Hd44780SimulatorError(
          "E_READ",
          "R/W went high during an E pulse (a read); the driver must keep R/W low.",
        );
      }
      if (((before ^ byte) & RS) !== 0) {
        throw new Hd44780SimulatorError(
          "E_TIMING",
          "RS changed while E was high: it must be stable for the whole pulse (tAS/tAH, Figure 25).",
        );
      }
    }
  }

  /** One falling E: a nibble in 4-bit mode, a whole (half-wired) byte in 8-bit mode. */
  #latch(rs: boolean, nibble: number, at: number): void {
    this.#transfers++;
    if (this.#clock !== undefined && at < this.#busyUntil) {
      throw new Hd44780SimulatorError(
        "E_BUSY",
        `A transfer arrived ${formatMs(this.#busyUntil - at)} too early: ${this.#busyWhy}.`,
      );
    }
    if (this.#interface === 8) {
      if (this.#phase.kind === "power-on") {
        this.#powerOnStep(rs, nibble, at);
        return;
      }
      // DB0-DB3 are not wired on the backpack; the HD44780's pull-up MOS reads them as 1s.
      this.#execute(rs, (nibble << 4) | 0x0f, at, false);
      return;
    }
    const first = this.#pending;
    if (first === undefined) {
      this.#pending = { rs, value: nibble, transaction: this.#transactions };
      return;
    }
    this.#pending = undefined;
    const split = first.transaction !== this.#transactions;
    if (split) this.#splitPairs++;
    if (first.rs !== rs) {
      if (!split) {
        throw new Hd44780SimulatorError(
          "E_NIBBLE_PAIR",
          `The two halves of a 4-bit transfer disagree on RS (0x${first.value.toString(16)} with RS=${Number(first.rs)}, then 0x${nibble.toString(16)} with RS=${Number(rs)}): a nibble is missing its partner.`,
        );
      }
      // A half left over from before (a stray pulse, an interrupted writer): the chip pairs it
      // anyway. The datasheet does not say which RS wins; we take the completing nibble's.
    }
    this.#execute(rs, (first.value << 4) | nibble, at, split);
  }

  /** Figure 24, 4-bit: 0x3 (wait > 4.1 ms), 0x3 (wait > 100 µs), 0x3, then 0x2. */
  #powerOnStep(rs: boolean, nibble: number, at: number): void {
    const step = this.#phase.kind === "power-on" ? this.#phase.step : 0;
    const expected = step < 3 ? 0x3 : 0x2;
    // A fourth 0x3 is the 8-bit flow's Function Set: legal, it leaves the controller in 8-bit mode.
    if (rs || (nibble !== expected && !(step >= 3 && nibble === 0x3))) {
      throw new Hd44780SimulatorError(
        "E_NOT_INITIALISED",
        `${rs ? "Data" : `Instruction nibble 0x${nibble.toString(16)}`} sent before the initialisation sequence completed (Figure 24: 0x3, 0x3, 0x3, then 0x2; step ${step + 1} expects 0x${expected.toString(16)}).`,
      );
    }
    this.#instructions++;
    this.#functionSet((nibble << 4) | 0x0f);
    if (step === 0) this.#busy(at, 4.1, "Figure 24 requires more than 4.1 ms after the first 0x3");
    else if (step === 1) this.#busy(at, 0.1, "Figure 24 requires more than 100 µs after the second 0x3");
    else
      this.#busy(
        at,
        this.#execMs,
        `Function Set takes ${formatMs(this.#execMs)} (Table 6, at this oscillator)`,
      );
    if (nibble === 0x2) this.#phase = { kind: "awaiting-function-set" };
    else if (step >= 3) this.#phase = { kind: "ready" };
    else this.#phase = { kind: "power-on", step: step + 1 };
  }

  // --- The HD44780 instruction set (Table 6) --------------------------------------------------

  /**
   * `split`: the halves came in different writes, so this may be a leftover half paired with the
   * start of a recovery; such garbage is executed as the chip would, never rejected as a driver bug.
   */
  #execute(rs: boolean, value: number, at: number, split: boolean): void {
    if (this.#phase.kind === "awaiting-function-set" && (rs || (value & 0xe0) !== 0x20)) {
      throw new Hd44780SimulatorError(
        "E_NOT_INITIALISED",
        `${rs ? "Data" : `Instruction 0x${hex(value)}`} sent before Function Set: after switching to 4 bits, Figure 24 sets the lines and font first.`,
      );
    }
    if (rs) {
      this.#dataWrites++;
      this.#writeData(value);
      this.#busy(
        at,
        this.#writeMs,
        `a RAM write takes ${formatMs(this.#writeMs)} (Table 6's 37 µs + tADD 4 µs, at this oscillator)`,
      );
      return;
    }
    this.#instructions++;
    let ms = this.#execMs;
    if (value & 0x80) {
      const address = value & 0x7f;
      if (this.#validDdram(address)) {
        this.#addressCounter = address;
        this.#target = "ddram";
      } else if (!split) {
        throw new Hd44780SimulatorError(
          "E_ADDRESS",
          `Set DDRAM Address 0x${hex(address)} is outside the ${this.#twoLines ? "2-line map (0x00-0x27, 0x40-0x67)" : "1-line map (0x00-0x4F)"}.`,
        );
      }
      // Otherwise a leftover pair: the datasheet leaves such an address undefined; we leave AC alone.
    } else if (value & 0x40) {
      this.#addressCounter = value & 0x3f;
      this.#target = "cgram";
    } else if (value & 0x20) {
      this.#functionSet(value);
    } else if (value & 0x10) {
      const right = (value & 0x04) !== 0;
      if (value & 0x08) this.#shift += right ? -1 : 1;
      else this.#step(right);
    } else if (value & 0x08) {
      this.#displayOn = (value & 0x04) !== 0;
      this.#cursorOn = (value & 0x02) !== 0;
      this.#blinkOn = (value & 0x01) !== 0;
    } else if (value & 0x04) {
      this.#increment = (value & 0x02) !== 0;
      this.#shiftOnWrite = (value & 0x01) !== 0;
    } else if (value & 0x02) {
      this.#addressCounter = 0;
      this.#target = "ddram";
      this.#shift = 0;
      ms = this.#homeMs;
    } else if (value & 0x01) {
      // Clear Display: spaces everywhere, address 0, unshifted, and I/D set to increment (S kept).
      this.#ddram.fill(0x20);
      this.#addressCounter = 0;
      this.#target = "ddram";
      this.#shift = 0;
      this.#increment = true;
      ms = this.#homeMs;
    }
    this.#busy(at, ms, `instruction 0x${hex(value)} takes ${formatMs(ms)} (Table 6, at this oscillator)`);
  }

  #functionSet(value: number): void {
    const eightBit = (value & 0x10) !== 0;
    this.#twoLines = (value & 0x08) !== 0;
    this.#font5x10 = (value & 0x04) !== 0;
    if (eightBit) {
      this.#pending = undefined;
      this.#interface = 8;
      if (this.#phase.kind === "awaiting-function-set") this.#phase = { kind: "ready" };
    } else if (this.#interface === 8) {
      this.#interface = 4;
      this.#phase = { kind: "awaiting-function-set" };
    } else if (this.#phase.kind === "awaiting-function-set") {
      this.#phase = { kind: "ready" };
    }
  }

  #writeData(value: number): void {
    if (this.#target === "cgram") {
      this.#cgram[this.#addressCounter] = value & 0x1f;
      this.#addressCounter = (this.#addressCounter + (this.#increment ? 1 : -1)) & 0x3f;
      return;
    }
    this.#ddram[this.#addressCounter] = value;
    this.#step(this.#increment);
    // Entry Mode S=1: the display moves with each write so the cursor seems to stand still.
    if (this.#shiftOnWrite) this.#shift += this.#increment ? 1 : -1;
  }

  /** Moves the address counter one place, wrapping as the DDRAM map does. */
  #step(forward: boolean): void {
    if (this.#target === "cgram") {
      this.#addressCounter = (this.#addressCounter + (forward ? 1 : -1)) & 0x3f;
      return;
    }
    const a = this.#addressCounter;
    if (!this.#twoLines) {
      this.#addressCounter = forward ? (a === 0x4f ? 0 : a + 1) : a === 0 ? 0x4f : a - 1;
    } else if (forward) {
      this.#addressCounter = a === 0x27 ? 0x40 : a === 0x67 ? 0x00 : a + 1;
    } else {
      this.#addressCounter = a === 0x40 ? 0x27 : a === 0x00 ? 0x67 : a - 1;
    }
  }

  #busy(at: number, ms: number, why: string): void {
    this.#busyUntil = at + ms;
    this.#busyWhy = why;
  }

  #validDdram(address: number): boolean {
    if (!this.#twoLines) return address <= 0x4f;
    return address <= 0x27 || (address >= 0x40 && address <= 0x67);
  }

  // --- DDRAM map ------------------------------------------------------------------------------

  /**
   * The DDRAM address shown in a cell. A 2-line controller drives two 40-character lines
   * (0x00-0x27, 0x40-0x67); a 4-row glass shows each line in two halves, so a 20x4 panel shows
   * rows at 0x00, 0x40, 0x14, 0x54 (and a 16x4 at 0x00, 0x40, 0x10, 0x50). In 1-line mode only
   * the rows wired to line 1 are driven, over one 80-character line.
   */
  #cellAddress(row: number, column: number): number | undefined {
    const line = row % 2;
    const offset = (row >= 2 ? this.columns : 0) + column + this.#shift;
    if (!this.#twoLines) return line === 0 ? mod(offset, 80) : undefined;
    return line * 0x40 + mod(offset, 40);
  }

  #visibleCode(row: number, column: number): number | undefined {
    if (!this.#displayOn || row < 0 || row >= this.rows || column < 0 || column >= this.columns)
      return undefined;
    const address = this.#cellAddress(row, column);
    return address === undefined ? undefined : this.#ddram[address];
  }

  #placeOf(address: number): { row: number; column: number } | undefined {
    for (let row = 0; row < this.rows; row++) {
      for (let column = 0; column < this.columns; column++) {
        if (this.#cellAddress(row, column) === address) return { row, column };
      }
    }
    return undefined;
  }
}

function hex(value: number): string {
  return value.toString(16).toUpperCase().padStart(2, "0");
}

function mod(value: number, modulus: number): number {
  return ((value % modulus) + modulus) % modulus;
}

function formatMs(ms: number): string {
  return ms < 1 ? `${Math.round(ms * 1000)} µs` : `${Math.round(ms * 100) / 100} ms`;
}
