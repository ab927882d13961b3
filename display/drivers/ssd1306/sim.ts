import type { I2CBus } from "../../bus/types.ts";
import { Bitmap } from "../../render/bitmap.ts";
import { SimulatorError } from "../../sim/error.ts";
import { noise } from "../../sim/noise.ts";

/**
 * An SSD1306 128x64 OLED module on I2C, modelled at the bus: it decodes the control bytes,
 * commands and GDDRAM data a driver writes, keeps the controller's registers and display RAM, and
 * shows (`pixels()`) what a person would see on the glass. Nothing here knows about our driver, and
 * the command set is written out here rather than shared with it, so that a mistake in one is
 * caught by the other.
 *
 * Section numbers are those of the Solomon Systech SSD1306 datasheet, Rev 1.5 (Aug 2010).
 *
 * It rejects, as `Ssd1306SimulatorError`, what the chip would not accept (an opcode outside the
 * command table, a parameter outside its documented range, an address window off the 128x8-page
 * RAM) and what would only work by luck on real hardware: a command stream that ends before its
 * last command's parameters (the chip would take the next byte we send, perhaps a lone data
 * byte's neighbour, as that parameter) and RAM data before the driver has said where it goes
 * (after a restart of our agent the chip, still powered, keeps its old write pointer).
 *
 * The glass is wired as on the common 0.96" modules (UG-2864HSWEG01 class): upright with segment
 * remap on (0xA1), COM scan reversed (0xC8) and the alternative COM pin configuration (0xDA 0x12);
 * with 0xA0/0xC0 the picture is upside down, and with the sequential COM configuration its rows
 * come out interleaved, as on the real thing. The panel is powered from the on-chip charge pump
 * only (no external VCC), so the glass stays dark unless the pump was enabled (0x8D 0x14) when the
 * display was switched on (0xAF): the datasheet's Charge Pump Regulator section gives the order as
 * 8Dh 14h, then AFh.
 */

export const SSD1306_WIDTH = 128;
export const SSD1306_HEIGHT = 64;
const PAGES = SSD1306_HEIGHT / 8;

export type Ssd1306SimulatorErrorCode =
  /** Nothing acknowledged the address (another address than the module's). */
  | "E_NACK"
  | "E_CLOSED"
  /**
   * A control byte other than Co|D/C#|000000 (§8.1.5.1: the six low bits are 0), or a Co=1
   * control byte with nothing after it.
   */
  | "E_CONTROL"
  /** A command byte that is not in the command table (§9). */
  | "E_UNKNOWN_COMMAND"
  /** A command in the table that this simulator does not model (scrolling, fade, zoom). */
  | "E_UNSUPPORTED"
  /** A command's parameters did not all arrive before the write ended or data began. */
  | "E_TRUNCATED"
  /** A parameter the datasheet calls invalid (multiplex ratio below 16, addressing mode 11b…). */
  | "E_PARAMETER"
  /** A column or page address window outside 0-127 / 0-7, or with its end before its start. */
  | "E_RANGE"
  /** A command for another addressing mode (0x21/0x22 in page mode, 0xB0-0xB7 outside it). */
  | "E_MODE"
  /** GDDRAM data before any column and page address was set since power-on. */
  | "E_NOT_ADDRESSED";

export class Ssd1306SimulatorError extends SimulatorError<Ssd1306SimulatorErrorCode> {
  override readonly name = "Ssd1306SimulatorError";
}

export type AddressingMode = "horizontal" | "vertical" | "page";

export interface Ssd1306SimulatorOptions {
  /** 7-bit address the module answers; default 0x3C (0x3D with the address resistor moved, D/C# high). */
  readonly address?: number;
  /**
   * GDDRAM content at power-on; default "noise". The datasheet gives no reset value for display
   * RAM, and real panels show snow when switched on unwritten; the noise is deterministic (a fixed
   * seed) so tests stay repeatable while still catching a driver that lights an unwritten panel.
   */
  readonly ram?: "noise" | "blank";
}

export interface Ssd1306SimulatorStats {
  /** Bytes written after the address byte (control bytes included); what the driver chose to send. */
  readonly bytes: number;
  /** I2C write transactions. */
  readonly transactions: number;
  /** Command bytes, parameters included. */
  readonly commandBytes: number;
  /** GDDRAM data bytes. */
  readonly dataBytes: number;
  /** Data bursts ("frames" on the bus): runs of GDDRAM data bytes without a command in between. */
  readonly bursts: number;
}

/** Registers a test may want to see; the rest shows through `pixels()`. */
export interface Ssd1306State {
  readonly displayOn: boolean;
  readonly chargePump: boolean;
  /** Whether the glass can light at all: display on, with the pump enabled when it was switched on. */
  readonly lit: boolean;
  readonly contrast: number;
  readonly mode: AddressingMode;
  readonly segmentRemap: boolean;
  readonly comScanReversed: boolean;
  readonly multiplex: number;
  readonly displayOffset: number;
  readonly startLine: number;
  readonly comPins: number;
  readonly clock: number;
  readonly precharge: number;
  readonly vcomh: number;
  readonly entireOn: boolean;
  readonly inverted: boolean;
  /** Where the next data byte goes; undefined until set (see E_NOT_ADDRESSED). */
  readonly column: number | undefined;
  readonly page: number | undefined;
  readonly columnWindow: readonly [number, number];
  readonly pageWindow: readonly [number, number];
}

/** Parameter bytes each multi-byte command takes (§9 command table). */
const PARAMETERS: ReadonlyMap<number, number> = new Map([
  [0x81, 1], // contrast
  [0x20, 1], // memory addressing mode
  [0x21, 2], // column address window
  [0x22, 2], // page address window
  [0xa8, 1], // multiplex ratio
  [0xd3, 1], // display offset
  [0xda, 1], // COM pins hardware configuration
  [0xd5, 1], // display clock divide ratio / oscillator frequency
  [0xd9, 1], // pre-charge period
  [0xdb, 1], // VCOMH deselect level
  [0x8d, 1], // charge pump setting
  [0x26, 6], // right horizontal scroll setup
  [0x27, 6], // left horizontal scroll setup
  [0x29, 5], // vertical and right horizontal scroll setup
  [0x2a, 5], // vertical and left horizontal scroll setup
  [0xa3, 2], // vertical scroll area
]);

interface PendingCommand {
  readonly opcode: number;
  readonly params: number[];
  readonly need: number;
}

function hex(value: number): string {
  return value.toString(16).toUpperCase().padStart(2, "0");
}

export class Ssd1306Simulator implements I2CBus {
  readonly address: number;
  /** Page-major, as `Bitmap.toPageBytes`: byte `page * 128 + column`, bit 0 the page's top row. */
  readonly #ram = new Uint8Array(PAGES * SSD1306_WIDTH);
  #closed = false;
  #pending: PendingCommand | undefined;

  // Reset values from the command table (§9) and §10.
  #displayOn = false;
  #chargePump = false;
  /** The pump was on at the last 0xAF: the panel's VCC is up. */
  #poweredAtOn = false;
  #contrast = 0x7f;
  #mode: AddressingMode = "page";
  #segmentRemap = false;
  #comScanReversed = false;
  #multiplex = 64;
  #displayOffset = 0;
  #startLine = 0;
  #comPins = 0x12;
  #clock = 0x80;
  #precharge = 0x22;
  #vcomh = 0x20;
  #entireOn = false;
  #inverted = false;
  #columnStart = 0;
  #columnEnd = SSD1306_WIDTH - 1;
  #pageStart = 0;
  #pageEnd = PAGES - 1;
  #column: number | undefined;
  #page: number | undefined;
  /**
   * Page mode's column start register, set in two halves (0x00-0x0F, 0x10-0x1F); undefined until
   * each half has been written since power-on.
   */
  #lowNibble: number | undefined;
  #highNibble: number | undefined;

  #bytes = 0;
  #transactions = 0;
  #commandBytes = 0;
  #dataBytes = 0;
  #bursts = 0;

  constructor(options: Ssd1306SimulatorOptions = {}) {
    this.address = options.address ?? 0x3c;
    if ((options.ram ?? "noise") === "noise") this.#ram.set(noise(this.#ram.length, 0x1306));
  }

  // --- I2CBus -------------------------------------------------------------------------------

  async write(address: number, data: Uint8Array): Promise<void> {
    if (this.#closed) throw new Ssd1306SimulatorError("E_CLOSED", "The simulated I2C bus is closed.");
    if (address !== this.address) {
      throw new Ssd1306SimulatorError(
        "E_NACK",
        `No device acknowledged I2C address 0x${hex(address)} (the simulated SSD1306 is at 0x${hex(this.address)}).`,
      );
    }
    this.#transactions++;
    this.#bytes += data.length;
    let inBurst = false;
    let index = 0;
    // §8.1.5.1: after the address, a control byte Co D/C# 0 0 0 0 0 0. Co=1: one byte follows,
    // then another control byte. Co=0: every byte up to the stop is of the D/C# kind.
    while (index < data.length) {
      const control = data[index++] ?? 0;
      if ((control & 0x3f) !== 0) {
        this.#pending = undefined;
        throw new Ssd1306SimulatorError(
          "E_CONTROL",
          `Byte ${index - 1} of the write, 0x${hex(control)}, is not a control byte (Co, D/C#, then six 0 bits; §8.1.5.1).`,
        );
      }
      const continuation = (control & 0x80) !== 0;
      const isData = (control & 0x40) !== 0;
      const end = continuation ? index + 1 : data.length;
      if (continuation && index >= data.length) {
        throw new Ssd1306SimulatorError(
          "E_CONTROL",
          "The write ends with a Co=1 control byte and no byte after it (§8.1.5.1).",
        );
      }
      for (; index < end; index++) {
        const byte = data[index] ?? 0;
        if (isData) {
          if (!inBurst) this.#bursts++;
          inBurst = true;
          this.#data(byte);
        } else {
          inBurst = false;
          this.#command(byte);
        }
      }
    }
    if (this.#pending !== undefined) {
      const { opcode, params, need } = this.#pending;
      this.#pending = undefined;
      throw new Ssd1306SimulatorError(
        "E_TRUNCATED",
        `Command 0x${hex(opcode)} needs ${need} parameter byte(s) but the write ended after ${params.length}; the chip would take the next command byte as its parameter.`,
      );
    }
  }

  async probe(address: number): Promise<boolean> {
    return !this.#closed && address === this.address;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  // --- What a test or a person sees -----------------------------------------------------------

  get stats(): Ssd1306SimulatorStats {
    return {
      bytes: this.#bytes,
      transactions: this.#transactions,
      commandBytes: this.#commandBytes,
      dataBytes: this.#dataBytes,
      bursts: this.#bursts,
    };
  }

  resetStats(): void {
    this.#bytes = 0;
    this.#transactions = 0;
    this.#commandBytes = 0;
    this.#dataBytes = 0;
    this.#bursts = 0;
  }

  /** 0-255 (0x81); the panel's brightness, which `pixels()` does not show. */
  get contrast(): number {
    return this.#contrast;
  }

  get state(): Ssd1306State {
    return {
      displayOn: this.#displayOn,
      chargePump: this.#chargePump,
      lit: this.#lit(),
      contrast: this.#contrast,
      mode: this.#mode,
      segmentRemap: this.#segmentRemap,
      comScanReversed: this.#comScanReversed,
      multiplex: this.#multiplex,
      displayOffset: this.#displayOffset,
      startLine: this.#startLine,
      comPins: this.#comPins,
      clock: this.#clock,
      precharge: this.#precharge,
      vcomh: this.#vcomh,
      entireOn: this.#entireOn,
      inverted: this.#inverted,
      column: this.#column,
      page: this.#page,
      columnWindow: [this.#columnStart, this.#columnEnd],
      pageWindow: [this.#pageStart, this.#pageEnd],
    };
  }

  /** GDDRAM as written, 128x64, without any of the display's mapping. */
  ram(): Bitmap {
    return Bitmap.fromPageBytes(SSD1306_WIDTH, SSD1306_HEIGHT, this.#ram);
  }

  /**
   * The glass as a person sees it, (0, 0) at the top left of the module held with its pins at the
   * top; on = a lit pixel. Dark everywhere while the display is off or the panel unpowered.
   */
  pixels(): Bitmap {
    const glass = new Bitmap(SSD1306_WIDTH, SSD1306_HEIGHT);
    if (!this.#lit()) return glass;
    for (let y = 0; y < SSD1306_HEIGHT; y++) {
      const ramRow = this.#ramRowAt(y);
      if (ramRow === undefined) continue;
      for (let x = 0; x < SSD1306_WIDTH; x++) {
        // The module's segment lines run right to left: SEG0 is at the right edge (glass x = 127).
        const segment = SSD1306_WIDTH - 1 - x;
        // §10.1.8 (0xA0/0xA1): column 0 drives SEG0, or with the remap column 127 does.
        const column = this.#segmentRemap ? SSD1306_WIDTH - 1 - segment : segment;
        const bit = ((this.#ram[(ramRow >> 3) * SSD1306_WIDTH + column] ?? 0) >> (ramRow & 7)) & 1;
        // §10.1.9 (0xA5): the output ignores RAM; §10.1.10 (0xA7): a 0 in RAM lights the pixel.
        const on = this.#entireOn || (bit === 1) !== this.#inverted;
        if (on) glass.set(x, y, true);
      }
    }
    return glass;
  }

  // --- Decoding -------------------------------------------------------------------------------

  #lit(): boolean {
    return this.#displayOn && this.#chargePump && this.#poweredAtOn;
  }

  /**
   * Which RAM row glass row `y` shows, or undefined for a row the multiplex ratio leaves undriven.
   * A model of the chain the datasheet describes, good enough to make wrong settings visible:
   * glass row → COM pin (the module's wiring, bottom to top) → COM line (0xDA, Table 10-3: the
   * sequential setting interleaves the rows on a panel wired for the alternative one) → display
   * row (0xC0/0xC8, §10.1.14) → RAM row (offset 0xD3, §10.1.15, and start line 0x40, §10.1.6).
   */
  #ramRowAt(y: number): number | undefined {
    const pin = SSD1306_HEIGHT - 1 - y;
    let com = (this.#comPins & 0x10) !== 0 ? pin : pin % 2 === 0 ? pin / 2 : 32 + (pin - 1) / 2;
    if ((this.#comPins & 0x20) !== 0) com = (com + 32) % 64;
    const mux = this.#multiplex;
    if (com >= mux) return undefined;
    const displayRow = this.#comScanReversed ? mux - 1 - com : com;
    return (displayRow + this.#displayOffset + this.#startLine) % SSD1306_HEIGHT;
  }

  #data(byte: number): void {
    this.#dataBytes++;
    if (this.#pending !== undefined) {
      const { opcode, params, need } = this.#pending;
      this.#pending = undefined;
      throw new Ssd1306SimulatorError(
        "E_TRUNCATED",
        `Command 0x${hex(opcode)} needs ${need} parameter byte(s) but data came after ${params.length}.`,
      );
    }
    const column = this.#column;
    const page = this.#page;
    if (column === undefined || page === undefined || !this.#addressed()) {
      throw new Ssd1306SimulatorError(
        "E_NOT_ADDRESSED",
        "GDDRAM data arrived before a column and a page address were set (0x21/0x22, or 0xB0-0xB7 with 0x00-0x1F in page mode); where it lands depends on what ran before.",
      );
    }
    this.#ram[page * SSD1306_WIDTH + column] = byte;
    this.#advance(column, page);
  }

  #addressed(): boolean {
    if (this.#page === undefined || this.#column === undefined) return false;
    return this.#mode !== "page" || (this.#lowNibble !== undefined && this.#highNibble !== undefined);
  }

  /** §10.1.3-10.1.5: the pointer after a data byte, per addressing mode. */
  #advance(column: number, page: number): void {
    if (this.#mode === "page") {
      // Figure 10-1: the column wraps within the page; the page pointer never moves.
      this.#column = column === SSD1306_WIDTH - 1 ? 0 : column + 1;
      return;
    }
    if (this.#mode === "horizontal") {
      // Figure 10-2: along the window's columns, then to the next page of the window, then back.
      if (column < this.#columnEnd) {
        this.#column = column + 1;
        return;
      }
      this.#column = this.#columnStart;
      this.#page = page < this.#pageEnd ? page + 1 : this.#pageStart;
      return;
    }
    // Figure 10-3 (vertical): down the window's pages, then to the next column.
    if (page < this.#pageEnd) {
      this.#page = page + 1;
      return;
    }
    this.#page = this.#pageStart;
    this.#column = column < this.#columnEnd ? column + 1 : this.#columnStart;
  }

  #command(byte: number): void {
    this.#commandBytes++;
    const pending = this.#pending;
    if (pending !== undefined) {
      pending.params.push(byte);
      if (pending.params.length < pending.need) return;
      this.#pending = undefined;
      this.#execute(pending.opcode, pending.params);
      return;
    }
    const need = PARAMETERS.get(byte);
    if (need !== undefined) {
      this.#pending = { opcode: byte, params: [], need };
      return;
    }
    this.#execute(byte, []);
  }

  #execute(opcode: number, params: readonly number[]): void {
    const [a = 0, b = 0] = params;
    // Single-byte commands with their argument in the opcode.
    if (opcode >= 0x40 && opcode <= 0x7f) {
      this.#startLine = opcode & 0x3f; // §10.1.6
      return;
    }
    if (opcode <= 0x0f || (opcode >= 0x10 && opcode <= 0x1f) || (opcode >= 0xb0 && opcode <= 0xb7)) {
      this.#pageModeAddress(opcode);
      return;
    }
    switch (opcode) {
      case 0xae:
        this.#displayOn = false;
        return;
      case 0xaf:
        this.#displayOn = true;
        this.#poweredAtOn = this.#chargePump;
        return;
      case 0xa4:
      case 0xa5:
        this.#entireOn = opcode === 0xa5;
        return;
      case 0xa6:
      case 0xa7:
        this.#inverted = opcode === 0xa7;
        return;
      case 0xa0:
      case 0xa1:
        this.#segmentRemap = opcode === 0xa1;
        return;
      case 0xc0:
      case 0xc8:
        this.#comScanReversed = opcode === 0xc8;
        return;
      case 0xe3: // NOP
      case 0x2e: // deactivate scroll: scrolling is never active here
        return;
      case 0x81:
        this.#contrast = a;
        return;
      case 0x20:
        this.#setMode(a);
        return;
      case 0x21:
        this.#window("column", a, b, SSD1306_WIDTH - 1);
        return;
      case 0x22:
        this.#window("page", a, b, PAGES - 1);
        return;
      case 0xa8:
        // §10.1.11: MUX ratio N+1 for N = 15..63; 0 to 14 are invalid.
        if (a < 15 || a > 63) this.#badParameter(opcode, a, "the multiplex ratio takes 15-63 (16MUX-64MUX)");
        this.#multiplex = a + 1;
        return;
      case 0xd3:
        if (a > 63) this.#badParameter(opcode, a, "the display offset takes 0-63");
        this.#displayOffset = a;
        return;
      case 0xda:
        // §10.1.18: 0 0 A5 A4 0 0 1 0.
        if ((a & ~0x30) !== 0x02) this.#badParameter(opcode, a, "the COM pins byte is 00xx0010b");
        this.#comPins = a;
        return;
      case 0xd5:
        this.#clock = a; // §10.1.16: any divide ratio and oscillator setting
        return;
      case 0xd9:
        // §10.1.17: phase 1 and phase 2 each 1-15 DCLKs; 0 is an invalid entry.
        if ((a & 0x0f) === 0 || (a & 0xf0) === 0)
          this.#badParameter(opcode, a, "both pre-charge phases take 1-15 DCLKs");
        this.#precharge = a;
        return;
      case 0xdb:
        // §10.1.19 documents 0x00, 0x20 and 0x30; common drivers send 0x40 and panels take it.
        this.#vcomh = a;
        return;
      case 0x8d:
        // Charge pump setting: 0x10 disables, 0x14 enables; other bits fixed.
        if (a !== 0x10 && a !== 0x14) this.#badParameter(opcode, a, "the charge pump takes 0x10 or 0x14");
        this.#chargePump = a === 0x14;
        if (!this.#chargePump) this.#poweredAtOn = false;
        return;
      case 0x26:
      case 0x27:
      case 0x29:
      case 0x2a:
      case 0xa3:
        // Scroll setup only takes effect with 0x2F, which is refused below.
        return;
      case 0x2f:
      case 0x23:
      case 0xd6:
        throw new Ssd1306SimulatorError(
          "E_UNSUPPORTED",
          `Command 0x${hex(opcode)} (scrolling, fade or zoom) is real but not modelled by this simulator.`,
        );
      default:
        throw new Ssd1306SimulatorError(
          "E_UNKNOWN_COMMAND",
          `0x${hex(opcode)} is not an SSD1306 command (§9 command table).`,
        );
    }
  }

  #setMode(a: number): void {
    // §10.1.3: A[1:0] = 00b horizontal, 01b vertical, 10b page, 11b invalid.
    const mode = (["horizontal", "vertical", "page"] as const)[a];
    if (mode === undefined)
      this.#badParameter(0x20, a, "the addressing mode takes 0 (horizontal), 1 (vertical) or 2 (page)");
    this.#mode = mode;
  }

  /** §10.1.4/§10.1.5: a window for horizontal and vertical addressing; the pointer goes to its start. */
  #window(kind: "column" | "page", start: number, end: number, last: number): void {
    const opcode = kind === "column" ? 0x21 : 0x22;
    if (this.#mode === "page") {
      throw new Ssd1306SimulatorError(
        "E_MODE",
        `Command 0x${hex(opcode)} (${kind} address) is only for horizontal or vertical addressing, and the chip is in page mode.`,
      );
    }
    if (start > last || end > last || end < start) {
      throw new Ssd1306SimulatorError(
        "E_RANGE",
        `The ${kind} address window ${start}-${end} is outside 0-${last} or ends before it starts.`,
      );
    }
    if (kind === "column") {
      this.#columnStart = start;
      this.#columnEnd = end;
      this.#column = start;
    } else {
      this.#pageStart = start;
      this.#pageEnd = end;
      this.#page = start;
    }
  }

  /** §10.1.1, §10.1.2, §10.1.13: page-mode column nibbles and page start. */
  #pageModeAddress(opcode: number): void {
    if (this.#mode !== "page") {
      throw new Ssd1306SimulatorError(
        "E_MODE",
        `Command 0x${hex(opcode)} sets a page-mode address, and the chip is in ${this.#mode} addressing mode (use 0x21/0x22).`,
      );
    }
    if (opcode >= 0xb0) {
      this.#page = opcode & 0x07;
      return;
    }
    if (opcode <= 0x0f) {
      this.#lowNibble = opcode;
    } else {
      // Bits 7-4 of the column: 0-7, or the column would be past 127.
      if ((opcode & 0x0f) > 0x07) {
        throw new Ssd1306SimulatorError(
          "E_RANGE",
          `Command 0x${hex(opcode)} would put the column at ${(opcode & 0x0f) << 4} or beyond, outside 0-127.`,
        );
      }
      this.#highNibble = opcode & 0x0f;
    }
    // The pointer is loaded from the register; until both halves are known, data is refused.
    this.#column = ((this.#highNibble ?? 0) << 4) | (this.#lowNibble ?? 0);
  }

  #badParameter(opcode: number, value: number, rule: string): never {
    throw new Ssd1306SimulatorError(
      "E_PARAMETER",
      `Command 0x${hex(opcode)} got parameter 0x${hex(value)}, which the datasheet does not allow: ${rule}.`,
    );
  }
}
