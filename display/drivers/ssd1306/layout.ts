import { Bitmap } from "../../render/bitmap.ts";
import { type BitmapFont, drawText, measureText, truncateText, wrapText } from "../../render/font.ts";
import { font5x7 } from "../../render/fonts/5x7.ts";
import { font6x10 } from "../../render/fonts/6x10.ts";
import { font10x20 } from "../../render/fonts/10x20.ts";
import { drawQr, qrMatrix } from "../../render/qr.ts";
import type { Screen } from "../../screens.ts";
import { displayUrl, pixelFontText, remaining, screenWords } from "../../text.ts";

/**
 * What a 128x64 OLED shows for each screen, as a Bitmap (on = lit). Pure, so that the driver, the
 * PNG preview and tests share it; the page shown is chosen from the time since the screen came up
 * (`now - since`: the driver remembers when each screen first appeared).
 *
 * The code screen cannot hold both a readable code and a scannable QR code, so it alternates, in a
 * cycle counted from when the code appeared. The QR page comes first: whoever walks up to the device
 * with a phone when a code appears can scan at once, and the QR page shows the code too.
 *
 * - QR page (`qrPageMs`, default 4 s): the QR code of `qrPayload` in the left 64x64, and on the
 *   right "Scan, then enter code", the code (largest font that fits 60 px: 6x10 for 9
 *   characters) and the countdown. The Entra URL is a 29-module symbol (version 3, level M); at
 *   2 px a module it is 58 px, leaving 3 lit px (1.5 modules) of quiet zone inside the 64 rows.
 *   1 px a module would fit beside a large code, but 0.17 mm modules are below what most phone
 *   cameras resolve at their closest focus, and the standard 4-module quiet zone at 2 px (74 px)
 *   does not fit: 2-px modules with a narrow lit margin is the code that scans (jsQR reads it with
 *   the dark glass around it). The code stays on this page, small, because whoever scans is
 *   standing close and needs it next.
 * - Code page (`codePageMs`, default 6 s): the verification URL in 6x10 on top, the user code in
 *   10x20 in the middle (scaled up when it fits, else bold), "Expires in" (or the waiting screen's
 *   note) and the mm:ss countdown at the bottom. A 9-character Entra code takes 91 of the 128
 *   columns, the largest the row holds (14 px a character at most): on a 0.96" panel (0.17 mm
 *   pixels) its capitals are about 2.2 mm tall, some 7.5 arcminutes at 1 m, above the 5' a 20/20
 *   eye resolves; bold keeps the strokes from thinning out at that distance.
 * A `qrPageMs` of 0, or a payload too long even at 1 px a module, leaves the code page up.
 *
 * Other screens: a title (10x20 when it fits, else 6x10) over a rule, then the body wrapped in
 * 6x10; a body longer than the space left is paged every `textPageMs`. None of them draws the user
 * code (the Screen type does not carry it there).
 */

export const OLED_WIDTH = 128;
export const OLED_HEIGHT = 64;

/**
 * The page's size: the panel's 128x64, or 64x128 when it is turned a quarter (`rotate` 90 or
 * 270). In portrait the QR page puts the 64x64 symbol box on top and its text column under it.
 */
export interface OledGeometry {
  readonly width: number;
  readonly height: number;
}

export const OLED_LANDSCAPE: OledGeometry = { width: OLED_WIDTH, height: OLED_HEIGHT };
export const OLED_PORTRAIT: OledGeometry = { width: OLED_HEIGHT, height: OLED_WIDTH };

export interface OledTiming {
  /** How long the code page stays up in each cycle, ms; default 6000. */
  readonly codePageMs?: number;
  /** How long the QR page stays up in each cycle, ms; default 4000; 0 never shows it. */
  readonly qrPageMs?: number;
  /** How long each page of a long message stays up, ms; default 4000. */
  readonly textPageMs?: number;
}

export const DEFAULT_CODE_PAGE_MS = 6000;
export const DEFAULT_QR_PAGE_MS = 4000;
export const DEFAULT_TEXT_PAGE_MS = 4000;

/** Columns left blank at the sides of small text: glass has no bezel margin of its own. */
const MARGIN = 2;
/** Rows of the bottom line (note or "Expires in", and the countdown). */
function bottomY(g: OledGeometry): number {
  return g.height - font6x10.height;
}
/** Left (or, in portrait, top) part of the QR page: the symbol with its lit quiet zone. */
const QR_BOX = 64;

/** The QR page's text column: right of the box (2 px margins), or under it in portrait. */
function qrColumn(g: OledGeometry): { x: number; y: number; width: number } {
  if (g.height > g.width) return { x: 2, y: QR_BOX, width: g.width - 4 };
  return { x: QR_BOX + 2, y: 0, width: g.width - QR_BOX - 4 };
}

type CodeScreen = Extract<Screen, { kind: "code" | "waiting" }>;

/** Where and how the user code is drawn on a page: the test of "the code is on the glass". */
export interface CodePlacement {
  readonly font: BitmapFont;
  readonly scale: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  /**
   * Drawn twice, one pixel apart horizontally: the fonts' 1-px strokes are 0.17 mm on a 0.96"
   * panel, under an arcminute at 1 m; doubled they are resolved where single ones blur.
   */
  readonly bold: boolean;
}

/** Draws the user code as `placement` says. */
export function drawCode(frame: Bitmap, text: string, placement: CodePlacement): void {
  const { font, scale, x, y, bold } = placement;
  drawText(frame, font, text, x, y, { scale });
  if (bold) drawText(frame, font, text, x + 1, y, { scale });
}

/** Which page of the code screen is up at `now`, the code having appeared at `since` (epoch ms). */
export function codePageAt(
  screen: CodeScreen,
  now: number,
  timing: OledTiming = {},
  since = 0,
): "code" | "qr" {
  const codeMs = timing.codePageMs ?? DEFAULT_CODE_PAGE_MS;
  const qrMs = timing.qrPageMs ?? DEFAULT_QR_PAGE_MS;
  if (qrMs <= 0 || qrLayout(screen.qrPayload) === undefined) return "code";
  return mod(now - since, codeMs + qrMs) < qrMs ? "qr" : "code";
}

/**
 * When each page of `screen` comes up, in ms after the screen appeared: the code screen's QR page
 * then its code page, a long message's pages; [0] for a screen of one page.
 */
export function oledPages(
  screen: Screen,
  timing: OledTiming = {},
  g: OledGeometry = OLED_LANDSCAPE,
): number[] {
  if (screen.kind === "code" || screen.kind === "waiting") {
    const qrMs = timing.qrPageMs ?? DEFAULT_QR_PAGE_MS;
    return qrMs > 0 && qrLayout(screen.qrPayload) !== undefined ? [0, qrMs] : [0];
  }
  const { title, body } = screenWords(screen);
  const pageMs = timing.textPageMs ?? DEFAULT_TEXT_PAGE_MS;
  return Array.from({ length: textLayout(title, body, g).pages }, (_, page) => page * pageMs);
}

/** The frame for `screen` at `now` (epoch ms), the screen having come up at `since`. */
export function oledFrame(
  screen: Screen,
  now: number,
  timing: OledTiming = {},
  since = 0,
  g: OledGeometry = OLED_LANDSCAPE,
): Bitmap {
  const frame = new Bitmap(g.width, g.height);
  if (screen.kind === "code" || screen.kind === "waiting") {
    if (codePageAt(screen, now, timing, since) === "qr") drawQrPage(frame, screen, now, g);
    else drawCodePage(frame, screen, now, g);
    return frame;
  }
  const { title, body } = screenWords(screen);
  const turn = Math.floor((now - since) / (timing.textPageMs ?? DEFAULT_TEXT_PAGE_MS));
  drawTextScreen(frame, title, body, turn, g);
  return frame;
}

/** Where the code page puts the user code: the URL lines above it, the bottom line below. */
export function codePagePlacement(screen: CodeScreen, g: OledGeometry = OLED_LANDSCAPE): CodePlacement {
  const top = urlBlock(screen.verificationUri, g).height;
  const room = bottomY(g) - top - 2;
  const text = pixelFontText(screen.userCode);
  for (const [font, scales] of [
    [font10x20, [3, 2, 1]],
    [font6x10, [1]],
    [font5x7, [1]],
  ] as const) {
    for (const scale of scales) {
      const measured = measureText(font, text, scale);
      // Bold costs one column, and only pays where strokes are one pixel (scale 1).
      const bold = scale === 1 && measured.width + 1 <= g.width;
      const width = measured.width + (bold ? 1 : 0);
      const { height } = measured;
      if (width <= g.width && height <= room) {
        return {
          font,
          scale,
          bold,
          width,
          height,
          x: Math.floor((g.width - width) / 2),
          y: top + Math.floor((room - height) / 2) + 1,
        };
      }
    }
  }
  // Longer than any code a server sends: cut at the right edge rather than shrink below 5x7.
  const { height } = measureText(font5x7, text);
  return { font: font5x7, scale: 1, bold: false, x: 0, y: top + 1, width: g.width, height };
}

/** Where the QR page puts the user code (small, right column); undefined if no font fits. */
export function qrPagePlacement(
  screen: CodeScreen,
  g: OledGeometry = OLED_LANDSCAPE,
): CodePlacement | undefined {
  const text = pixelFontText(screen.userCode);
  const column = qrColumn(g);
  for (const font of [font10x20, font6x10, font5x7]) {
    const { width, height } = measureText(font, text);
    if (width <= column.width) {
      const x = column.x + Math.floor((column.width - width) / 2);
      return { font, scale: 1, bold: false, width, height, x, y: column.y + 30 };
    }
  }
  return undefined;
}

function drawCodePage(frame: Bitmap, screen: CodeScreen, now: number, g: OledGeometry): void {
  const url = urlBlock(screen.verificationUri, g);
  url.lines.forEach((line, i) => {
    const x = Math.floor((g.width - measureText(url.font, line).width) / 2);
    drawText(frame, url.font, line, Math.max(0, x), i * url.font.height);
  });
  drawCode(frame, pixelFontText(screen.userCode), codePagePlacement(screen, g));
  const note =
    screen.kind === "waiting" && screen.note !== undefined ? pixelFontText(screen.note) : "Expires in";
  drawBottomLine(frame, note, remaining(screen.expiresAt, now), MARGIN, g.width - 2 * MARGIN, g);
}

function drawQrPage(frame: Bitmap, screen: CodeScreen, now: number, g: OledGeometry): void {
  const layout = qrLayout(screen.qrPayload);
  if (layout === undefined) return;
  // The whole left square lit: the quiet zone must be light, and outside the glass is dark.
  frame.fillRect(0, 0, QR_BOX, QR_BOX, true);
  drawQr(frame, layout.matrix, layout.offset, layout.offset, {
    moduleSize: layout.moduleSize,
    quietZone: 0,
    invert: true,
  });
  const column = qrColumn(g);
  const center = (text: string, y: number): void => {
    const width = measureText(font6x10, text).width;
    drawText(frame, font6x10, text, column.x + Math.floor((column.width - width) / 2), column.y + y);
  };
  center("Scan, then", 2);
  center("enter code", 12);
  const code = qrPagePlacement(screen, g);
  if (code !== undefined) drawCode(frame, pixelFontText(screen.userCode), code);
  drawBottomLine(frame, "", remaining(screen.expiresAt, now), column.x, column.width, g);
}

/** `left` at the left of the bottom line, `right` (the countdown) right-aligned; `left` cut to fit. */
function drawBottomLine(
  frame: Bitmap,
  left: string,
  right: string,
  x: number,
  width: number,
  g: OledGeometry,
): void {
  const rightWidth = measureText(font6x10, right).width;
  drawText(frame, font6x10, right, x + width - rightWidth, bottomY(g));
  if (left.length > 0) {
    drawText(
      frame,
      font6x10,
      truncateText(font6x10, left, width - rightWidth - font6x10.height / 2),
      x,
      bottomY(g),
    );
  }
}

/** The URL as typed (no "https://") in 6x10 on at most two lines, else 5x7 on at most three. */
function urlBlock(uri: string, g: OledGeometry): { font: BitmapFont; lines: string[]; height: number } {
  const text = pixelFontText(displayUrl(uri));
  const small = wrapText(font6x10, text, g.width);
  // Two lines across the landscape page; the narrow portrait page has room for three.
  const most = g.height > g.width ? 3 : 2;
  if (small.length <= most) return { font: font6x10, lines: small, height: small.length * font6x10.height };
  const tiny = wrapText(font5x7, text, g.width, { maxLines: most + 1 });
  return { font: font5x7, lines: tiny, height: tiny.length * font5x7.height };
}

interface QrLayout {
  readonly matrix: ReturnType<typeof qrMatrix>;
  readonly moduleSize: number;
  /** Pixels from the box's edge to the symbol: the lit quiet zone. */
  readonly offset: number;
}

/**
 * The QR symbol in the 64x64 box: 2 px a module if that leaves at least one module of quiet zone
 * (the Entra URL's 29 modules do), else 1 px a module with up to 4 quiet modules; undefined when
 * even that does not fit (a payload beyond version 10 or so).
 */
function qrLayout(payload: string): QrLayout | undefined {
  const matrix = qrMatrix(payload);
  for (const moduleSize of [2, 1]) {
    const side = matrix.size * moduleSize;
    if (side + 2 * moduleSize <= QR_BOX)
      return { matrix, moduleSize, offset: Math.floor((QR_BOX - side) / 2) };
  }
  return undefined;
}

/** A text screen's title, its font, and its body in lines and pages. */
function textLayout(title: string, body: string, g: OledGeometry) {
  const big = measureText(font10x20, title).width <= g.width - 4;
  const titleFont = big ? font10x20 : font6x10;
  const shown = big ? title : truncateText(font6x10, title, g.width - 2 * MARGIN);
  const rule = titleFont.height + 1;
  const top = rule + 3;
  const perPage = Math.floor((g.height - top) / font6x10.height);
  const lines = wrapText(font6x10, pixelFontText(body), g.width - 2 * MARGIN);
  return {
    titleFont,
    shown,
    rule,
    top,
    perPage,
    lines,
    pages: Math.max(1, Math.ceil(lines.length / perPage)),
  };
}

/** A title over a rule, and page `turn` (modulo the pages there are) of the body. */
function drawTextScreen(frame: Bitmap, title: string, body: string, turn: number, g: OledGeometry): void {
  const { titleFont, shown, rule, top, perPage, lines, pages } = textLayout(title, body, g);
  const titleWidth = measureText(titleFont, shown).width;
  drawText(frame, titleFont, shown, Math.floor((g.width - titleWidth) / 2), 0);
  frame.fillRect(0, rule, g.width, 1, true);
  const page = mod(turn, pages);
  lines.slice(page * perPage, (page + 1) * perPage).forEach((line, i) => {
    drawText(frame, font6x10, line, MARGIN, top + i * font6x10.height);
  });
}

function mod(value: number, modulus: number): number {
  return ((value % modulus) + modulus) % modulus;
}
