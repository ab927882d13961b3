/** Text helpers every display shares (the terminal prompt, the LCD, the pixel panels). */

/**
 * The URL as a person types it: without "https://", which every current browser assumes for a
 * typed address, so "microsoft.com/devicelogin" fits two 16-column LCD chunks instead of three.
 * Anything else (another scheme) is kept as sent. QR codes carry the URL exactly as sent.
 */
export function displayUrl(url: string): string {
  return url.replace(/^https:\/\//i, "");
}

/** "14:59" (or "1:02:03"): whole seconds left, rounded up so that "0:00" shows only once expired. */
export function remaining(expiresAt: number, now: number): string {
  const seconds = Math.ceil(Math.max(0, expiresAt - now) / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/**
 * Text as the bundled pixel fonts draw it (printable ASCII, "·" and "…"): accents dropped
 * (é → e), white space as spaces; anything else falls back to the fonts' "?".
 */
export function pixelFontText(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .replace(/[^\S\n]/gu, " ");
}
