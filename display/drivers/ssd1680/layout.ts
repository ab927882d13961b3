import { Bitmap } from "../../render/bitmap.ts";
import { drawText, measureText, truncateText, wrapText } from "../../render/font.ts";
import { font6x10 } from "../../render/fonts/6x10.ts";
import { font10x20 } from "../../render/fonts/10x20.ts";
import { drawQr, qrFit } from "../../render/qr.ts";
import type { Screen } from "../../screens.ts";
import { displayUrl, pixelFontText, screenWords } from "../../text.ts";

/**
 * What a 250x122 e-ink panel (SSD1680, landscape) shows for each screen, as a Bitmap (on = ink).
 * Pure, so that the driver, previews and tests share it.
 *
 * Unlike the OLED, nothing here pages or moves with time except the countdown, and that only in
 * whole minutes: every change costs a visible refresh of about half a second to two seconds, so
 * the picture must stay still between the few moments it really changes.
 *
 * Code screen: the QR code of `qrPayload` on the right, at the largest whole module size that
 * keeps the standard 4-module quiet zone inside the 122 rows (the Entra URL is 29 modules: 3 px a
 * module, 111 px square). On the left: "Sign in at", the URL as typed (no https://), "and enter",
 * the code in 10x20 (twice the size when it fits, else drawn bold), and at the bottom the note of
 * the waiting screen and "Expires in N min".
 *
 * Other screens: a title in 10x20 (doubled when it fits) over a rule, and the body wrapped in 6x10,
 * cut with an ellipsis where it runs out of room (no paging: a page turn would be a refresh).
 *
 * Turned a quarter (`rotate` 90 or 270) the page is 122 wide and 250 tall: the QR code then sits
 * at the top, as wide as the page allows, and the text column runs under it.
 */

export const EINK_WIDTH = 250;
export const EINK_HEIGHT = 122;
const MARGIN = 3;

/** The page's size: the panel's landscape 250x122, or 122x250 when it is turned a quarter. */
export interface EinkGeometry {
  readonly width: number;
  readonly height: number;
}

export const EINK_LANDSCAPE: EinkGeometry = { width: EINK_WIDTH, height: EINK_HEIGHT };
export const EINK_PORTRAIT: EinkGeometry = { width: EINK_HEIGHT, height: EINK_WIDTH };

function bottomY(g: EinkGeometry): number {
  return g.height - font6x10.height - 2;
}

function portrait(g: EinkGeometry): boolean {
  return g.height > g.width;
}

type CodeScreen = Extract<Screen, { kind: "code" | "waiting" }>;

export interface EinkCodePlacement {
  readonly x: number;
  readonly y: number;
  readonly scale: number;
  readonly bold: boolean;
}

export interface EinkQrPlacement {
  /** Top left of the quiet zone. */
  readonly x: number;
  readonly y: number;
  /** Side in pixels, quiet zone included. */
  readonly side: number;
  readonly moduleSize: number;
}

/** The QR code's fit: the page's height in landscape (it sits at the right), its width in portrait (at the top). */
function einkQrFit(payload: string, g: EinkGeometry) {
  return qrFit(payload, Math.min(g.width, g.height));
}

/** Where the QR code goes on the code screen, or undefined when it cannot fit (text only). */
export function einkQrPlacement(
  payload: string,
  g: EinkGeometry = EINK_LANDSCAPE,
): EinkQrPlacement | undefined {
  const fit = einkQrFit(payload, g);
  // A QR code below 2 px a module (0.2 mm a pixel) is too fine for phone cameras; leave the room to text.
  if (fit === undefined || fit.moduleSize < 2) return undefined;
  if (portrait(g)) {
    return { x: Math.floor((g.width - fit.pixels) / 2), y: 0, side: fit.pixels, moduleSize: fit.moduleSize };
  }
  return {
    x: g.width - fit.pixels,
    y: Math.floor((g.height - fit.pixels) / 2),
    side: fit.pixels,
    moduleSize: fit.moduleSize,
  };
}

/** "Expires in 15 min": minutes left rounded up, so the text changes once a minute, never faster. */
export function einkCountdown(expiresAt: number, now: number): string {
  const minutes = Math.ceil(Math.max(0, expiresAt - now) / 60_000);
  return minutes > 0 ? `Expires in ${minutes} min` : "Expired";
}

/** The frame for `screen` at `now` (epoch ms), on a page of `g` (landscape unless told). */
export function einkFrame(screen: Screen, now: number, g: EinkGeometry = EINK_LANDSCAPE): Bitmap {
  const frame = new Bitmap(g.width, g.height);
  if (screen.kind === "code" || screen.kind === "waiting") drawCodeScreen(frame, screen, now, g);
  else drawTextScreen(frame, screenWords(screen), g);
  return frame;
}

/** The text column on the code screen: left of the QR code in landscape, under it in portrait. */
function textColumn(screen: CodeScreen, g: EinkGeometry): { x: number; y: number; width: number } {
  const qr = einkQrPlacement(screen.qrPayload, g);
  if (portrait(g)) {
    return { x: MARGIN, y: qr === undefined ? MARGIN : qr.side, width: g.width - 2 * MARGIN };
  }
  return { x: MARGIN, y: MARGIN, width: (qr === undefined ? g.width : qr.x) - MARGIN };
}

/** The top lines of the code screen: "Sign in at", the URL (up to 3 lines), "and enter". */
function codeHeader(screen: CodeScreen, width: number): string[] {
  const url = wrapText(font6x10, pixelFontText(displayUrl(screen.verificationUri)), width, { maxLines: 3 });
  return ["Sign in at", ...url, "and enter"];
}

/** Where the user code is drawn: the test of "the code is on the glass". */
export function einkCodePlacement(screen: CodeScreen, g: EinkGeometry = EINK_LANDSCAPE): EinkCodePlacement {
  const { x, y, width } = textColumn(screen, g);
  const top = codeHeader(screen, width).length * font6x10.height + y;
  const text = pixelFontText(screen.userCode);
  const scale = measureText(font10x20, text, 2).width <= width ? 2 : 1;
  const measured = measureText(font10x20, text, scale);
  // At scale 1 the strokes are one pixel (0.19 mm): doubled they stay readable from a metre.
  const bold = scale === 1 && measured.width + 1 <= width;
  const room = bottomY(g) - top;
  return {
    x: x + Math.max(0, Math.floor((width - measured.width - (bold ? 1 : 0)) / 2)),
    y: top + Math.max(0, Math.floor((room - measured.height) / 2)),
    scale,
    bold,
  };
}

function drawCodeScreen(frame: Bitmap, screen: CodeScreen, now: number, g: EinkGeometry): void {
  const qr = einkQrPlacement(screen.qrPayload, g);
  if (qr !== undefined) {
    const fit = einkQrFit(screen.qrPayload, g);
    if (fit !== undefined)
      drawQr(frame, fit.matrix, qr.x, qr.y, { moduleSize: fit.moduleSize, quietZone: fit.quietZone });
  }
  const { x, y, width } = textColumn(screen, g);
  codeHeader(screen, width).forEach((line, i) => {
    drawText(frame, font6x10, line, x, y + i * font6x10.height);
  });
  const code = einkCodePlacement(screen, g);
  const text = pixelFontText(screen.userCode);
  drawText(frame, font10x20, text, code.x, code.y, { scale: code.scale });
  if (code.bold) drawText(frame, font10x20, text, code.x + 1, code.y, { scale: code.scale });
  const countdown = einkCountdown(screen.expiresAt, now);
  const bottom =
    screen.kind === "waiting" && screen.note !== undefined
      ? `${pixelFontText(screen.note)}; ${countdown}`
      : countdown;
  drawText(frame, font6x10, truncateText(font6x10, bottom, width), x, bottomY(g));
}

function drawTextScreen(
  frame: Bitmap,
  { title, body }: { title: string; body: string },
  g: EinkGeometry,
): void {
  const inner = g.width - 2 * MARGIN;
  const scale = measureText(font10x20, title, 2).width <= inner ? 2 : 1;
  const shown = truncateText(font10x20, title, inner, { scale });
  const titleWidth = measureText(font10x20, shown, scale).width;
  drawText(frame, font10x20, shown, Math.floor((g.width - titleWidth) / 2), MARGIN, { scale });
  const rule = MARGIN + font10x20.height * scale + 2;
  frame.fillRect(MARGIN, rule, inner, 1, true);
  const top = rule + 4;
  const maxLines = Math.max(1, Math.floor((g.height - top) / font6x10.height));
  wrapText(font6x10, pixelFontText(body), inner, { maxLines }).forEach((line, i) => {
    drawText(frame, font6x10, line, MARGIN, top + i * font6x10.height);
  });
}
