import { describe, expect, test } from "vitest";
import { Bitmap } from "../../../display/render/bitmap.ts";

describe("Bitmap pixels", () => {
  test("starts blank; set and get address (x, y) from the top left; outside reads off and writes nothing", () => {
    const bitmap = new Bitmap(4, 3);
    expect(bitmap.toRows()).toEqual(["....", "....", "...."]);
    bitmap.set(3, 0, true);
    bitmap.set(0, 2, true);
    bitmap.set(4, 0, true);
    bitmap.set(-1, 1, true);
    bitmap.set(0, 3, true);
    expect(bitmap.toRows()).toEqual(["...#", "....", "#..."]);
    expect(bitmap.get(3, 0)).toBe(true);
    expect(bitmap.get(2, 0)).toBe(false);
    expect(bitmap.get(4, 0)).toBe(false);
    expect(bitmap.get(-1, -1)).toBe(false);
    bitmap.set(3, 0, false);
    expect(bitmap.get(3, 0)).toBe(false);
  });

  test("fromRows and toRows are inverse; ragged rows are refused", () => {
    const rows = ["#..#", ".##.", "#..#"];
    expect(Bitmap.fromRows(rows).toRows()).toEqual(rows);
    expect(() => Bitmap.fromRows(["##", "#"])).toThrow(/row 1/);
  });

  test("a pixel array of the wrong length is refused, and is copied, not shared", () => {
    expect(() => new Bitmap(2, 2, new Uint8Array(3))).toThrow(RangeError);
    const pixels = Uint8Array.of(1, 0, 0, 7);
    const bitmap = new Bitmap(2, 2, pixels);
    pixels[1] = 1;
    expect(bitmap.toRows()).toEqual(["#.", ".#"]);
  });

  test("fillRect fills and clears, clipped at every edge", () => {
    const bitmap = new Bitmap(5, 4);
    bitmap.fillRect(-2, -1, 4, 3);
    expect(bitmap.toRows()).toEqual(["##...", "##...", ".....", "....."]);
    bitmap.fillRect(3, 2, 10, 10);
    expect(bitmap.toRows()).toEqual(["##...", "##...", "...##", "...##"]);
    bitmap.fillRect(0, 0, 5, 1, false);
    expect(bitmap.toRows()).toEqual([".....", "##...", "...##", "...##"]);
    bitmap.fillRect(1, 1, 0, 3);
    expect(bitmap.toRows()).toEqual([".....", "##...", "...##", "...##"]);
  });

  test("clear blanks the bitmap, or fills it", () => {
    const bitmap = Bitmap.fromRows(["#.", ".#"]);
    bitmap.clear();
    expect(bitmap.toRows()).toEqual(["..", ".."]);
    bitmap.clear(true);
    expect(bitmap.toRows()).toEqual(["##", "##"]);
  });

  test("blit copies, ors or xors a source at an offset, clipped", () => {
    const source = Bitmap.fromRows(["#.", ".#"]);
    const base = (): Bitmap => Bitmap.fromRows(["###", "...", "..."]);

    const copied = base();
    copied.blit(source, 1, 0);
    expect(copied.toRows()).toEqual(["##.", "..#", "..."]);

    const ored = base();
    ored.blit(source, 1, 0, "or");
    expect(ored.toRows()).toEqual(["###", "..#", "..."]);

    const xored = base();
    xored.blit(source, 1, 0, "xor");
    expect(xored.toRows()).toEqual(["#.#", "..#", "..."]);

    const clipped = base();
    clipped.blit(source, 2, 2);
    clipped.blit(source, -1, -1);
    expect(clipped.toRows()).toEqual(["###", "...", "..#"]);
  });

  test("invert flips every pixel", () => {
    const bitmap = Bitmap.fromRows(["#..", ".#."]);
    bitmap.invert();
    expect(bitmap.toRows()).toEqual([".##", "#.#"]);
  });

  test("rotate turns clockwise; 90 and 270 swap width and height; four quarter turns are the identity", () => {
    const bitmap = Bitmap.fromRows(["##.", "#.."]);
    expect(bitmap.rotate(90).toRows()).toEqual(["##", ".#", ".."]);
    expect(bitmap.rotate(180).toRows()).toEqual(["..#", ".##"]);
    expect(bitmap.rotate(270).toRows()).toEqual(["..", "#.", "##"]);
    const turned = bitmap.rotate(90).rotate(90).rotate(90).rotate(90);
    expect(turned.equals(bitmap)).toBe(true);
    expect(bitmap.rotate(90).rotate(270).equals(bitmap)).toBe(true);
    expect(bitmap.toRows()).toEqual(["##.", "#.."]);
  });

  test("equals compares size and pixels; clone is independent", () => {
    const a = Bitmap.fromRows(["#.", ".."]);
    expect(a.equals(Bitmap.fromRows(["#.", ".."]))).toBe(true);
    expect(a.equals(Bitmap.fromRows([".#", ".."]))).toBe(false);
    expect(a.equals(Bitmap.fromRows(["#...."]))).toBe(false);
    expect(a.equals(new Bitmap(4, 1))).toBe(false);
    const copy = a.clone();
    copy.set(1, 1, true);
    expect(a.get(1, 1)).toBe(false);
    expect(copy.equals(a)).toBe(false);
  });
});

describe("SSD1306 page bytes", () => {
  // 3 wide, 10 tall: two pages, the second padded. Bit n of a byte is row page * 8 + n.
  const bitmap = Bitmap.fromRows([
    "#..", // row 0: page 0 bit 0
    ".#.", // row 1: page 0 bit 1
    "...",
    "...",
    "...",
    "...",
    "...",
    "#..", // row 7: page 0 bit 7
    "..#", // row 8: page 1 bit 0
    "..#", // row 9: page 1 bit 1
  ]);

  test("are pages of 8 rows, a byte per column left to right, LSB the top row", () => {
    expect([...bitmap.toPageBytes()]).toEqual([0x81, 0x02, 0x00, 0x00, 0x00, 0x03]);
  });

  test("a 128x64 panel is 1024 bytes; its bottom-right pixel is the last byte's MSB", () => {
    const panel = new Bitmap(128, 64);
    panel.set(127, 63, true);
    panel.set(1, 8, true);
    const bytes = panel.toPageBytes();
    expect(bytes.length).toBe(1024);
    expect(bytes[1023]).toBe(0x80);
    expect(bytes[128 + 1]).toBe(0x01);
    expect(bytes.reduce((sum, byte) => sum + byte, 0)).toBe(0x81);
  });

  test("decode back to the same pixels (for the simulator); a wrong length is refused", () => {
    expect(Bitmap.fromPageBytes(3, 10, bitmap.toPageBytes()).equals(bitmap)).toBe(true);
    expect(() => Bitmap.fromPageBytes(3, 10, new Uint8Array(3))).toThrow(/needs 6 bytes/);
  });
});

describe("row bytes (SSD1680 RAM)", () => {
  // 10 wide: two bytes a row, 6 padding bits in the second.
  const bitmap = Bitmap.fromRows(["#.#......#", ".........."]);

  test("MSB first: the leftmost pixel is bit 7; padding is off", () => {
    expect([...bitmap.toRowBytes()]).toEqual([0b1010_0000, 0b0100_0000, 0x00, 0x00]);
  });

  test("LSB first: the leftmost pixel is bit 0", () => {
    expect([...bitmap.toRowBytes({ msbFirst: false })]).toEqual([0b0000_0101, 0b0000_0010, 0x00, 0x00]);
  });

  test("onValue 0 (SSD1680: 1 = white) makes ink 0 and blank and padding 1", () => {
    expect([...bitmap.toRowBytes({ onValue: 0 })]).toEqual([0b0101_1111, 0b1011_1111, 0xff, 0xff]);
  });

  test("decode back to the same pixels in every order (for the simulator)", () => {
    for (const options of [
      {},
      { msbFirst: false },
      { onValue: 0 as const },
      { msbFirst: false, onValue: 0 as const },
    ]) {
      expect(Bitmap.fromRowBytes(10, 2, bitmap.toRowBytes(options), options).equals(bitmap)).toBe(true);
    }
    expect(() => Bitmap.fromRowBytes(10, 2, new Uint8Array(2))).toThrow(/needs 4 bytes/);
  });

  test("a 250x122 panel is 32 bytes a row", () => {
    expect(new Bitmap(250, 122).toRowBytes().length).toBe(32 * 122);
  });
});
