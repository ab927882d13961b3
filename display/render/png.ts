import { deflateSync } from "node:zlib";
import type { Bitmap } from "./bitmap.ts";

/**
 * A minimal PNG encoder (PNG spec, W3C 2003 / ISO 15948) for display previews and golden images:
 * signature, IHDR, one IDAT (zlib via node:zlib), IEND; no interlace; filter type 0 (None) on
 * every row, since 1-bit screens compress well without filtering and the code stays obvious.
 * Compressed bytes depend on the zlib build, so compare decoded pixels, not files.
 */

/** CRC-32 (ISO 3309, reflected polynomial 0xEDB88320), as PNG chunks use; frozen, built once. */
const CRC_TABLE: readonly number[] = Object.freeze(
  Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  }),
);

/** The CRC-32 of `bytes` (unsigned). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (CRC_TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** A chunk: length (big-endian, data only), type, data, CRC over type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const GRAYSCALE = 0;
const TRUECOLOR = 2;

/** Assembles a PNG from rows already packed for `bitDepth` and `colorType`. */
function encode(
  width: number,
  height: number,
  bitDepth: number,
  colorType: number,
  rows: Uint8Array[],
): Uint8Array {
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = bitDepth;
  header[9] = colorType;
  // Bytes 10-12 stay 0: compression method deflate, filter method 0, no interlace.
  const stride = rows[0]?.length ?? 0;
  const raw = new Uint8Array(height * (1 + stride));
  rows.forEach((row, y) => {
    raw[y * (1 + stride)] = 0; // filter type None
    raw.set(row, y * (1 + stride) + 1);
  });
  const parts = [
    SIGNATURE,
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function checkSize(width: number, height: number, scale: number): void {
  if (!Number.isInteger(scale) || scale < 1)
    throw new RangeError(`PNG scale must be a whole number ≥ 1, got ${scale}`);
  // PNG has no empty images, and its dimensions are 31-bit.
  if (width < 1 || height < 1 || width * scale > 0x7fffffff || height * scale > 0x7fffffff) {
    throw new RangeError(`cannot encode a ${width}x${height} image at scale ${scale} as PNG`);
  }
}

export interface BitmapPngOptions {
  /** Each bitmap pixel becomes `scale` x `scale` image pixels; whole number, default 1. */
  readonly scale?: number;
  /**
   * The colour of an on pixel; default "black" (ink, as on e-ink and paper). "white" shows an
   * OLED as it glows.
   */
  readonly on?: "black" | "white";
}

/** A 1-bit grayscale PNG of `bitmap`. */
export function encodeBitmapPng(bitmap: Bitmap, options: BitmapPngOptions = {}): Uint8Array {
  const scale = options.scale ?? 1;
  checkSize(bitmap.width, bitmap.height, scale);
  // PNG grayscale: 1 = white. Leftmost pixel in the most significant bit; padding bits 0.
  const onBit = options.on === "white" ? 1 : 0;
  const width = bitmap.width * scale;
  const rows: Uint8Array[] = [];
  for (let y = 0; y < bitmap.height; y++) {
    const row = new Uint8Array(Math.ceil(width / 8));
    for (let x = 0; x < width; x++) {
      const bit = bitmap.get(Math.floor(x / scale), y) ? onBit : 1 - onBit;
      if (bit === 1) row[x >> 3] = (row[x >> 3] ?? 0) | (0x80 >> (x & 7));
    }
    for (let i = 0; i < scale; i++) rows.push(row);
  }
  return encode(width, bitmap.height * scale, 1, GRAYSCALE, rows);
}

/**
 * An 8-bit RGB PNG from `rgb`: `width * height` pixels of 3 bytes (red, green, blue), row-major,
 * as an LCD or LED preview paints them. `scale` as for `encodeBitmapPng`.
 */
export function encodeRgbPng(
  width: number,
  height: number,
  rgb: Uint8Array,
  options: { readonly scale?: number } = {},
): Uint8Array {
  const scale = options.scale ?? 1;
  checkSize(width, height, scale);
  if (rgb.length !== width * height * 3) {
    throw new RangeError(`${width}x${height} RGB needs ${width * height * 3} bytes, got ${rgb.length}`);
  }
  const rows: Uint8Array[] = [];
  for (let y = 0; y < height; y++) {
    const source = rgb.subarray(y * width * 3, (y + 1) * width * 3);
    const row = new Uint8Array(width * scale * 3);
    for (let x = 0; x < width * scale; x++) {
      row.set(source.subarray(Math.floor(x / scale) * 3, Math.floor(x / scale) * 3 + 3), x * 3);
    }
    for (let i = 0; i < scale; i++) rows.push(row);
  }
  return encode(width * scale, height * scale, 8, TRUECOLOR, rows);
}
