import type { Clock } from "../../../agent/core/clock.ts";
import type { GpioLine, SpiBus } from "../../bus/types.ts";
import { Bitmap } from "../../render/bitmap.ts";
import { SimulatorError } from "../../sim/error.ts";
import { noise } from "../../sim/noise.ts";

/**
 * An SSD1680 e-ink controller on a 2.13" 250x122 black/white panel (Waveshare 2.13" V4 class),
 * modelled at its pins: the 4-wire SPI bus (bytes with DC low are commands, DC high their
 * parameters or RAM data), RST and BUSY. It decodes what a driver sends, keeps the registers and
 * both RAMs (B/W at 0x24 and RED, the "old" image of partial refresh, at 0x26; 176x296 bits each)
 * and, on Master Activation (0x20), copies RAM onto the glass as the chip's waveform would.
 * Nothing here knows about our driver; the command set is written out again here so that a
 * mistake in one is caught by the other.
 *
 * Time is virtual (an injected Clock): BUSY is high for `resetMs` after a hardware or software
 * reset and for `fullRefreshMs`/`partialRefreshMs` after an activation, and stays high during deep
 * sleep (the chip holds it there until a hardware reset).
 *
 * It rejects, as `Ssd1680SimulatorError`, what would fail or only work by luck on the real chip:
 * SPI while RST is low, in deep sleep or while BUSY is high (the chip ignores the interface then,
 * so the bytes would be lost); data with no command before it; a command whose parameters did
 * not all arrive, or more data than it takes; opcodes outside the command table; RAM windows or
 * counters outside the 176x296 RAM; RAM data past the end of the window (the chip would wrap and
 * overwrite the start); and a refresh before Driver Output Control has set the panel's 250 gates.
 *
 * Power: on Waveshare's newer HATs a GPIO (PWR) switches the panel's supply. With `powerSwitch`
 * the chip starts unpowered and follows that line: SPI while it is low is refused (the bytes would
 * go nowhere, and the panel would stay blank with no error); raising it is a power-on reset (RAM
 * lost, BUSY high for `resetMs`); the glass keeps its image unpowered. An unpowered chip drives
 * nothing on BUSY, so the host reads the bias it requested (`biasBusy`): busy with a pull-up.
 *
 * Glass geometry: sources (RAM X bits) 0-121 and gates (RAM Y) 0-249 are wired to the glass. Held
 * in landscape, as we use it, gate 0 is the left column and source 121 the top row: landscape
 * pixel (x, y) shows RAM bit (source 121 - y, gate x). RAM stores 1 = white, 0 = black.
 */

export const SSD1680_PANEL_WIDTH = 250;
export const SSD1680_PANEL_HEIGHT = 122;
/** Controller RAM: 176 sources (22 bytes a row) by 296 gates. */
export const SSD1680_RAM_WIDTH = 176;
export const SSD1680_RAM_HEIGHT = 296;
const RAM_STRIDE = SSD1680_RAM_WIDTH / 8;
const VISIBLE_SOURCES = SSD1680_PANEL_HEIGHT;
const VISIBLE_GATES = SSD1680_PANEL_WIDTH;

export type Ssd1680SimulatorErrorCode =
  /** SPI while RST is held low: the chip is in reset. */
  | "E_IN_RESET"
  /** SPI while BUSY is high: the chip ignores its interface until the operation ends. */
  | "E_BUSY"
  /** SPI after Deep Sleep (0x10): only a hardware reset wakes the chip. */
  | "E_SLEEPING"
  /** A data byte (DC high) with no command to take it. */
  | "E_NO_COMMAND"
  /** More data bytes than the command takes. */
  | "E_EXTRA_DATA"
  /** A command came before the previous one had all its parameters. */
  | "E_TRUNCATED"
  | "E_UNKNOWN_COMMAND"
  /** A command in the table that this simulator does not model (LUT, VCOM, OTP, …). */
  | "E_UNSUPPORTED"
  | "E_PARAMETER"
  /** A window or address counter outside the RAM, or RAM data at or past the window's edge. */
  | "E_RANGE"
  /** A refresh before the panel was configured (Driver Output Control) since reset. */
  | "E_NOT_CONFIGURED"
  /** Driving a line the wrong way (setting BUSY, an input). */
  | "E_DIRECTION"
  /** SPI while the panel's power switch (PWR) is low. */
  | "E_UNPOWERED"
  | "E_CLOSED";

export class Ssd1680SimulatorError extends SimulatorError<Ssd1680SimulatorErrorCode> {
  override readonly name = "Ssd1680SimulatorError";
}

export interface Ssd1680SimulatorOptions {
  readonly clock: Clock;
  /** BUSY high after a hardware or software reset, ms; default 10. */
  readonly resetMs?: number;
  /** BUSY high during a full (display mode 1) refresh, ms; default 2000 (the V4's is about 2 s). */
  readonly fullRefreshMs?: number;
  /** BUSY high during a partial (display mode 2) refresh, ms; default 500. */
  readonly partialRefreshMs?: number;
  /** What the glass shows at the start (e-ink keeps its last image unpowered); default white. */
  readonly panel?: Bitmap;
  /** The panel's supply is switched by the PWR line (starting low, unpowered); default false: always powered. */
  readonly powerSwitch?: boolean;
}

/** A change of the PWR line, with how many SPI bytes had been written by then. */
export interface Ssd1680PowerChange {
  readonly at: number;
  readonly level: 0 | 1;
  readonly spiBytesBefore: number;
}

export interface Ssd1680Counts {
  readonly fullRefreshes: number;
  readonly partialRefreshes: number;
  /** Every byte written on SPI, commands and data. */
  readonly spiBytes: number;
  readonly hardwareResets: number;
  readonly deepSleeps: number;
}

/** One executed command, for tests that check order (e.g. deep sleep last). RAM data is counted, not kept. */
export interface Ssd1680Command {
  readonly opcode: number;
  readonly params: readonly number[];
}

/** Parameter bytes per modelled command; "ram" takes a stream. */
const PARAMETERS: ReadonlyMap<number, number | "ram"> = new Map<number, number | "ram">([
  [0x01, 3], // Driver Output Control: MUX (9 bits), gate scan order
  [0x10, 1], // Deep Sleep
  [0x11, 1], // Data Entry Mode
  [0x12, 0], // SW Reset
  [0x18, 1], // Temperature Sensor selection
  [0x20, 0], // Master Activation
  [0x21, 2], // Display Update Control 1: RAM options, source output mode
  [0x22, 1], // Display Update Control 2: the activation sequence
  [0x24, "ram"], // Write RAM (B/W)
  [0x26, "ram"], // Write RAM (RED; the old image in display mode 2)
  [0x3c, 1], // Border Waveform
  [0x44, 2], // RAM X window, in bytes
  [0x45, 4], // RAM Y window, 9-bit start and end
  [0x4e, 1], // RAM X counter
  [0x4f, 2], // RAM Y counter
]);

/** Real commands left out of the model: LUT, voltages, OTP, booster, temperature writes, etc. */
const UNSUPPORTED = new Set([
  0x03, 0x04, 0x0c, 0x0f, 0x14, 0x15, 0x1a, 0x1b, 0x1c, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
  0x31, 0x32, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3f, 0x41, 0x46, 0x47, 0x7f,
]);

function hex(value: number): string {
  return value.toString(16).toUpperCase().padStart(2, "0");
}

interface Pending {
  readonly opcode: number;
  readonly params: number[];
  readonly need: number | "ram";
}

export class Ssd1680Simulator {
  readonly spi: SpiBus;
  /** Data/command select, an output of the host: 0 = command, 1 = data. */
  readonly dc: GpioLine;
  /** Reset, an output of the host, active low. */
  readonly rst: GpioLine;
  /** BUSY, an input of the host: 1 while the chip works (or sleeps). */
  readonly busy: GpioLine;
  /** PWR, an output of the host: the panel's supply (only with `powerSwitch`). */
  readonly pwr: GpioLine;

  readonly #clock: Clock;
  readonly #resetMs: number;
  readonly #fullMs: number;
  readonly #partialMs: number;

  #dcLevel: 0 | 1 = 0;
  #rstLevel: 0 | 1 = 1;
  #busyUntil = 0;
  #jammed = false;
  #sleeping = false;
  #closed = false;
  #pending: Pending | undefined;
  #powered: boolean;
  #busyBias: "pull-up" | "pull-down" | "disabled" | undefined;
  readonly #powerChanges: Ssd1680PowerChange[] = [];

  // Registers, at their power-on values.
  #mux = 0;
  #configured = false;
  #entry = 0x03;
  #xStart = 0;
  #xEnd = RAM_STRIDE - 1;
  #yStart = 0;
  #yEnd = SSD1680_RAM_HEIGHT - 1;
  #x = 0;
  #y = 0;
  #border = 0xc0;
  #temperature = 0x48;
  #ramOptions = 0x00;
  #sourceMode = 0x00;
  #updateSequence = 0xff;

  readonly #bw = noise(RAM_STRIDE * SSD1680_RAM_HEIGHT, 0x1680);
  readonly #red = noise(RAM_STRIDE * SSD1680_RAM_HEIGHT, 0x2613);
  #panel: Bitmap;

  #fullRefreshes = 0;
  #partialRefreshes = 0;
  #spiBytes = 0;
  #hardwareResets = 0;
  #deepSleeps = 0;
  readonly #log: Ssd1680Command[] = [];

  constructor(options: Ssd1680SimulatorOptions) {
    this.#clock = options.clock;
    this.#resetMs = options.resetMs ?? 10;
    this.#fullMs = options.fullRefreshMs ?? 2000;
    this.#partialMs = options.partialRefreshMs ?? 500;
    this.#panel = options.panel?.clone() ?? new Bitmap(SSD1680_PANEL_WIDTH, SSD1680_PANEL_HEIGHT);
    this.#powered = !(options.powerSwitch ?? false);
    this.pwr = output(
      (level) => this.#power(level),
      () => (this.#powered ? 1 : 0),
    );
    this.spi = {
      write: (data) => this.#write(data),
      close: async () => {
        this.#closed = true;
      },
    };
    this.dc = output(
      (level) => {
        this.#dcLevel = level;
      },
      () => this.#dcLevel,
    );
    this.rst = output(
      (level) => this.#reset(level),
      () => this.#rstLevel,
    );
    this.busy = {
      set: async () => {
        throw new Ssd1680SimulatorError(
          "E_DIRECTION",
          "BUSY is an output of the chip; the host can only read it.",
        );
      },
      get: async () => (this.#busyHigh() ? 1 : 0),
      // The driver polls BUSY; edge events are not modelled.
      watch: () => {
        throw new Ssd1680SimulatorError("E_UNSUPPORTED", "Edge events on BUSY are not modelled; poll it.");
      },
      close: async () => undefined,
    };
  }

  // --- What a test sees ------------------------------------------------------------------------

  /** The glass in landscape, 250x122, as a person sees the last refreshed image: on = black. */
  panel(): Bitmap {
    return this.#panel.clone();
  }

  /** Both RAMs as written, 176x296, without any panel mapping: on = a 0 bit (black). */
  ram(): { readonly bw: Bitmap; readonly red: Bitmap } {
    const read = (bytes: Uint8Array): Bitmap =>
      Bitmap.fromRowBytes(SSD1680_RAM_WIDTH, SSD1680_RAM_HEIGHT, bytes, { msbFirst: true, onValue: 0 });
    return { bw: read(this.#bw), red: read(this.#red) };
  }

  get counts(): Ssd1680Counts {
    return {
      fullRefreshes: this.#fullRefreshes,
      partialRefreshes: this.#partialRefreshes,
      spiBytes: this.#spiBytes,
      hardwareResets: this.#hardwareResets,
      deepSleeps: this.#deepSleeps,
    };
  }

  /** Every command executed, in order, with its parameters (RAM writes with none). */
  get commands(): readonly Ssd1680Command[] {
    return this.#log;
  }

  get sleeping(): boolean {
    return this.#sleeping;
  }

  /** Registers a test may check (the glass does not show them). */
  get state(): {
    readonly border: number;
    readonly temperatureSensor: number;
    readonly ramOptions: number;
    readonly sourceMode: number;
    readonly dataEntry: number;
    readonly gates: number;
  } {
    return {
      border: this.#border,
      temperatureSensor: this.#temperature,
      ramOptions: this.#ramOptions,
      sourceMode: this.#sourceMode,
      dataEntry: this.#entry,
      gates: this.#mux,
    };
  }

  /** Whether the panel has power (always, without `powerSwitch`). */
  get powered(): boolean {
    return this.#powered;
  }

  /** Every change of PWR, in order. */
  get powerChanges(): readonly Ssd1680PowerChange[] {
    return this.#powerChanges;
  }

  /** The bias the host requested on its BUSY input (what it reads while nothing drives the line). */
  get busyBias(): "pull-up" | "pull-down" | "disabled" | undefined {
    return this.#busyBias;
  }

  /** The host requested its BUSY input with this bias (the GPIO request's flag). */
  biasBusy(bias: "pull-up" | "pull-down" | "disabled" | undefined): void {
    this.#busyBias = bias;
  }

  /** A fault for tests: BUSY reads high whatever the chip does (a loose wire, no power). */
  jamBusy(jammed: boolean): void {
    this.#jammed = jammed;
  }

  // --- Pins -------------------------------------------------------------------------------------

  #busyHigh(): boolean {
    // Unpowered, the chip drives nothing: the line sits at the host's bias (floating reads low here).
    if (!this.#powered) return this.#jammed || this.#busyBias === "pull-up";
    return this.#jammed || this.#sleeping || this.#rstLevel === 0 || this.#clock.now() < this.#busyUntil;
  }

  /** PWR: rising is a power-on reset (RAM and registers lost, BUSY high); falling cuts the chip off. */
  #power(level: 0 | 1): void {
    const on = level === 1;
    if (on === this.#powered) return;
    this.#powerChanges.push({ at: this.#clock.now(), level, spiBytesBefore: this.#spiBytes });
    this.#powered = on;
    this.#pending = undefined;
    this.#sleeping = false;
    if (!on) return;
    this.#bw.set(noise(this.#bw.length, 0x90e1));
    this.#red.set(noise(this.#red.length, 0x90e2));
    this.#resetRegisters();
  }

  /** RST low holds the chip in reset; the rising edge restarts it: registers to power-on values, BUSY high. */
  #reset(level: 0 | 1): void {
    const rising = this.#rstLevel === 0 && level === 1;
    this.#rstLevel = level;
    if (!rising) return;
    this.#hardwareResets++;
    this.#sleeping = false;
    this.#pending = undefined;
    this.#resetRegisters();
  }

  #resetRegisters(): void {
    this.#mux = 0;
    this.#configured = false;
    this.#entry = 0x03;
    this.#xStart = 0;
    this.#xEnd = RAM_STRIDE - 1;
    this.#yStart = 0;
    this.#yEnd = SSD1680_RAM_HEIGHT - 1;
    this.#x = 0;
    this.#y = 0;
    this.#border = 0xc0;
    this.#ramOptions = 0x00;
    this.#sourceMode = 0x00;
    this.#updateSequence = 0xff;
    this.#busyUntil = this.#clock.now() + this.#resetMs;
  }

  // --- SPI decoding -----------------------------------------------------------------------------

  async #write(data: Uint8Array): Promise<void> {
    if (this.#closed) throw new Ssd1680SimulatorError("E_CLOSED", "The SPI device was closed.");
    this.#spiBytes += data.length;
    if (data.length === 0) return;
    if (!this.#powered) {
      throw new Ssd1680SimulatorError(
        "E_UNPOWERED",
        "SPI bytes while the panel's power switch (PWR) is low: the panel has no supply and stays blank.",
      );
    }
    if (this.#rstLevel === 0) {
      throw new Ssd1680SimulatorError("E_IN_RESET", "SPI bytes while RST is low: the chip is held in reset.");
    }
    if (this.#sleeping) {
      throw new Ssd1680SimulatorError(
        "E_SLEEPING",
        "SPI bytes after Deep Sleep (0x10): the chip only wakes on a hardware reset (RST low, then high).",
      );
    }
    if (this.#busyHigh()) {
      throw new Ssd1680SimulatorError(
        "E_BUSY",
        `SPI bytes while BUSY is high (${this.#dcLevel === 0 ? "command" : "data"} 0x${hex(data[0] ?? 0)}): the chip would ignore them; wait for BUSY low.`,
      );
    }
    for (const byte of data) {
      if (this.#dcLevel === 0) this.#command(byte);
      else this.#data(byte);
    }
  }

  #command(opcode: number): void {
    const pending = this.#pending;
    if (pending !== undefined && pending.need !== "ram" && pending.params.length < pending.need) {
      this.#pending = undefined;
      throw new Ssd1680SimulatorError(
        "E_TRUNCATED",
        `Command 0x${hex(pending.opcode)} takes ${pending.need} parameter byte(s) but command 0x${hex(opcode)} came after ${pending.params.length}.`,
      );
    }
    this.#pending = undefined;
    // A refresh, reset or sleep started by the previous command makes BUSY high: checked again
    // here because one SPI write may hold several commands.
    if (this.#busyHigh()) {
      throw new Ssd1680SimulatorError(
        "E_BUSY",
        `Command 0x${hex(opcode)} while BUSY is high: the chip would ignore it; wait for BUSY low.`,
      );
    }
    const need = PARAMETERS.get(opcode);
    if (need === undefined) {
      throw new Ssd1680SimulatorError(
        UNSUPPORTED.has(opcode) ? "E_UNSUPPORTED" : "E_UNKNOWN_COMMAND",
        UNSUPPORTED.has(opcode)
          ? `Command 0x${hex(opcode)} is real but not modelled by this simulator.`
          : `0x${hex(opcode)} is not an SSD1680 command.`,
      );
    }
    if (need === "ram") {
      this.#log.push({ opcode, params: [] });
      this.#pending = { opcode, params: [], need };
      return;
    }
    if (need === 0) {
      this.#execute(opcode, []);
      return;
    }
    this.#pending = { opcode, params: [], need };
  }

  #data(byte: number): void {
    const pending = this.#pending;
    if (pending === undefined) {
      throw new Ssd1680SimulatorError(
        "E_NO_COMMAND",
        `Data byte 0x${hex(byte)} with no command before it that takes data (DC must be low for commands).`,
      );
    }
    if (pending.need === "ram") {
      this.#ramByte(pending.opcode === 0x24 ? this.#bw : this.#red, byte);
      return;
    }
    if (pending.params.length >= pending.need) {
      throw new Ssd1680SimulatorError(
        "E_EXTRA_DATA",
        `Command 0x${hex(pending.opcode)} takes ${pending.need} parameter byte(s); got another, 0x${hex(byte)}.`,
      );
    }
    pending.params.push(byte);
    // Executed when complete, but kept pending so that an extra byte is caught.
    if (pending.params.length === pending.need) this.#execute(pending.opcode, pending.params);
  }

  #execute(opcode: number, params: readonly number[]): void {
    const [a = 0, b = 0, c = 0, d = 0] = params;
    this.#log.push({ opcode, params: [...params] });
    switch (opcode) {
      case 0x01: {
        // MUX gate lines = A[8:0] + 1. The glass has 250 gates; fewer leaves rows undriven.
        const mux = (a | ((b & 0x01) << 8)) + 1;
        if (mux > SSD1680_RAM_HEIGHT) this.#badParameter(opcode, a, "MUX is at most 296 gates");
        if ((c & ~0x07) !== 0) this.#badParameter(opcode, c, "only GD, SM and TB (bits 2-0) exist");
        if (c !== 0) this.#badParameter(opcode, c, "gate scan options other than 0 are not modelled");
        this.#mux = mux;
        this.#configured = true;
        return;
      }
      case 0x10:
        if (a === 0x00) return; // normal mode: nothing changes
        if (a !== 0x01 && a !== 0x03)
          this.#badParameter(opcode, a, "deep sleep takes 0x00, 0x01 (mode 1) or 0x03 (mode 2)");
        this.#sleeping = true;
        this.#deepSleeps++;
        this.#pending = undefined;
        // Mode 2 does not retain RAM.
        if (a === 0x03) {
          this.#bw.set(noise(this.#bw.length, 0x5eed));
          this.#red.set(noise(this.#red.length, 0x5eee));
        }
        return;
      case 0x11:
        if (a > 0x07) this.#badParameter(opcode, a, "data entry mode is AM (bit 2) and ID[1:0]");
        this.#entry = a;
        return;
      case 0x12:
        this.#resetRegisters();
        return;
      case 0x18:
        if (a !== 0x48 && a !== 0x80)
          this.#badParameter(opcode, a, "0x48 (external) or 0x80 (internal sensor)");
        this.#temperature = a;
        return;
      case 0x20:
        this.#activate();
        return;
      case 0x21:
        for (const option of [a >> 4, a & 0x0f]) {
          if (option !== 0x0 && option !== 0x4 && option !== 0x8)
            this.#badParameter(opcode, a, "each RAM option is 0 (normal), 4 (bypass as 0) or 8 (inverse)");
        }
        if ((b & 0x7f) !== 0) this.#badParameter(opcode, b, "only bit 7 (source output mode) exists");
        this.#ramOptions = a;
        this.#sourceMode = b;
        return;
      case 0x22:
        this.#updateSequence = a;
        return;
      case 0x3c:
        this.#border = a;
        return;
      case 0x44:
        if (a >= RAM_STRIDE || b >= RAM_STRIDE)
          this.#range(`RAM X window ${a}-${b} is outside bytes 0-${RAM_STRIDE - 1}`);
        this.#xStart = a;
        this.#xEnd = b;
        return;
      case 0x45: {
        const start = a | ((b & 0x01) << 8);
        const end = c | ((d & 0x01) << 8);
        if ((b & ~0x01) !== 0 || (d & ~0x01) !== 0)
          this.#badParameter(opcode, b | d, "the high bytes hold one bit");
        if (start >= SSD1680_RAM_HEIGHT || end >= SSD1680_RAM_HEIGHT)
          this.#range(`RAM Y window ${start}-${end} is outside 0-${SSD1680_RAM_HEIGHT - 1}`);
        this.#yStart = start;
        this.#yEnd = end;
        return;
      }
      case 0x4e:
        if (a >= RAM_STRIDE) this.#range(`RAM X counter ${a} is outside bytes 0-${RAM_STRIDE - 1}`);
        this.#x = a;
        return;
      case 0x4f: {
        const y = a | ((b & 0x01) << 8);
        if ((b & ~0x01) !== 0 || y >= SSD1680_RAM_HEIGHT)
          this.#range(`RAM Y counter ${a}/${b} is outside 0-295`);
        this.#y = y;
        return;
      }
    }
  }

  /** Whether `value` lies in the window from `start` to `end`, whichever way the counter runs. */
  static #within(value: number, start: number, end: number): boolean {
    return value >= Math.min(start, end) && value <= Math.max(start, end);
  }

  #ramByte(ram: Uint8Array, byte: number): void {
    const x = this.#x;
    const y = this.#y;
    if (
      !Ssd1680Simulator.#within(x, this.#xStart, this.#xEnd) ||
      !Ssd1680Simulator.#within(y, this.#yStart, this.#yEnd)
    ) {
      this.#range(
        `RAM data at X byte ${x}, Y ${y}, outside the window X ${this.#xStart}-${this.#xEnd}, Y ${this.#yStart}-${this.#yEnd}: more data than the window holds, or a counter set outside it`,
      );
    }
    ram[y * RAM_STRIDE + x] = byte;
    // Data Entry Mode: ID0 X increments (else decrements), ID1 Y likewise; AM: Y moves first.
    const dx = (this.#entry & 0x01) !== 0 ? 1 : -1;
    const dy = (this.#entry & 0x02) !== 0 ? 1 : -1;
    const xFirst = (this.#entry & 0x04) === 0;
    const xEndOfRun =
      x === (dx > 0 ? Math.max(this.#xStart, this.#xEnd) : Math.min(this.#xStart, this.#xEnd));
    const yEndOfRun =
      y === (dy > 0 ? Math.max(this.#yStart, this.#yEnd) : Math.min(this.#yStart, this.#yEnd));
    const xFrom = dx > 0 ? Math.min(this.#xStart, this.#xEnd) : Math.max(this.#xStart, this.#xEnd);
    const yFrom = dy > 0 ? Math.min(this.#yStart, this.#yEnd) : Math.max(this.#yStart, this.#yEnd);
    // Past the window's last position the chip wraps to its first: marked by an out-of-window
    // counter, so that a further byte is refused instead of silently overwriting the start.
    if (xFirst) {
      if (!xEndOfRun) this.#x = x + dx;
      else {
        this.#x = xFrom;
        this.#y = yEndOfRun ? -1 : y + dy;
      }
    } else if (!yEndOfRun) this.#y = y + dy;
    else {
      this.#y = yFrom;
      this.#x = xEndOfRun ? -1 : x + dx;
    }
  }

  /** Master Activation: runs the sequence set by 0x22; a display step copies RAM to the glass. */
  #activate(): void {
    const sequence = this.#updateSequence;
    const displays = (sequence & 0x04) !== 0;
    if (!displays) {
      // Clock/analog/LUT loading only: brief BUSY, glass unchanged.
      this.#busyUntil = this.#clock.now() + this.#resetMs;
      return;
    }
    if (!this.#configured) {
      throw new Ssd1680SimulatorError(
        "E_NOT_CONFIGURED",
        "Master Activation with a display step before Driver Output Control (0x01) since reset: the gate count is the power-on 296, not the glass's 250.",
      );
    }
    // Display mode 2 (bit 3): only pixels whose new (0x24) and old (0x26) bits differ are driven;
    // the others keep whatever the glass shows. Mode 1 drives every pixel.
    const partial = (sequence & 0x08) !== 0;
    const gates = Math.min(this.#mux, VISIBLE_GATES);
    for (let gate = 0; gate < gates; gate++) {
      for (let source = 0; source < VISIBLE_SOURCES; source++) {
        const white = this.#bit(this.#bw, this.#ramOptions & 0x0f, source, gate);
        if (partial && white === this.#bit(this.#red, this.#ramOptions >> 4, source, gate)) continue;
        this.#panel.set(gate, VISIBLE_SOURCES - 1 - source, !white);
      }
    }
    if (partial) this.#partialRefreshes++;
    else this.#fullRefreshes++;
    this.#busyUntil = this.#clock.now() + (partial ? this.#partialMs : this.#fullMs);
  }

  /** A RAM bit after the 0x21 option for that RAM: true = white. */
  #bit(ram: Uint8Array, option: number, source: number, gate: number): boolean {
    if (option === 0x4) return false; // bypass as 0
    const bit = ((ram[gate * RAM_STRIDE + (source >> 3)] ?? 0) >> (7 - (source & 7))) & 1;
    return option === 0x8 ? bit === 0 : bit === 1;
  }

  #badParameter(opcode: number, value: number, rule: string): never {
    throw new Ssd1680SimulatorError(
      "E_PARAMETER",
      `Command 0x${hex(opcode)} got 0x${hex(value)}, which the chip does not take: ${rule}.`,
    );
  }

  #range(message: string): never {
    throw new Ssd1680SimulatorError("E_RANGE", `${message}.`);
  }
}

/** A host output line whose level the simulator reads. */
function output(onSet: (level: 0 | 1) => void, level: () => 0 | 1): GpioLine {
  return {
    set: async (value) => onSet(value),
    get: async () => level(),
    watch: () => {
      throw new Ssd1680SimulatorError("E_DIRECTION", "Edge events are for inputs; this line is an output.");
    },
    close: async () => undefined,
  };
}
