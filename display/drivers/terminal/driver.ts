import type { Clock } from "../../../agent/core/clock.ts";
import type { Output } from "../../../agent/core/output.ts";
import { type Screen, showsCode } from "../../screens.ts";
import type { QrEncoder } from "../../types.ts";
import { ANSI, codeLines, rowsOf, sentence, statusLine } from "./layout.ts";
import { qrHalfBlocks } from "./qr.ts";

type CodeScreen = Extract<Screen, { kind: "code" | "waiting" }>;

export interface PromptOptions {
  /** ANSI bold for the code, black-on-white QR modules; off for NO_COLOR, TERM=dumb and non-terminals. */
  readonly color: boolean;
  /**
   * Builds the QR code of the verification URL, shown under the box on a terminal with room for it.
   * Injected so that the QR encoder is loaded only when a code is shown (agent/qr.ts).
   */
  readonly qr?: QrEncoder | undefined;
  /** How often the spinner turns on a terminal, ms; default 100. */
  readonly spinnerMs?: number;
}

/**
 * The device code prompt on one output (stderr, or the controlling terminal), as the original tool
 * showed it: the server's message, then a box with the verification URL and the user code exactly
 * as issued, the time left and how to cancel. A display like the others: it is shown screens.
 *
 * On a terminal, a spinner with a live countdown turns under the box (on the injected clock, every
 * `spinnerMs`), a QR code of the URL follows the box when it fits whole, and the box is wiped as
 * soon as a screen without the code comes: the code must not stay up once it is void. Elsewhere
 * (journald, pipes) it prints plain lines: the box once, a reminder each minute (the set shows the
 * code screen again every second) and a note when polling slows down or is retried.
 *
 * Screens without the code print their own sentence once (waiting for the time or for another
 * process, why a new sign-in is needed, the wrong account); the others print nothing: the command
 * prints its result, or its error, itself.
 */
export class DeviceCodePrompt {
  readonly #out: Output;
  readonly #clock: Clock;
  readonly #options: PromptOptions;
  #code: CodeScreen | undefined;
  /** The note last told (off a terminal each new one gets a line). */
  #detail: string | undefined;
  #frame = 0;
  /** Terminal rows the code occupies (message, box, QR code and status line), for wiping it. */
  #rows = 0;
  /** The output's rowsWritten once the code was printed: rows others write below it come on top. */
  #mark = 0;
  #lastMinuteShown = -1;
  /** The screen without the code last shown, so that showing it again prints nothing more. */
  #said: string | undefined;
  #spinner: AbortController | undefined;
  #closed = false;

  constructor(out: Output, clock: Clock, options: PromptOptions) {
    this.#out = out;
    this.#clock = clock;
    this.#options = options;
  }

  get showingCode(): boolean {
    return this.#code !== undefined;
  }

  async show(screen: Screen, now: number): Promise<void> {
    if (this.#closed) return;
    if (showsCode(screen)) {
      this.#showCode(screen, now);
      return;
    }
    this.#takeCodeOff();
    const said = JSON.stringify(screen);
    if (said === this.#said) return;
    this.#said = said;
    const line = sentence(screen);
    if (line !== undefined) this.#out.write(`${line}\n`);
  }

  /** Takes the code off (wipes the box on a terminal). */
  async clear(): Promise<void> {
    if (!this.#closed) this.#takeCodeOff();
  }

  /** Stops the spinner; nothing is written afterwards. */
  close(): void {
    this.#stopSpinner();
    this.#closed = true;
  }

  #showCode(screen: CodeScreen, now: number): void {
    const detail = screen.kind === "waiting" ? screen.detail : undefined;
    if (this.#code?.userCode !== screen.userCode) {
      this.#takeCodeOff();
      this.#said = undefined;
      this.#code = screen;
      this.#detail = undefined;
      this.#printCode(screen, now);
    }
    this.#code = screen;
    if (detail !== this.#detail) {
      this.#detail = detail;
      if (!this.#out.isTTY && detail !== undefined) this.#out.write(`Note: ${detail}\n`);
    }
    this.#status(now);
    this.#startSpinner();
  }

  #printCode(screen: CodeScreen, now: number): void {
    const text = codeLines(screen, now, this.#options.color);
    // 0 is what a terminal of unknown size reports (a pty nobody sized, a serial console).
    const columns = this.#out.columns || 80;
    text.push(...this.#qrLines(screen, text.length, columns));
    this.#out.write(`${text.join("\n")}\n`);
    this.#rows = text.reduce((rows, line) => rows + rowsOf(line, columns), 0);
    this.#mark = this.#out.rowsWritten ?? 0;
    this.#lastMinuteShown = Math.ceil((screen.expiresAt - now) / 60_000);
  }

  /**
   * The QR code's lines, on a terminal that shows it whole: wide enough, and tall enough for the
   * box, the code and the status line (scrolled off the top, it could not be wiped afterwards).
   */
  #qrLines(screen: CodeScreen, textRows: number, columns: number): string[] {
    const { qr, color } = this.#options;
    const rows = this.#out.rows;
    if (!qr || !this.#out.isTTY || !rows) return [];
    const lines = qrHalfBlocks(qr(screen.qrPayload), { color });
    const width = [...(lines[0] ?? "").replace(ANSI, "")].length;
    if (width > columns || textRows + lines.length + 2 > rows) return [];
    return ["Or scan:", ...lines];
  }

  /** The status line on a terminal; off one, the reminder when the minutes left change. */
  #status(now: number): void {
    const code = this.#code;
    if (code === undefined) return;
    if (this.#out.isTTY) {
      // One row, never wrapped (a note can be long): a wrapped line would not be redrawn in place,
      // and the wipe, which counts on one row, would leave the rows above it.
      const columns = this.#out.columns || 80;
      const line = [...statusLine(code, now, this.#frame++)];
      const fitted = line.length < columns ? line.join("") : `${line.slice(0, columns - 2).join("")}…`;
      this.#out.write(`\r\x1b[2K${fitted}`);
      return;
    }
    const minutes = Math.ceil((code.expiresAt - now) / 60_000);
    if (minutes !== this.#lastMinuteShown && minutes > 0) {
      if (this.#lastMinuteShown !== -1)
        this.#out.write(`Still waiting for authentication... ${minutes} min left\n`);
      this.#lastMinuteShown = minutes;
    }
  }

  /** Turns the spinner every `spinnerMs` on the clock while the code is up, on a terminal only. */
  #startSpinner(): void {
    if (!this.#out.isTTY || this.#spinner !== undefined) return;
    const controller = new AbortController();
    this.#spinner = controller;
    const every = this.#options.spinnerMs ?? 100;
    const turn = async (): Promise<void> => {
      for (;;) {
        await this.#clock.sleep(every, controller.signal);
        if (controller.signal.aborted || this.#code === undefined) return;
        this.#status(this.#clock.now());
      }
    };
    // A sleep ends by the abort, and a write that fails here fails again at the next show(),
    // which tells the set: either way the spinner just stops.
    turn().catch(() => {
      if (this.#spinner === controller) this.#spinner = undefined;
    });
  }

  #stopSpinner(): void {
    this.#spinner?.abort();
    this.#spinner = undefined;
  }

  #takeCodeOff(): void {
    this.#stopSpinner();
    if (this.#code === undefined) return;
    this.#code = undefined;
    this.#detail = undefined;
    this.#lastMinuteShown = -1;
    if (this.#out.isTTY) {
      // Status line, then the box and message above it: the code must not stay on screen. A line
      // logged meanwhile (a display that failed) pushed the box up by the rows it took.
      const below = (this.#out.rowsWritten ?? 0) - this.#mark;
      this.#out.write(`\r\x1b[2K\x1b[${this.#rows + below}A\x1b[0J`);
    }
  }
}

/** Whether ANSI colour goes to `out`: a terminal, and neither NO_COLOR nor TERM=dumb. */
export function colorFor(out: Output, env: Readonly<Record<string, string | undefined>>): boolean {
  return out.isTTY && !env.NO_COLOR && env.TERM !== "dumb";
}
