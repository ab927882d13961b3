import { inflateSync } from "node:zlib";
import { PNG } from "pngjs";
import { describe, expect, test } from "vitest";
import { Bitmap } from "../../../display/render/bitmap.ts";
import { crc32, encodeBitmapPng, encodeRgbPng } from "../../../display/render/png.ts";

interface Chunk {
  type: string;
  data: Uint8Array;
  crc: number;
}

/** Splits a PNG into its chunks after checking the signature. */
function chunks(png: Uint8Array): Chunk[] {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const found: Chunk[] = [];
  for (let offset = 8; offset < png.length; ) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...png.subarray(offset + 4, offset + 8));
    const data = png.subarray(offset + 8, offset + 8 + length);
    found.push({ type, data, crc: view.getUint32(offset + 8 + length) });
    offset += 12 + length;
  }
  return found;
}

/** RGBA of pixel (x, y) as pngjs decodes it. */
function pixel(image: PNG, x: number, y: number): number[] {
  const at = (y * image.width + x) * 4;
  return [...image.data.subarray(at, at + 4)];
}

const BLACK = [0, 0, 0, 255];
const WHITE = [255, 255, 255, 255];

describe("crc32", () => {
  test("matches the standard check value and PNG's IEND chunk", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new TextEncoder().encode("IEND"))).toBe(0xae426082);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe("encodeBitmapPng", () => {
  // 13 wide: not a multiple of 8, so each row ends in padding bits.
  const bitmap = Bitmap.fromRows(["#...........#", ".#.#.#.#.#.#.", "............."]);

  test("is signature, IHDR, IDAT, IEND with correct lengths and CRCs", () => {
    const png = encodeBitmapPng(bitmap);
    const list = chunks(png);
    expect(list.map((c) => c.type)).toEqual(["IHDR", "IDAT", "IEND"]);
    for (const c of list) {
      const typed = new Uint8Array(4 + c.data.length);
      typed.set(new TextEncoder().encode(c.type));
      typed.set(c.data, 4);
      expect(c.crc, c.type).toBe(crc32(typed));
    }
    expect([...(list[0]?.data ?? [])]).toEqual([0, 0, 0, 13, 0, 0, 0, 3, 1, 0, 0, 0, 0]);
    expect(list[2]?.data.length).toBe(0);
  });

  test("rows start with filter byte 0 and pack 1 = white, MSB leftmost", () => {
    const idat = chunks(encodeBitmapPng(bitmap)).find((c) => c.type === "IDAT");
    const raw = [...inflateSync(idat?.data ?? new Uint8Array(0))];
    // On is black (0): row 0 is 0 then eleven 1s then 0; two bytes a row, padding bits 0.
    expect(raw).toEqual([0, 0b0111_1111, 0b1111_0000, 0, 0b1010_1010, 0b1010_1000, 0, 0xff, 0b1111_1000]);
  });

  test("round-trips through pngjs: size, 1-bit grayscale, on black and off white", () => {
    const image = PNG.sync.read(Buffer.from(encodeBitmapPng(bitmap)));
    expect([image.width, image.height, image.depth, image.colorType]).toEqual([13, 3, 1, 0]);
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 13; x++)
        expect(pixel(image, x, y), `(${x}, ${y})`).toEqual(bitmap.get(x, y) ? BLACK : WHITE);
    }
  });

  test("on: white draws an OLED as it glows", () => {
    const image = PNG.sync.read(Buffer.from(encodeBitmapPng(bitmap, { on: "white" })));
    expect(pixel(image, 0, 0)).toEqual(WHITE);
    expect(pixel(image, 1, 0)).toEqual(BLACK);
  });

  test("scale turns each pixel into a square", () => {
    const image = PNG.sync.read(Buffer.from(encodeBitmapPng(bitmap, { scale: 3 })));
    expect([image.width, image.height]).toEqual([39, 9]);
    for (let y = 0; y < 9; y++) {
      for (let x = 0; x < 39; x++) {
        const on = bitmap.get(Math.floor(x / 3), Math.floor(y / 3));
        expect(pixel(image, x, y), `(${x}, ${y})`).toEqual(on ? BLACK : WHITE);
      }
    }
  });

  test("refuses an empty image and a fractional scale", () => {
    expect(() => encodeBitmapPng(new Bitmap(0, 4))).toThrow(RangeError);
    expect(() => encodeBitmapPng(bitmap, { scale: 1.5 })).toThrow(RangeError);
  });
});

describe("encodeRgbPng", () => {
  const rgb = Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 255, 255, 255, 0, 0, 0);

  test("round-trips through pngjs: size, 8-bit truecolour, every pixel", () => {
    const png = encodeRgbPng(3, 2, rgb);
    expect(chunks(png).map((c) => c.type)).toEqual(["IHDR", "IDAT", "IEND"]);
    const image = PNG.sync.read(Buffer.from(png));
    expect([image.width, image.height, image.depth, image.colorType]).toEqual([3, 2, 8, 2]);
    for (let i = 0; i < 6; i++) {
      expect(pixel(image, i % 3, Math.floor(i / 3))).toEqual([...rgb.subarray(i * 3, i * 3 + 3), 255]);
    }
  });

  test("rows start with filter byte 0; scale repeats pixels and rows", () => {
    const png = encodeRgbPng(3, 2, rgb, { scale: 2 });
    const raw = inflateSync(chunks(png).find((c) => c.type === "IDAT")?.data ?? new Uint8Array(0));
    expect(raw.length).toBe(4 * (1 + 6 * 3));
    for (let row = 0; row < 4; row++) expect(raw[row * 19]).toBe(0);
    const image = PNG.sync.read(Buffer.from(png));
    expect([image.width, image.height]).toEqual([6, 4]);
    expect(pixel(image, 5, 3)).toEqual([0, 0, 0, 255]);
    expect(pixel(image, 4, 2)).toEqual([0, 0, 0, 255]);
    expect(pixel(image, 1, 1)).toEqual([255, 0, 0, 255]);
    expect(pixel(image, 1, 3)).toEqual([10, 20, 30, 255]);
    expect(pixel(image, 2, 2)).toEqual([255, 255, 255, 255]);
  });

  test("refuses a buffer of the wrong length", () => {
    expect(() => encodeRgbPng(3, 2, new Uint8Array(17))).toThrow(/needs 18 bytes/);
  });
});
