import type { Bitmap } from "./bitmap.ts";
import { encodeRgbPng } from "./png.ts";

export type Rgb = readonly [number, number, number];

/** An 8-bit RGB canvas (3 bytes a pixel, row-major): the HDMI frame, and the drawn previews. */
export class RgbCanvas {
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;

  /** All black unless `background` says otherwise. */
  constructor(width: number, height: number, background?: Rgb) {
    this.width = width;
    this.height = height;
    this.rgb = new Uint8Array(width * height * 3);
    if (background !== undefined) this.fill(0, 0, width, height, background);
  }

  fill(x0: number, y0: number, w: number, h: number, colour: Rgb): void {
    for (let y = Math.max(0, y0); y < Math.min(this.height, y0 + h); y++) {
      for (let x = Math.max(0, x0); x < Math.min(this.width, x0 + w); x++)
        this.rgb.set(colour, (y * this.width + x) * 3);
    }
  }

  disc(cx: number, cy: number, r: number, colour: Rgb): void {
    for (let y = cy - r; y <= cy + r; y++) {
      for (let x = cx - r; x <= cx + r; x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) this.fill(x, y, 1, 1, colour);
      }
    }
  }

  /** Paints `bitmap`'s on pixels in `on` (and its off pixels in `off`, if given) at (x, y). */
  stamp(bitmap: Bitmap, x: number, y: number, on: Rgb, off?: Rgb): void {
    for (let by = 0; by < bitmap.height; by++) {
      const ty = y + by;
      if (ty < 0 || ty >= this.height) continue;
      for (let bx = 0; bx < bitmap.width; bx++) {
        const tx = x + bx;
        if (tx < 0 || tx >= this.width) continue;
        const lit = bitmap.pixels[by * bitmap.width + bx] === 1;
        if (lit) this.rgb.set(on, (ty * this.width + tx) * 3);
        else if (off !== undefined) this.rgb.set(off, (ty * this.width + tx) * 3);
      }
    }
  }

  png(scale: number): Uint8Array {
    return encodeRgbPng(this.width, this.height, this.rgb, { scale });
  }
}
