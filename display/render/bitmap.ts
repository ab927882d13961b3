/**
 * A 1-bit image: what every pixel display (SSD1306 OLED, SSD1680 e-ink, framebuffer) draws into
 * before its driver converts it to the panel's own memory layout.
 *
 * "On" is a logical pixel: the ink of text and the dark modules of a QR code. What it looks like is
 * the driver's business: lit on an OLED, black on e-ink (whose RAM stores 1 = white, so the
 * SSD1680 driver asks `toRowBytes` for `onValue: 0`).
 *
 * Storage is one byte per pixel (0 or 1), row-major, `y * width + x`. Packing would save 7/8 of
 * the memory, but the largest bitmap we draw is a 1920x1080 framebuffer (2 MB), and byte storage
 * keeps get/set/blit simple; packing happens once, in `toPageBytes`/`toRowBytes`, in the order the
 * panel wants.
 *
 * Coordinates are pixels, (0, 0) at the top left. Drawing outside the bitmap is clipped silently,
 * so callers can place text and codes near the edges without bounds checks; reading outside it
 * returns off.
 */
export class Bitmap {
  readonly width: number;
  readonly height: number;
  /** 0 or 1 per pixel, row-major. Exposed read-only for fast converters (framebuffer, PNG). */
  readonly pixels: Uint8Array;

  /** A bitmap of `width` x `height` pixels, all off; or over `pixels` (copied), one byte a pixel. */
  constructor(width: number, height: number, pixels?: Uint8Array) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
      throw new RangeError(`bitmap size must be whole non-negative pixels, got ${width}x${height}`);
    }
    this.width = width;
    this.height = height;
    if (pixels === undefined) {
      this.pixels = new Uint8Array(width * height);
    } else {
      if (pixels.length !== width * height) {
        throw new RangeError(
          `${width}x${height} bitmap needs ${width * height} pixels, got ${pixels.length}`,
        );
      }
      this.pixels = pixels.map((p) => (p === 0 ? 0 : 1));
    }
  }

  /**
   * A bitmap from text rows, `#` on and anything else off (`.` by convention): how tests and
   * fonts write pixels so that a reader sees the shape. Rows must have equal lengths.
   */
  static fromRows(rows: readonly string[]): Bitmap {
    const width = rows[0]?.length ?? 0;
    const bitmap = new Bitmap(width, rows.length);
    rows.forEach((row, y) => {
      if (row.length !== width) throw new RangeError(`row ${y} has ${row.length} pixels, expected ${width}`);
      for (let x = 0; x < width; x++) if (row[x] === "#") bitmap.set(x, y, true);
    });
    return bitmap;
  }

  /** The inverse of `fromRows`: `#` on, `.` off. For test failures a person can read. */
  toRows(): string[] {
    const rows: string[] = [];
    for (let y = 0; y < this.height; y++) {
      let row = "";
      for (let x = 0; x < this.width; x++) row += this.get(x, y) ? "#" : ".";
      rows.push(row);
    }
    return rows;
  }

  /** Whether (x, y) is on; off outside the bitmap. */
  get(x: number, y: number): boolean {
    if (!this.inside(x, y)) return false;
    return this.pixels[y * this.width + x] === 1;
  }

  /** Sets (x, y); ignored outside the bitmap (clipping). */
  set(x: number, y: number, on: boolean): void {
    if (!this.inside(x, y)) return;
    this.pixels[y * this.width + x] = on ? 1 : 0;
  }

  /** Fills the rectangle at (x, y), `w` x `h` pixels, clipped to the bitmap. `on` defaults to true. */
  fillRect(x: number, y: number, w: number, h: number, on = true): void {
    const x0 = Math.max(0, Math.trunc(x));
    const y0 = Math.max(0, Math.trunc(y));
    const x1 = Math.min(this.width, Math.trunc(x + w));
    const y1 = Math.min(this.height, Math.trunc(y + h));
    if (x1 <= x0) return;
    const value = on ? 1 : 0;
    for (let row = y0; row < y1; row++) {
      this.pixels.fill(value, row * this.width + x0, row * this.width + x1);
    }
  }

  /** Sets every pixel to `on` (default off: a blank screen). */
  clear(on = false): void {
    this.pixels.fill(on ? 1 : 0);
  }

  /**
   * Draws `source` with its top left at (x, y), clipped. `mode` (default "copy") says how:
   * "copy" replaces every covered pixel, "or" only turns pixels on (a transparent background),
   * "xor" flips where the source is on.
   */
  blit(source: Bitmap, x: number, y: number, mode: "copy" | "or" | "xor" = "copy"): void {
    for (let sy = 0; sy < source.height; sy++) {
      const ty = y + sy;
      if (ty < 0 || ty >= this.height) continue;
      for (let sx = 0; sx < source.width; sx++) {
        const tx = x + sx;
        if (tx < 0 || tx >= this.width) continue;
        const on = source.pixels[sy * source.width + sx] === 1;
        const index = ty * this.width + tx;
        if (mode === "copy") this.pixels[index] = on ? 1 : 0;
        else if (on) this.pixels[index] = mode === "or" ? 1 : (this.pixels[index] ?? 0) ^ 1;
      }
    }
  }

  /** Flips every pixel, in place. */
  invert(): void {
    for (let i = 0; i < this.pixels.length; i++) this.pixels[i] = (this.pixels[i] ?? 0) ^ 1;
  }

  /**
   * A new bitmap turned clockwise by `degrees` (90 and 270 swap width and height): how a driver
   * mounts a landscape drawing on a panel whose RAM is portrait (the 2.13" SSD1680 is 122 px wide
   * and 250 rows tall in RAM), or honours a `rotation` setting.
   */
  rotate(degrees: 90 | 180 | 270): Bitmap {
    const { width: w, height: h } = this;
    const turned = degrees === 180 ? new Bitmap(w, h) : new Bitmap(h, w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!this.get(x, y)) continue;
        if (degrees === 90) turned.set(h - 1 - y, x, true);
        else if (degrees === 180) turned.set(w - 1 - x, h - 1 - y, true);
        else turned.set(y, w - 1 - x, true);
      }
    }
    return turned;
  }

  /** Same size and same pixels. */
  equals(other: Bitmap): boolean {
    if (other.width !== this.width || other.height !== this.height) return false;
    for (let i = 0; i < this.pixels.length; i++) if (this.pixels[i] !== other.pixels[i]) return false;
    return true;
  }

  clone(): Bitmap {
    return new Bitmap(this.width, this.height, this.pixels);
  }

  /**
   * SSD1306 GDDRAM order (horizontal addressing): pages of 8 rows from the top; within a page one
   * byte per column, left to right; bit 0 (LSB) is the page's top row. A 128x64 bitmap gives
   * 8 pages x 128 = 1024 bytes. A height that is not a multiple of 8 pads the last page with off.
   * On = 1 (a lit pixel on the OLED).
   */
  toPageBytes(): Uint8Array {
    const pages = Math.ceil(this.height / 8);
    const bytes = new Uint8Array(pages * this.width);
    for (let page = 0; page < pages; page++) {
      for (let x = 0; x < this.width; x++) {
        let byte = 0;
        for (let bit = 0; bit < 8; bit++) if (this.get(x, page * 8 + bit)) byte |= 1 << bit;
        bytes[page * this.width + x] = byte;
      }
    }
    return bytes;
  }

  /** The inverse of `toPageBytes`, for the SSD1306 simulator: GDDRAM bytes back to pixels. */
  static fromPageBytes(width: number, height: number, bytes: Uint8Array): Bitmap {
    const expected = Math.ceil(height / 8) * width;
    if (bytes.length !== expected) {
      throw new RangeError(`${width}x${height} in pages needs ${expected} bytes, got ${bytes.length}`);
    }
    const bitmap = new Bitmap(width, height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const byte = bytes[(y >> 3) * width + x] ?? 0;
        if ((byte >> (y & 7)) & 1) bitmap.set(x, y, true);
      }
    }
    return bitmap;
  }

  /**
   * Row-major bytes, as SSD1680 RAM takes them: each row `ceil(width / 8)` bytes, rows top to
   * bottom. `msbFirst` (default true; the SSD1680's order) puts the leftmost pixel in bit 7.
   * `onValue` (default 1) is the bit an on pixel gets: pass 0 for the SSD1680, whose RAM stores
   * 1 = white, so that on (ink) is black. Padding bits past the right edge get the off value, so
   * they read as blank.
   */
  toRowBytes(options: { readonly msbFirst?: boolean; readonly onValue?: 0 | 1 } = {}): Uint8Array {
    const msbFirst = options.msbFirst ?? true;
    const onValue = options.onValue ?? 1;
    const stride = Math.ceil(this.width / 8);
    const bytes = new Uint8Array(stride * this.height);
    for (let y = 0; y < this.height; y++) {
      for (let column = 0; column < stride; column++) {
        let byte = 0;
        for (let bit = 0; bit < 8; bit++) {
          const x = column * 8 + bit;
          const on = x < this.width && this.get(x, y);
          const value = on ? onValue : 1 - onValue;
          if (value === 1) byte |= msbFirst ? 0x80 >> bit : 1 << bit;
        }
        bytes[y * stride + column] = byte;
      }
    }
    return bytes;
  }

  /** The inverse of `toRowBytes` (same options), for the SSD1680 simulator. */
  static fromRowBytes(
    width: number,
    height: number,
    bytes: Uint8Array,
    options: { readonly msbFirst?: boolean; readonly onValue?: 0 | 1 } = {},
  ): Bitmap {
    const msbFirst = options.msbFirst ?? true;
    const onValue = options.onValue ?? 1;
    const stride = Math.ceil(width / 8);
    if (bytes.length !== stride * height) {
      throw new RangeError(`${width}x${height} in rows needs ${stride * height} bytes, got ${bytes.length}`);
    }
    const bitmap = new Bitmap(width, height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const byte = bytes[y * stride + (x >> 3)] ?? 0;
        const bit = msbFirst ? (byte >> (7 - (x & 7))) & 1 : (byte >> (x & 7)) & 1;
        if (bit === onValue) bitmap.set(x, y, true);
      }
    }
    return bitmap;
  }

  private inside(x: number, y: number): boolean {
    return (
      Number.isInteger(x) && Number.isInteger(y) && x >= 0 && y >= 0 && x < this.width && y < this.height
    );
  }
}
