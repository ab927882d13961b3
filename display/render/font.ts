import type { Bitmap } from "./bitmap.ts";

/**
 * Character-cell bitmap fonts for the pixel displays. The glyphs are generated from X.Org's
 * public-domain misc-fixed fonts by scripts/gen-font.ts into display/render/fonts/*.ts.
 *
 * Every glyph is a full cell: `advance` pixels wide and `height` rows tall, the baseline `ascent`
 * rows below the top. Text is placed by the top left of its line box, not by its baseline, because
 * screens are laid out in boxes. Sizes are pixels at scale 1; `scale` (a whole number, default 1)
 * multiplies each pixel into a `scale` x `scale` square, for a user code readable from a metre away.
 */
export interface Glyph {
  /** Pixels the pen moves right after this glyph (the cell width). */
  readonly advance: number;
  /** `height` rows of `advance` characters: `#` ink, `.` blank. */
  readonly rows: readonly string[];
}

export interface BitmapFont {
  readonly name: string;
  /** Rows from the top of a line to the baseline. */
  readonly ascent: number;
  /** Line height in rows (ascent + descent). */
  readonly height: number;
  /** Glyphs by character (one code point each). */
  readonly glyphs: ReadonlyMap<string, Glyph>;
}

/** Drawn for characters the font lacks; every generated font has it (gen-font requires ASCII). */
const FALLBACK = "?";

/**
 * Builds a font from the generated text: blocks separated by a blank line, each a `U+XXXX` line
 * followed by the glyph's rows. Used by the modules in ./fonts, which keep the glyphs in a template
 * literal so that the formatter leaves them alone and a reviewer sees each shape. The result is
 * frozen: fonts are shared constants.
 */
export function parseFont(name: string, ascent: number, text: string): BitmapFont {
  const glyphs = new Map<string, Glyph>();
  let height: number | undefined;
  for (const block of text.trim().split(/\n\s*\n/)) {
    const [label = "", ...rows] = block.trim().split("\n");
    const match = /^U\+([0-9A-F]{4,6})$/.exec(label.trim());
    if (match?.[1] === undefined) throw new Error(`font ${name}: bad glyph label ${JSON.stringify(label)}`);
    const char = String.fromCodePoint(Number.parseInt(match[1], 16));
    const advance = rows[0]?.length ?? 0;
    if (rows.some((row) => row.length !== advance || /[^#.]/.test(row))) {
      throw new Error(`font ${name}: glyph ${label} has rows of unequal length or stray characters`);
    }
    if (height !== undefined && rows.length !== height) {
      throw new Error(`font ${name}: glyph ${label} has ${rows.length} rows, others ${height}`);
    }
    height = rows.length;
    glyphs.set(char, Object.freeze({ advance, rows: Object.freeze(rows) }));
  }
  if (!glyphs.has(FALLBACK)) throw new Error(`font ${name}: no fallback glyph ${FALLBACK}`);
  return Object.freeze({ name, ascent, height: height ?? 0, glyphs });
}

/** The glyph drawn for `char`: its own, else the fallback `?`. */
export function glyphFor(font: BitmapFont, char: string): Glyph {
  const glyph = font.glyphs.get(char) ?? font.glyphs.get(FALLBACK);
  if (glyph === undefined) throw new Error(`font ${font.name} has no fallback glyph`);
  return glyph;
}

function checkScale(scale: number): void {
  if (!Number.isInteger(scale) || scale < 1)
    throw new RangeError(`text scale must be a whole number ≥ 1, got ${scale}`);
}

/** The size in pixels of `text` on one line at `scale` (default 1). */
export function measureText(font: BitmapFont, text: string, scale = 1): { width: number; height: number } {
  checkScale(scale);
  let width = 0;
  for (const char of text) width += glyphFor(font, char).advance;
  return { width: width * scale, height: font.height * scale };
}

export interface DrawTextOptions {
  /** Whole-number pixel multiplier; default 1. */
  readonly scale?: number;
  /**
   * Default false: only ink pixels are turned on and the background is left as it was (clear the
   * area first). True: every cell is painted on and the ink turned off, a highlighted line.
   */
  readonly invert?: boolean;
}

/**
 * Draws `text` on one line with the top left of its line box at (x, y), clipped to the bitmap.
 * Returns the width drawn in pixels (as `measureText`). Newlines are not interpreted: wrap first.
 */
export function drawText(
  bitmap: Bitmap,
  font: BitmapFont,
  text: string,
  x: number,
  y: number,
  options: DrawTextOptions = {},
): number {
  const scale = options.scale ?? 1;
  const invert = options.invert ?? false;
  checkScale(scale);
  let pen = x;
  for (const char of text) {
    const glyph = glyphFor(font, char);
    if (invert) bitmap.fillRect(pen, y, glyph.advance * scale, font.height * scale, true);
    glyph.rows.forEach((row, gy) => {
      for (let gx = 0; gx < row.length; gx++) {
        if (row[gx] === "#") bitmap.fillRect(pen + gx * scale, y + gy * scale, scale, scale, !invert);
      }
    });
    pen += glyph.advance * scale;
  }
  return pen - x;
}

export interface WrapOptions {
  /** Whole-number pixel multiplier; default 1. */
  readonly scale?: number;
  /** At most this many lines (default unlimited); the last one is cut with an ellipsis if needed. */
  readonly maxLines?: number;
}

/**
 * Whether a line may break before `chars[i]`. Spaces break prose. URLs break as the Chicago
 * Manual of Style advises (14.18), so that a reader sees the line was broken and not hyphenated:
 * after `//`, before a single `/`, before `.` `?` `#` `&` `=` `-`. Never at either end.
 */
function canBreakBefore(chars: readonly string[], i: number): boolean {
  if (i <= 0 || i >= chars.length) return false;
  const previous = chars[i - 1] ?? "";
  const current = chars[i] ?? "";
  if (/\s/.test(previous) || /\s/.test(current)) return true;
  if (previous === "/" && chars[i - 2] === "/" && current !== "/") return true;
  if (current === "/") return previous !== "/" && chars[i + 1] !== "/";
  return ".?#&=-".includes(current);
}

/** How many of `chars` from `start` fit in `maxWidth`, at least one (so wrapping always progresses). */
function fitting(
  font: BitmapFont,
  chars: readonly string[],
  start: number,
  maxWidth: number,
  scale: number,
): number {
  let width = 0;
  let count = 0;
  for (let i = start; i < chars.length; i++) {
    width += glyphFor(font, chars[i] ?? "").advance * scale;
    if (width > maxWidth) break;
    count++;
  }
  return Math.max(1, count);
}

/**
 * `text` cut to fit `maxWidth` pixels on one line: unchanged if it fits, else as many characters
 * as fit followed by an ellipsis (`…`, or `...` if the font lacks it).
 */
export function truncateText(
  font: BitmapFont,
  text: string,
  maxWidth: number,
  options: { scale?: number } = {},
): string {
  const scale = options.scale ?? 1;
  if (measureText(font, text, scale).width <= maxWidth) return text;
  const ellipsis = font.glyphs.has("…") ? "…" : "...";
  const room = maxWidth - measureText(font, ellipsis, scale).width;
  const chars = [...text];
  let kept = "";
  let width = 0;
  for (const char of chars) {
    width += glyphFor(font, char).advance * scale;
    if (width > room) break;
    kept += char;
  }
  return `${kept.trimEnd()}${ellipsis}`;
}

/**
 * Splits `text` into lines no wider than `maxWidth` pixels: at a space or a URL break point (see
 * `canBreakBefore`; the last one that fits), else hard, mid-word, at the last character that fits.
 * Newlines in `text` always break. A single character wider than `maxWidth` still gets a line.
 */
export function wrapText(
  font: BitmapFont,
  text: string,
  maxWidth: number,
  options: WrapOptions = {},
): string[] {
  const scale = options.scale ?? 1;
  const maxLines = options.maxLines ?? Number.POSITIVE_INFINITY;
  checkScale(scale);
  if (!(maxLines >= 1)) throw new RangeError(`maxLines must be at least 1, got ${maxLines}`);
  const lines: string[] = [];
  const paragraphs = text.split("\n");
  for (let p = 0; p < paragraphs.length; p++) {
    const chars = [...(paragraphs[p] ?? "")];
    let start = 0;
    do {
      while (start < chars.length && /\s/.test(chars[start] ?? "")) start++;
      const rest = chars.slice(start).join("");
      const lastParagraph = p === paragraphs.length - 1;
      if (lines.length === maxLines - 1) {
        const more = lastParagraph ? rest : `${rest} ${paragraphs.slice(p + 1).join(" ")}`;
        lines.push(truncateText(font, more, maxWidth, { scale }));
        return lines;
      }
      const count = fitting(font, chars, start, maxWidth, scale);
      if (start + count >= chars.length) {
        lines.push(rest);
        break;
      }
      let end = start + count;
      for (let b = start + count; b > start; b--) {
        if (canBreakBefore(chars, b)) {
          end = b;
          break;
        }
      }
      lines.push(chars.slice(start, end).join("").trimEnd());
      start = end;
    } while (start < chars.length);
  }
  return lines;
}
