import type { Screen } from "../../screens.ts";
import { displayUrl, remaining } from "../../text.ts";

/**
 * What a character LCD shows for each screen: rows of exactly `columns` characters, all from the
 * part of the HD44780 A00 ROM that matches ASCII. Pure, so the driver, the preview and tests share
 * it. Long text (a URL, a username, an error sentence) is cut at natural breaks and paged: the page
 * is chosen from `now`, so a caller that re-renders every second turns the pages.
 */

export interface LcdGeometry {
  readonly columns: number;
  readonly rows: number;
}

/** How long one page of a long URL or message stays up; long enough to read and type a chunk. */
export const DEFAULT_PAGE_MS = 3000;

/** Where a long word may be cut (after the character): URL and address punctuation. */
const BREAKS = "/.?&=-_@";

/**
 * The rows for `screen` at `now` (epoch ms), the screen having come up at `since`: the pages turn
 * every `pageMs` from then.
 */
export function lcdFrame(
  screen: Screen,
  now: number,
  geometry: LcdGeometry,
  pageMs = DEFAULT_PAGE_MS,
  since = 0,
): string[] {
  return compose(screen, now, geometry, Math.floor((now - since) / pageMs), []);
}

/**
 * When each page of `screen` comes up, in ms after the screen appeared ([0] for one page). Every
 * list that pages turns at once, so the frames repeat after the least common multiple of their lengths.
 */
export function lcdPages(screen: Screen, geometry: LcdGeometry, pageMs = DEFAULT_PAGE_MS): number[] {
  const lengths: number[] = [];
  compose(screen, 0, geometry, 0, lengths);
  const count = lengths.reduce((a, b) => (a * b) / gcd(a, b), 1);
  return Array.from({ length: count }, (_, page) => page * pageMs);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The rows of page `turn`; `lengths` collects the length of every list that pages. */
function compose(
  screen: Screen,
  now: number,
  geometry: LcdGeometry,
  turn: number,
  lengths: number[],
): string[] {
  const { columns, rows } = geometry;
  const pick = <T>(items: readonly T[]): T | undefined => {
    if (items.length > 1) lengths.push(items.length);
    return items[items.length <= 1 ? 0 : mod(turn, items.length)];
  };
  const fitted = (lines: readonly (string | undefined)[]): string[] =>
    Array.from({ length: rows }, (_, row) => padTo(lines[row] ?? "", columns));

  if (screen.kind === "code" || screen.kind === "waiting") {
    const code = lcdText(screen.userCode);
    const labelled = `Code: ${code}`;
    const codeLine = labelled.length <= columns ? labelled : code;
    const url = chunk(lcdText(displayUrl(screen.verificationUri)), columns);
    const countdown = `${remaining(screen.expiresAt, now)} left`;
    const note = screen.kind === "waiting" && screen.note !== undefined ? lcdText(screen.note) : undefined;
    if (rows >= 4) {
      // The code alone on the top row, the URL over the next two, the countdown (and any note) last.
      const urlPage = pick(group(url, 2)) ?? [];
      const last = note === undefined ? countdown : pick([countdown, note]);
      return fitted([codeLine, urlPage[0], urlPage[1], last]);
    }
    // Two rows: the code stays put; the second row pages through the URL, then the countdown.
    return fitted([codeLine, pick([...url, countdown, ...(note === undefined ? [] : [note])])]);
  }

  const { title, body } = words(screen, columns);
  const lines = wrap(lcdText(body), columns);
  const page = pick(group(lines, Math.max(1, rows - 1))) ?? [];
  return fitted([lcdText(title), ...page]);
}

/** The title row and the body text of every screen that does not show the code. */
function words(
  screen: Exclude<Screen, { kind: "code" | "waiting" }>,
  columns: number,
): { title: string; body: string } {
  switch (screen.kind) {
    case "starting":
      return { title: "entratool", body: "Starting..." };
    case "waiting-for-time":
      return { title: "Please wait", body: "Waiting for network time" };
    case "waiting-for-lock":
      return { title: "Please wait", body: "Another sign-in is under way" };
    case "signed-in":
      return { title: "Signed in", body: screen.username };
    case "wrong-account":
      return { title: "Wrong account", body: `${screen.username}; expected ${screen.expected}` };
    case "sign-in-needed":
      return { title: "Sign-in needed", body: screen.reason };
    case "blocked":
      return { title: "Sign-in blocked", body: screen.message };
    case "offline":
      return { title: "Offline", body: screen.message };
    case "expired":
      return { title: "Code expired", body: "Sign in again" };
    case "cancelled":
      return { title: "Cancelled", body: "Sign-in stopped" };
    case "error": {
      // The code is what support asks for: never cut it; move it to the body if the title is too narrow.
      const titled = `Error ${screen.code}`;
      if (titled.length <= columns) return { title: titled, body: screen.message };
      if (screen.code.length <= columns) return { title: screen.code, body: screen.message };
      return { title: "Error", body: `${screen.code} ${screen.message}` };
    }
  }
}

/**
 * Text the A00 ROM shows as written: accents dropped (é → e), compatibility forms expanded
 * (… → ...), white space as spaces, and anything else, including "\" (a yen sign in A00) and
 * "~" (an arrow), as "?".
 */
export function lcdText(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .replace(/\s/gu, " ")
    .replace(/[^\x20-\x5b\x5d-\x7d]/gu, "?");
}

/** Words filled into lines of at most `width`; a word longer than a line is cut by `chunk`. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ").filter((w) => w.length > 0)) {
    const pieces = chunk(word, width);
    for (const piece of pieces) {
      if (line.length === 0) line = piece;
      else if (line.length + 1 + piece.length <= width) line = `${line} ${piece}`;
      else {
        lines.push(line);
        line = piece;
      }
    }
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

/**
 * Cuts text into pieces of at most `width`, after the last break character in each piece's window
 * (so "login.microsoftonline.com/" splits at the dot and the slash, not mid-word); a break in
 * the first quarter would leave a sliver, so there the cut is hard.
 */
export function chunk(text: string, width: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > width) {
    const window = rest.slice(0, width);
    let cut = width;
    for (let i = width - 1; i >= Math.floor(width / 4); i--) {
      if (BREAKS.includes(window.charAt(i))) {
        cut = i + 1;
        break;
      }
    }
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest.length > 0) pieces.push(rest);
  return pieces;
}

function group<T>(items: readonly T[], size: number): T[][] {
  const groups: T[][] = [];
  for (let i = 0; i < items.length; i += size) groups.push(items.slice(i, i + size));
  return groups;
}

function padTo(text: string, width: number): string {
  return text.length >= width ? text.slice(0, width) : text.padEnd(width, " ");
}

function mod(value: number, modulus: number): number {
  return ((value % modulus) + modulus) % modulus;
}
