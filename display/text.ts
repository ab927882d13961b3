/** Text helpers every display shares (the terminal prompt, the LCD, the pixel panels). */
import type { Screen } from "./screens.ts";

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

/** The title and body a pixel panel shows for each screen that does not carry the code. */
export function screenWords(screen: Exclude<Screen, { kind: "code" | "waiting" }>): {
  title: string;
  body: string;
} {
  switch (screen.kind) {
    case "starting":
      return { title: "Starting", body: "entratool is starting." };
    case "waiting-for-time":
      return { title: "Please wait", body: "Waiting for the network time before signing in." };
    case "waiting-for-lock":
      return { title: "Please wait", body: "Another sign-in of this device is under way." };
    case "signed-in":
      return { title: "Signed in", body: screen.username };
    case "wrong-account":
      return {
        title: "Wrong account",
        body: `Signed in as ${screen.username}, but this device expects ${screen.expected}.`,
      };
    case "sign-in-needed":
      return { title: "Sign in again", body: screen.reason };
    case "blocked":
      return { title: "Blocked", body: screen.message };
    case "offline":
      return { title: "Offline", body: screen.message };
    case "expired":
      return { title: "Code expired", body: "The sign-in code expired. Sign in again for a new one." };
    case "cancelled":
      return { title: "Cancelled", body: "Sign-in was stopped." };
    case "error":
      // The error code first, on its own line: it is what support asks for.
      return { title: "Error", body: `${screen.code}\n${screen.message}` };
  }
}
