import { Bitmap } from "../../render/bitmap.ts";
import { type Rgb, RgbCanvas } from "../../render/canvas.ts";
import { drawText, measureText, wrapText } from "../../render/font.ts";
import { font10x20 } from "../../render/fonts/10x20.ts";
import { drawQr, qrFit } from "../../render/qr.ts";
import type { Screen } from "../../screens.ts";
import { displayUrl, remaining } from "../../text.ts";

/**
 * What the framebuffer shows for each screen, as 8-bit RGB (3 bytes a pixel, row-major), for a TV
 * or monitor read from across a room. One font (misc-fixed 10x20) scaled by whole numbers, so the
 * pixels stay sharp; sizes follow the screen height, so 720p and 4K look alike.
 *
 * Code screens, top to bottom, centred: "On a phone or computer, go to", the URL, "and enter this
 * code", the user code (about a quarter of the height: font10x20 at scale H/80), then the QR code
 * (dark modules on white, modules as large as the space allows, the 4-module quiet zone) left of
 * centre and the countdown right of it. Other screens: a coloured headline and a wrapped message,
 * centred; every frame is drawn from a black background, so nothing of a code survives it.
 */

const BLACK: Rgb = [0, 0, 0];
const WHITE: Rgb = [255, 255, 255];
const GREY: Rgb = [170, 170, 170];
const GREEN: Rgb = [64, 220, 96];
const AMBER: Rgb = [255, 184, 0];
const RED: Rgb = [255, 72, 64];

/** A rectangle in pixels. */
export interface Region {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface FramebufferFrame {
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;
  /** Where the user code is drawn on code screens (full width rows), for tests and docs. */
  readonly codeRegion: Region | undefined;
  /** The countdown's rows, the only part a countdown tick changes. */
  readonly countdownRegion: Region | undefined;
  /** The QR code with its quiet zone. */
  readonly qrRegion: Region | undefined;
}

/** One line of text centred horizontally on `canvas` with its top at `y`; returns its region. */
function centred(canvas: RgbCanvas, text: string, y: number, scale: number, colour: Rgb): Region {
  const size = measureText(font10x20, text, scale);
  const bitmap = new Bitmap(size.width, size.height);
  drawText(bitmap, font10x20, text, 0, 0, { scale });
  const x = Math.floor((canvas.width - size.width) / 2);
  canvas.stamp(bitmap, x, y, colour);
  return { x, y, width: size.width, height: size.height };
}

/** The largest whole scale, at most `max`, at which `text` fits `width` pixels (at least 1). */
function fitScale(text: string, width: number, max: number): number {
  const one = measureText(font10x20, text, 1).width;
  return Math.max(1, Math.min(max, Math.floor(width / Math.max(1, one))));
}

interface Metrics {
  readonly margin: number;
  /** Body text scale: 80 px lines at 1080p. */
  readonly body: number;
  /** Label scale, half the body. */
  readonly label: number;
}

function metrics(width: number, height: number): Metrics {
  const body = Math.max(1, Math.floor(height / 270));
  return {
    margin: Math.max(2, Math.round(Math.min(width, height) * 0.04)),
    body,
    label: Math.max(1, Math.floor(body / 2)),
  };
}

/** The frame for `screen` at `now` (epoch ms) on a `width` x `height` display. */
export function framebufferFrame(
  screen: Screen,
  now: number,
  width: number,
  height: number,
): FramebufferFrame {
  // A new canvas is all zeros: black, the background of every frame.
  const canvas = new RgbCanvas(width, height);
  if (screen.kind === "code" || screen.kind === "waiting") {
    return codeFrame(canvas, screen, now);
  }
  const { headline, colour, body } = message(screen);
  const m = metrics(width, height);
  const inner = width - 2 * m.margin;
  const headScale = fitScale(headline, inner, Math.max(1, Math.floor(height / 8 / font10x20.height)));
  const lines = body === "" ? [] : wrapText(font10x20, body, inner, { scale: m.body, maxLines: 5 });
  const lineHeight = font10x20.height * m.body;
  const total = font10x20.height * headScale + (lines.length > 0 ? m.margin + lines.length * lineHeight : 0);
  let y = Math.max(m.margin, Math.floor((height - total) / 2));
  centred(canvas, headline, y, headScale, colour);
  y += font10x20.height * headScale + m.margin;
  for (const line of lines) {
    centred(canvas, line, y, m.body, WHITE);
    y += lineHeight;
  }
  return {
    width,
    height,
    rgb: canvas.rgb,
    codeRegion: undefined,
    countdownRegion: undefined,
    qrRegion: undefined,
  };
}

function codeFrame(
  canvas: RgbCanvas,
  screen: Extract<Screen, { kind: "code" | "waiting" }>,
  now: number,
): FramebufferFrame {
  const { width, height } = canvas;
  const m = metrics(width, height);
  const inner = width - 2 * m.margin;
  const gap = Math.floor(m.margin / 2);
  let y = m.margin;

  centred(canvas, "On a phone or computer, go to", y, m.label, GREY);
  y += font10x20.height * m.label + gap;

  // The URL at body size if it fits, else smaller, else wrapped at URL break points.
  const url = displayUrl(screen.verificationUri);
  const urlScale = fitScale(url, inner, m.body);
  const urlLines = wrapText(font10x20, url, inner, { scale: urlScale, maxLines: 2 });
  for (const line of urlLines) {
    centred(canvas, line, y, urlScale, WHITE);
    y += font10x20.height * urlScale;
  }
  y += gap;

  centred(canvas, "and enter this code", y, m.label, GREY);
  y += font10x20.height * m.label + Math.floor(gap / 2);

  // The code: a quarter of the height where the width allows.
  const codeScale = fitScale(screen.userCode, inner, Math.max(1, Math.floor(height / 4 / font10x20.height)));
  const codeRegion: Region = { x: 0, y, width, height: font10x20.height * codeScale };
  centred(canvas, screen.userCode, y, codeScale, WHITE);
  y += codeRegion.height + gap;

  // Bottom band: QR left of centre, countdown right of it (centred alone if no QR fits).
  const bandHeight = height - m.margin - y;
  const fit =
    bandHeight > 0
      ? qrFit(screen.qrPayload, Math.min(bandHeight, Math.floor(width / 2) - m.margin))
      : undefined;
  let qrRegion: Region | undefined;
  if (fit !== undefined) {
    const qr = new Bitmap(fit.pixels, fit.pixels);
    // Light-emitting panel: "on" is white, so invert to get dark modules on a white quiet zone.
    drawQr(qr, fit.matrix, 0, 0, { moduleSize: fit.moduleSize, quietZone: fit.quietZone, invert: true });
    qrRegion = { x: Math.floor(width / 2) - gap - fit.pixels, y, width: fit.pixels, height: fit.pixels };
    canvas.stamp(qr, qrRegion.x, qrRegion.y, WHITE, BLACK);
  }

  const left = fit === undefined ? 0 : Math.floor(width / 2) + gap;
  const columnWidth = width - left - m.margin;
  const clock = remaining(screen.expiresAt, now);
  const clockScale = fitScale("0:00:00", columnWidth, 2 * m.body);
  const note = screen.kind === "waiting" ? screen.note : undefined;
  const blockHeight =
    font10x20.height * (m.label + clockScale) + (note === undefined ? 0 : font10x20.height * m.label);
  let cy = y + Math.max(0, Math.floor((Math.max(bandHeight, blockHeight) - blockHeight) / 2));
  const column = (text: string, scale: number, colour: Rgb): void => {
    const size = measureText(font10x20, text, scale);
    const bitmap = new Bitmap(size.width, size.height);
    drawText(bitmap, font10x20, text, 0, 0, { scale });
    const x = fit === undefined ? Math.floor((width - size.width) / 2) : left;
    canvas.stamp(bitmap, x, cy, colour);
    cy += size.height;
  };
  column("Code expires in", m.label, GREY);
  const countdownRegion: Region = { x: 0, y: cy, width, height: font10x20.height * clockScale };
  column(clock, clockScale, WHITE);
  if (note !== undefined) column(note, m.label, AMBER);

  return { width, height, rgb: canvas.rgb, codeRegion, countdownRegion, qrRegion };
}

function message(screen: Exclude<Screen, { kind: "code" | "waiting" }>): {
  headline: string;
  colour: Rgb;
  body: string;
} {
  switch (screen.kind) {
    case "starting":
      return { headline: "Starting…", colour: WHITE, body: "" };
    case "waiting-for-time":
      return {
        headline: "Waiting for network time",
        colour: AMBER,
        body: "Sign-in starts once the clock is set.",
      };
    case "waiting-for-lock":
      return { headline: "Please wait", colour: AMBER, body: "Another sign-in of this device is under way." };
    case "signed-in":
      return { headline: "Signed in", colour: GREEN, body: screen.username };
    case "wrong-account":
      return {
        headline: "Wrong account",
        colour: RED,
        body: `Signed in as ${screen.username}, but this device expects ${screen.expected}. A new code follows.`,
      };
    case "sign-in-needed":
      return { headline: "Sign-in needed", colour: AMBER, body: screen.reason };
    case "blocked":
      return { headline: "Blocked by policy", colour: RED, body: screen.message };
    case "offline":
      return { headline: "Offline", colour: AMBER, body: screen.message };
    case "expired":
      return { headline: "Code expired", colour: AMBER, body: "That code no longer works." };
    case "cancelled":
      return { headline: "Sign-in cancelled", colour: GREY, body: "" };
    case "error":
      return { headline: `Error ${screen.code}`, colour: RED, body: screen.message };
  }
}
