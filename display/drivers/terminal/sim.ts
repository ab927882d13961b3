import type { Output } from "../../../agent/core/output.ts";
import { rowsCompleted } from "../../../agent/core/output.ts";
import { SimulatorError } from "../../sim/error.ts";

/**
 * A terminal as the prompt finds it, decoding what is written the way a VT100-class terminal
 * (xterm, the Linux console) would: printable characters at the cursor with deferred auto-wrap at
 * `columns`, "\n" as a new line at column 0 (the tty's ONLCR), "\r", and the few control sequences
 * the prompt uses: CSI 2 K (erase the line), CSI n A (cursor up, not above the top of the screen),
 * CSI 0 J (erase to the end of the screen) and SGR (colour and bold, which change no text). Any
 * other sequence is rejected, so the prompt cannot start using one that a test would not decode.
 *
 * Not a terminal (`isTTY` false: a pipe, journald): every character is kept as written, and a
 * control sequence or "\r" is rejected, as it would be garbage in a log.
 *
 * `lines()` is what a person reads: the screen with its scrollback, without trailing empty lines.
 * `text` is everything written, byte for byte.
 */

export type TerminalSimulatorErrorCode = "E_UNSUPPORTED" | "E_NOT_A_TTY";

export class TerminalSimulatorError extends SimulatorError<TerminalSimulatorErrorCode> {
  override readonly name = "TerminalSimulatorError";
}

export interface TerminalSimulatorOptions {
  readonly isTTY: boolean;
  /** Width in cells; default 80. */
  readonly columns?: number;
  /** Height of the screen in rows (the scrollback above it is unlimited); default 24. */
  readonly rows?: number;
}

export class TerminalSimulator implements Output {
  readonly isTTY: boolean;
  readonly columns: number;
  readonly rows: number;
  /** Everything written. */
  text = "";
  /** Output.rowsWritten, counted as the real terminal output counts it. */
  rowsWritten = 0;
  readonly #lines: string[][] = [[]];
  #row = 0;
  #column = 0;
  /** The cursor is past the last column: the next character goes to the next line (deferred wrap). */
  #wrapPending = false;
  /** The first row of the screen; rows above it have scrolled off into the scrollback. */
  #top = 0;

  constructor(options: TerminalSimulatorOptions) {
    this.isTTY = options.isTTY;
    this.columns = options.columns ?? 80;
    this.rows = options.rows ?? 24;
  }

  write(text: string): void {
    this.text += text;
    if (this.isTTY) this.rowsWritten += rowsCompleted(text, this.columns);
    const chars = [...text];
    for (let i = 0; i < chars.length; i++) {
      const char = chars[i] ?? "";
      if (char === "\x1b") {
        i = this.#escape(chars, i);
        continue;
      }
      if (char === "\n") {
        this.#newLine();
        continue;
      }
      if (char === "\r") {
        this.#requireTTY("a carriage return");
        this.#column = 0;
        this.#wrapPending = false;
        continue;
      }
      this.#put(char);
    }
  }

  /** The text a person reads, line by line (scrollback included), without trailing empty lines. */
  lines(): string[] {
    const lines = this.#lines.map((cells) => cells.join(""));
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines;
  }

  /** Whether `text` can be read anywhere on the screen or in the scrollback. */
  shows(text: string): boolean {
    return this.lines().some((line) => line.includes(text));
  }

  #put(char: string): void {
    if (this.#wrapPending) this.#newLine();
    const line = this.#line();
    while (line.length < this.#column) line.push(" ");
    line[this.#column] = char;
    this.#column++;
    if (this.#column >= this.columns) this.#wrapPending = true;
  }

  #newLine(): void {
    this.#row++;
    this.#column = 0;
    this.#wrapPending = false;
    while (this.#lines.length <= this.#row) this.#lines.push([]);
    this.#top = Math.max(this.#top, this.#row - this.rows + 1);
  }

  #line(): string[] {
    const line = this.#lines[this.#row];
    if (line === undefined) throw new Error("cursor outside the buffer");
    return line;
  }

  /** Decodes one CSI sequence starting at chars[at] (ESC); returns the index of its last character. */
  #escape(chars: readonly string[], at: number): number {
    this.#requireTTY("an escape sequence");
    if (chars[at + 1] !== "[") {
      throw new TerminalSimulatorError("E_UNSUPPORTED", "Only CSI sequences (ESC [) are decoded.");
    }
    let end = at + 2;
    let params = "";
    while (end < chars.length && /[0-9;]/.test(chars[end] ?? "")) params += chars[end++];
    const final = chars[end];
    const n = params === "" ? undefined : Number(params.split(";")[0]);
    switch (final) {
      case "m":
        break;
      case "K":
        if (n !== 2) throw new TerminalSimulatorError("E_UNSUPPORTED", `CSI ${params}K is not decoded.`);
        this.#lines[this.#row] = [];
        break;
      case "A":
        this.#row = Math.max(this.#top, this.#row - (n ?? 1));
        this.#wrapPending = false;
        break;
      case "J":
        if ((n ?? 0) !== 0)
          throw new TerminalSimulatorError("E_UNSUPPORTED", `CSI ${params}J is not decoded.`);
        this.#lines[this.#row] = this.#line().slice(0, this.#column);
        this.#lines.length = this.#row + 1;
        break;
      default:
        throw new TerminalSimulatorError("E_UNSUPPORTED", `CSI ${params}${final ?? ""} is not decoded.`);
    }
    return end;
  }

  #requireTTY(what: string): void {
    if (!this.isTTY) {
      throw new TerminalSimulatorError(
        "E_NOT_A_TTY",
        `${what} was written to an output that is not a terminal`,
      );
    }
  }
}
