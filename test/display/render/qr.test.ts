import jsQR from "jsqr";
import { describe, expect, test } from "vitest";
import { Bitmap } from "../../../display/render/bitmap.ts";
import { drawQr, qrFit, qrMatrix } from "../../../display/render/qr.ts";
import { toRgba } from "./rgba.ts";

const URL = "https://microsoft.com/devicelogin";

/** Decodes the QR code in `bitmap` with jsQR, refusing inverted codes (phones expect dark on light). */
function decode(bitmap: Bitmap, on: "black" | "white", borderColour?: "black" | "white"): string | undefined {
  const image = toRgba(bitmap, { scale: 4, border: 16, on, ...(borderColour ? { borderColour } : {}) });
  return jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" })?.data;
}

describe("qrMatrix", () => {
  test("encodes the URL as a 29-module version 3 symbol at the default level M", () => {
    const matrix = qrMatrix(URL);
    expect(matrix.version).toBe(3);
    expect(matrix.size).toBe(29);
  });

  test("has finder patterns in three corners: dark 7x7 rings around a 3x3 core, light separators", () => {
    const matrix = qrMatrix(URL);
    const last = matrix.size - 1;
    for (const [cx, cy] of [
      [0, 0],
      [last - 6, 0],
      [0, last - 6],
    ] as const) {
      expect(matrix.get(cx, cy)).toBe(true);
      expect(matrix.get(cx + 6, cy + 6)).toBe(true);
      expect(matrix.get(cx + 1, cy + 1)).toBe(false);
      expect(matrix.get(cx + 3, cy + 3)).toBe(true);
    }
    expect(matrix.get(7, 0)).toBe(false);
    expect(matrix.get(-1, 0)).toBe(false);
    expect(matrix.get(matrix.size, 0)).toBe(false);
  });

  test("a higher error-correction level needs a larger symbol for the same text", () => {
    expect(qrMatrix(URL, { errorCorrection: "L" }).size).toBe(29);
    expect(qrMatrix(URL, { errorCorrection: "H" }).size).toBeGreaterThan(29);
  });
});

describe("drawQr", () => {
  test("draws the quiet zone light and the symbol's modules as moduleSize squares, and returns the side", () => {
    const matrix = qrMatrix(URL);
    const bitmap = new Bitmap(80, 80);
    bitmap.clear(true);
    const side = drawQr(bitmap, matrix, 3, 5, { moduleSize: 2, quietZone: 4 });
    expect(side).toBe((29 + 8) * 2);
    for (let y = 0; y < 80; y++) {
      for (let x = 0; x < 80; x++) {
        const mx = Math.floor((x - 3) / 2) - 4;
        const my = Math.floor((y - 5) / 2) - 4;
        const covered = x >= 3 && y >= 5 && x < 3 + side && y < 5 + side;
        const expected = covered ? matrix.get(mx, my) : true;
        if (bitmap.get(x, y) !== expected) expect.fail(`pixel (${x}, ${y}) is ${bitmap.get(x, y)}`);
      }
    }
  });

  test("decodes back to the URL with jsQR, ink on white (e-ink)", () => {
    const bitmap = new Bitmap(37, 37);
    drawQr(bitmap, qrMatrix(URL), 0, 0);
    expect(decode(bitmap, "black")).toBe(URL);
  });

  test("inverted for a glowing OLED, the lit quiet zone and light modules make it dark on light again", () => {
    const bitmap = new Bitmap(37, 37);
    drawQr(bitmap, qrMatrix(URL), 0, 0, { invert: true });
    expect(bitmap.get(0, 0)).toBe(true);
    expect(bitmap.get(4, 4)).toBe(false);
    expect(decode(bitmap, "white")).toBe(URL);
    // Drawn the other way it would be light on dark, which a reader that does not invert refuses.
    const wrong = new Bitmap(37, 37);
    drawQr(wrong, qrMatrix(URL), 0, 0);
    expect(decode(wrong, "white")).toBeUndefined();
  });

  test("refuses a module size or quiet zone that is not a whole number", () => {
    const bitmap = new Bitmap(10, 10);
    expect(() => drawQr(bitmap, qrMatrix("x"), 0, 0, { moduleSize: 0 })).toThrow(RangeError);
    expect(() => drawQr(bitmap, qrMatrix("x"), 0, 0, { quietZone: 1.5 })).toThrow(RangeError);
  });
});

describe("qrFit", () => {
  test("picks the largest module size that fits with a 4-module quiet zone", () => {
    // 29 modules + 8 quiet = 37 per module size.
    expect(qrFit(URL, 122)).toMatchObject({ moduleSize: 3, quietZone: 4, pixels: 111 });
    expect(qrFit(URL, 148)).toMatchObject({ moduleSize: 4, quietZone: 4, pixels: 148 });
    expect(qrFit(URL, 64)).toMatchObject({ moduleSize: 1, quietZone: 4, pixels: 37 });
  });

  test("falls back to a 2-module quiet zone only when that is the only way to a larger module", () => {
    const short = "https://aka.ms/x"; // 25 modules (version 2)
    expect(qrMatrix(short).size).toBe(25);
    // 64 px (a 128x64 OLED): (25 + 8) * 2 = 66 does not fit, (25 + 4) * 2 = 58 does.
    expect(qrFit(short, 64)).toMatchObject({ moduleSize: 2, quietZone: 2, pixels: 58 });
    // 66 px: the standard quiet zone reaches the same module size, so it is kept.
    expect(qrFit(short, 66)).toMatchObject({ moduleSize: 2, quietZone: 4, pixels: 66 });
    // 31 px: only a 2-module quiet zone fits at all.
    expect(qrFit(short, 31)).toMatchObject({ moduleSize: 1, quietZone: 2, pixels: 29 });
  });

  test("says when nothing fits, so the driver shows the URL as text", () => {
    expect(qrFit(URL, 32)).toBeUndefined();
  });

  test("a fitted code on a 128x64 OLED, drawn lit around dark modules, decodes inside the dark bezel", () => {
    const short = "https://aka.ms/x";
    const fit = qrFit(short, 64);
    if (fit === undefined) throw new Error("expected a fit");
    const panel = new Bitmap(128, 64);
    drawQr(panel, fit.matrix, 128 - fit.pixels, (64 - fit.pixels) >> 1, { ...fit, invert: true });
    expect(decode(panel, "white", "black")).toBe(short);
  });
});
