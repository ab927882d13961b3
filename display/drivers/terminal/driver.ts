import type { CodeInfo, SessionState as SignInState } from "../../../agent/auth/session-state.ts";
import type { Clock } from "../../../agent/core/clock.ts";
import type { Output } from "../../../agent/core/output.ts";
import type { QrMatrix } from "../../render/qr.ts";
import { remaining } from "../../text.ts";
import { qrHalfBlocks } from "./qr.ts";

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export interface PromptOptions {
  /** ANSI bold for the code; off for NO_COLOR, TERM=dumb and non-terminals. */
  readonly color: boolean;
  /**
   * Builds the QR code of the verification URL, shown under the box on a terminal with room for it.
   * Injected so that the QR encoder is loaded only when a code is shown (agent/main.ts).
   */
  readonly qr?: (text: string) => QrMatrix;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape sequences is the point.
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** Terminal rows a line takes at `columns` wide (escape sequences take none). */
function rowsOf(line: string, columns: number): number {
  return Math.max(1, Math.ceil([...line.replace(ANSI, "")].length / columns));
}

/** "15 min", "1 min", "45 s". */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  return seconds >= 60 ? `${Math.round(seconds / 60)} min` : `${seconds} s`;
}

/** Visible width: the box is laid out before colour codes go in. */
function box(lines: readonly (string | null)[]): string[] {
  const width = Math.max(...lines.map((line) => (line === null ? 0 : [...line].length)));
  const rule = "─".repeat(width + 2);
  const out = [`┌${rule}┐`];
  for (const line of lines) {
    out.push(line === null ? `├${rule}┤` : `│ ${line}${" ".repeat(width - [...line].length)} │`);
  }
  out.push(`└${rule}┘`);
  return out;
}

/**
 * The device code prompt on stderr, as the original tool showed it: the verification URL and the
 * user code exactly as issued, the time left, and how to cancel. On a terminal a spinner and a live
 * countdown run under the box, and the box is wiped once the code is no longer valid (success,
 * expiry, cancel); elsewhere (journald, pipes) it prints plain lines and a reminder each minute.
 */
export class DeviceCodePrompt {
  readonly #out: Output;
  readonly #clock: Clock;
  readonly #options: PromptOptions;
  #code: CodeInfo | undefined;
  #note = "";
  #frame = 0;
  /** Terminal rows the code occupies (box, message and status line), for wiping it. */
  #rows = 0;
  #lastMinuteShown = -1;

  constructor(out: Output, clock: Clock, options: PromptOptions) {
    this.#out = out;
    this.#clock = clock;
    this.#options = options;
  }

  get showingCode(): boolean {
    return this.#code !== undefined;
  }

  onState(state: SignInState): void {
    switch (state.kind) {
      case "waiting-for-lock":
        this.#out.write(
          `Another entratool process is signing in profile '${state.profile}'; waiting for it to finish...\n`,
        );
        break;
      case "waiting-for-time":
        this.#out.write("Waiting for the system clock to be set (network time) before signing in...\n");
        break;
      case "sign-in-required":
        this.#out.write(`${state.reason.message}\n`);
        break;
      case "code-issued":
        this.#code = state;
        this.#showCode(state);
        break;
      case "waiting":
        this.#code = state;
        this.#note =
          state.poll.type === "slow-down"
            ? `server asked to slow down; polling every ${state.poll.intervalSeconds} s`
            : state.poll.type === "retry"
              ? `identity provider unreachable (${state.poll.reason}); still trying`
              : "";
        if (!this.#out.isTTY && state.poll.type !== "pending") this.#out.write(`Note: ${this.#note}\n`);
        this.tick();
        break;
      case "signed-in":
      case "cancelled":
      case "expired":
      case "blocked-by-policy":
      case "offline":
      case "error":
        this.#clearCode();
        break;
      case "starting":
        break;
    }
  }

  /** Redraws the status line; the CLI calls it on a timer (tests call it with a manual clock). */
  tick(): void {
    const code = this.#code;
    if (!code) return;
    const now = this.#clock.now();
    if (this.#out.isTTY) {
      const spinner = SPINNER[this.#frame++ % SPINNER.length];
      const note = this.#note ? ` (${this.#note})` : "";
      this.#out.write(
        `\r\x1b[2K${spinner} Waiting for authentication... ${remaining(code.expiresAt, now)} left${note}`,
      );
      return;
    }
    const minutes = Math.ceil((code.expiresAt - now) / 60_000);
    if (minutes !== this.#lastMinuteShown && minutes > 0) {
      if (this.#lastMinuteShown !== -1)
        this.#out.write(`Still waiting for authentication... ${minutes} min left\n`);
      this.#lastMinuteShown = minutes;
    }
  }

  #showCode(code: CodeInfo): void {
    const bold = (text: string): string => (this.#options.color ? `\x1b[1m${text}\x1b[22m` : text);
    const expiresIn = formatDuration(code.expiresAt - this.#clock.now());
    const lines = box([
      "Device Code Authentication",
      null,
      `1. Visit: ${code.verificationUri}`,
      `2. Enter code: ${code.userCode}`,
      "3. Sign in with your credentials",
      null,
      `Waiting for authentication... (expires in ${expiresIn})`,
      "Press Ctrl+C to cancel",
    ]).map((line) => line.replace(code.userCode, bold(code.userCode)));
    const text = [code.message, ...lines].filter((line) => line.length > 0);
    // 0 is what a terminal of unknown size reports (a pty nobody sized, a serial console).
    const columns = this.#out.columns || 80;
    text.push(...this.#qrLines(code, text.length, columns));
    this.#out.write(`${text.join("\n")}\n`);
    this.#rows = text.reduce((rows, line) => rows + rowsOf(line, columns), 0);
    this.#lastMinuteShown = Math.ceil((code.expiresAt - this.#clock.now()) / 60_000);
    this.tick();
  }

  /**
   * The QR code's lines, on a terminal that shows it whole: wide enough, and tall enough for the
   * box, the code and the status line (scrolled off the top, it could not be wiped afterwards).
   */
  #qrLines(code: CodeInfo, textRows: number, columns: number): string[] {
    const { qr, color } = this.#options;
    const rows = this.#out.rows;
    if (!qr || !this.#out.isTTY || !rows) return [];
    const lines = qrHalfBlocks(qr(code.qrPayload), { color });
    const width = [...(lines[0] ?? "").replace(ANSI, "")].length;
    if (width > columns || textRows + lines.length + 2 > rows) return [];
    return ["Or scan:", ...lines];
  }

  #clearCode(): void {
    if (!this.#code) return;
    this.#code = undefined;
    if (this.#out.isTTY) {
      // Status line, then the box and message above it: the code must not stay on screen.
      this.#out.write(`\r\x1b[2K\x1b[${this.#rows}A\x1b[0J`);
    }
  }
}
