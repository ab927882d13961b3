import QRCode from "qrcode";
import type { Bitmap } from "./bitmap.ts";

/**
 * QR codes for the pixel displays, encoded by the `qrcode` package and drawn into a Bitmap.
 * Sizes are in modules (QR cells) unless named pixels.
 */

/** L 7 %, M 15 %, Q 25 %, H 30 % of the code may be damaged and still read. */
export type ErrorCorrection = "L" | "M" | "Q" | "H";

/** The modules of one QR symbol, without a quiet zone. */
export interface QrMatrix {
  /** Modules per side (21 for version 1, + 4 per version). */
  readonly size: number;
  /** 1 to 40. */
  readonly version: number;
  /** Whether the module at column x, row y is dark; false outside the symbol. */
  get(x: number, y: number): boolean;
}

/**
 * The QR symbol for `text`. `errorCorrection` defaults to M (the `qrcode` package's own default):
 * a screen does not get dirty like a label does, but glare and blurred pixels cost some modules.
 */
export function qrMatrix(
  text: string,
  options: { readonly errorCorrection?: ErrorCorrection } = {},
): QrMatrix {
  const code = QRCode.create(text, { errorCorrectionLevel: options.errorCorrection ?? "M" });
  const { size } = code.modules;
  // Copied so the matrix is ours and immutable; BitMatrix.get takes (row, column).
  const dark = Uint8Array.from({ length: size * size }, (_, i) =>
    code.modules.get(Math.floor(i / size), i % size) ? 1 : 0,
  );
  return Object.freeze({
    size,
    version: code.version,
    get(x: number, y: number): boolean {
      if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= size || y >= size)
        return false;
      return dark[y * size + x] === 1;
    },
  });
}

export interface DrawQrOptions {
  /** Pixels per module side; default 1. */
  readonly moduleSize?: number;
  /** Light modules drawn around the symbol; default 4, the minimum ISO/IEC 18004 asks for. */
  readonly quietZone?: number;
  /**
   * Default false: dark modules are drawn on (ink on e-ink and paper previews) and the quiet zone
   * off. True: dark modules off, light modules and quiet zone on, for light-emitting panels
   * (OLED, framebuffer) where "on" is bright, so that the code is still dark on light as phone
   * cameras expect.
   */
  readonly invert?: boolean;
}

/**
 * Draws `matrix` with the top left of its quiet zone at (x, y), in pixels, clipped to the bitmap.
 * Every covered pixel is written, quiet zone included. Returns the side drawn in pixels:
 * `(size + 2 * quietZone) * moduleSize`.
 */
export function drawQr(
  bitmap: Bitmap,
  matrix: QrMatrix,
  x: number,
  y: number,
  options: DrawQrOptions = {},
): number {
  const moduleSize = options.moduleSize ?? 1;
  const quietZone = options.quietZone ?? 4;
  const invert = options.invert ?? false;
  if (!Number.isInteger(moduleSize) || moduleSize < 1)
    throw new RangeError(`module size must be ≥ 1, got ${moduleSize}`);
  if (!Number.isInteger(quietZone) || quietZone < 0)
    throw new RangeError(`quiet zone must be ≥ 0, got ${quietZone}`);
  const side = (matrix.size + 2 * quietZone) * moduleSize;
  bitmap.fillRect(x, y, side, side, invert);
  for (let my = 0; my < matrix.size; my++) {
    for (let mx = 0; mx < matrix.size; mx++) {
      if (!matrix.get(mx, my)) continue;
      const px = x + (quietZone + mx) * moduleSize;
      const py = y + (quietZone + my) * moduleSize;
      bitmap.fillRect(px, py, moduleSize, moduleSize, !invert);
    }
  }
  return side;
}

/** A QR code placed to fit a square: pass `moduleSize` and `quietZone` to `drawQr`. */
export interface QrFit {
  readonly matrix: QrMatrix;
  readonly moduleSize: number;
  readonly quietZone: number;
  /** Side in pixels, quiet zone included; at most the `maxPixels` asked for. */
  readonly pixels: number;
}

/**
 * The largest whole module size at which `text`'s code, with a 4-module quiet zone, fits in a
 * square of `maxPixels` (the smaller side of the space available). Undefined if it does not fit
 * even at 1 pixel per module: show the URL as text instead.
 *
 * Fallback to a 2-module quiet zone, only when that is the only way to reach a larger module size
 * (or to fit at all). It exists for 128x64 OLEDs: a 25-module code (version 2) at 2 px per module
 * needs 66 px with 4 quiet modules but 58 px with 2, and 1-px modules (0.17 mm on a 0.96" panel)
 * are too small for most phone cameras, while 2 quiet modules are enough for common readers.
 */
export function qrFit(
  text: string,
  maxPixels: number,
  options: { readonly errorCorrection?: ErrorCorrection } = {},
): QrFit | undefined {
  const matrix = qrMatrix(text, options);
  const moduleSizeWith = (quietZone: number): number => Math.floor(maxPixels / (matrix.size + 2 * quietZone));
  const standard = moduleSizeWith(4);
  const narrow = moduleSizeWith(2);
  const quietZone = narrow > standard ? 2 : 4;
  const moduleSize = Math.max(standard, narrow);
  if (moduleSize < 1) return undefined;
  return { matrix, moduleSize, quietZone, pixels: (matrix.size + 2 * quietZone) * moduleSize };
}
