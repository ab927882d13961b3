/**
 * A stream text is written to: stdout, stderr, the controlling terminal. `isTTY` decides spinners,
 * colour and redraws; the size, when known, decides what fits (a QR code under the prompt).
 */
export interface Output {
  write(text: string): void;
  readonly isTTY: boolean;
  /** Terminal width when known. */
  readonly columns?: number | undefined;
  /** Terminal height when known. */
  readonly rows?: number | undefined;
  /**
   * On a terminal: how many rows the lines written so far have completed (a line longer than the
   * width takes more than one), whoever wrote them. What redraws a block of rows (the device code
   * prompt) counts the rows others wrote below it since (a log line) before it moves up to wipe it.
   */
  readonly rowsWritten?: number | undefined;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape sequences is the point.
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** The terminal rows the complete lines of `text` take at `columns` wide (escape sequences take none). */
export function rowsCompleted(text: string, columns: number): number {
  const lines = text.split("\n");
  lines.pop();
  return lines.reduce(
    (rows, line) =>
      rows + Math.max(1, Math.ceil([...line.replace(ANSI, "").replace(/^.*\r/, "")].length / columns)),
    0,
  );
}
