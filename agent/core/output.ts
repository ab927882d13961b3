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
}
