import type { Screen } from "../../screens.ts";
import { remaining } from "../../text.ts";

/**
 * What the terminal prints for each screen, as text: the device code prompt as the original tool
 * showed it (the server's message, then the box), the spinner's status line, and the one sentence
 * of the screens that say something of their own. Pure; the driver decides when to print what.
 */

type CodeScreen = Extract<Screen, { kind: "code" | "waiting" }>;

export const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape sequences is the point.
export const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** Terminal rows a line takes at `columns` wide (escape sequences take none). */
export function rowsOf(line: string, columns: number): number {
  return Math.max(1, Math.ceil([...line.replace(ANSI, "")].length / columns));
}

/** "15 min", "1 min", "45 s". */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  return seconds >= 60 ? `${Math.round(seconds / 60)} min` : `${seconds} s`;
}

/** A box around `lines` (null: a rule); the width is the text's, so colour codes go in afterwards. */
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

/** The server's message (when it sent one) and the box; the code in bold with `color`. */
export function codeLines(screen: CodeScreen, now: number, color: boolean): string[] {
  const bold = (text: string): string => (color ? `\x1b[1m${text}\x1b[22m` : text);
  const lines = box([
    "Device Code Authentication",
    null,
    `1. Visit: ${screen.verificationUri}`,
    `2. Enter code: ${screen.userCode}`,
    "3. Sign in with your credentials",
    null,
    `Waiting for authentication... (expires in ${formatDuration(screen.expiresAt - now)})`,
    "Press Ctrl+C to cancel",
  ]).map((line) => line.replace(screen.userCode, bold(screen.userCode)));
  return [screen.message ?? "", ...lines].filter((line) => line.length > 0);
}

/** The line under the box on a terminal: spinner, countdown, and the note when there is one. */
export function statusLine(screen: CodeScreen, now: number, frame: number): string {
  const spinner = SPINNER[frame % SPINNER.length];
  const note = screen.kind === "waiting" && screen.detail !== undefined ? ` (${screen.detail})` : "";
  return `${spinner} Waiting for authentication... ${remaining(screen.expiresAt, now)} left${note}`;
}

/**
 * The sentence a screen without the code prints, if any. Signed-in, blocked, offline, error,
 * expired and cancelled print nothing: the command prints its result or its error itself.
 */
export function sentence(screen: Exclude<Screen, CodeScreen>): string | undefined {
  switch (screen.kind) {
    case "waiting-for-lock":
      return `Another entratool process is signing in profile '${screen.profile}'; waiting for it to finish...`;
    case "waiting-for-time":
      return "Waiting for the system clock to be set (network time) before signing in...";
    case "sign-in-needed":
      return screen.reason;
    case "wrong-account":
      return `Signed in as ${screen.username}, but this device expects ${screen.expected}; a new code follows.`;
    default:
      return undefined;
  }
}
