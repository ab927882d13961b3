/**
 * Text that came from outside (an identity provider's answer, a file) on its way to a terminal or
 * a display: terminal control characters would let a hostile server move the cursor, rewrite what
 * was printed before (a fake code, a fake URL), set the window title or worse. Every such string is
 * passed through here first.
 */

// C0 controls (except tab and newline, handled per function), DEL, C1 controls, and the Unicode
// bidirectional overrides and isolates (which can make a URL read differently from what it is).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with control characters removed; tabs become spaces; newlines are kept. */
export function safeText(text: string): string {
  return text.replace(/\t/g, " ").replace(/\r\n?/g, "\n").replace(CONTROL, "");
}

/** `text` on one line: control characters removed, any run of white space (newlines too) one space. */
export function safeLine(text: string): string {
  return safeText(text).replace(/\s+/g, " ").trim();
}
