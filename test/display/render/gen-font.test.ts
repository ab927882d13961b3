import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { parseFont } from "../../../display/render/font.ts";
import { FONT_DIR, FONTS, fontModule, generate, PcfError, parsePcf } from "../../../scripts/gen-font.ts";

interface TestGlyph {
  codePoint: number;
  leftBearing: number;
  advance: number;
  ascent: number;
  /** Ink rows, `#` on; the glyph is as wide as a row and as tall as the list. */
  rows: string[];
}

interface Layout {
  msByte: boolean;
  msBit: boolean;
  /** Glyph row padding is 2^padIndex bytes; scan units 2^unitIndex bytes. */
  padIndex: number;
  unitIndex: number;
  compressedMetrics: boolean;
}

/** Bytes of a table body, in the byte order `msByte` says, after its little-endian format word. */
class Writer {
  readonly bytes: number[] = [];
  constructor(
    private readonly msByte: boolean,
    format: number,
  ) {
    this.raw(format, 4, false);
  }
  raw(value: number, size: number, bigEndian = this.msByte): this {
    const bytes = Array.from({ length: size }, (_, i) => (value >> (8 * i)) & 0xff);
    this.bytes.push(...(bigEndian ? bytes.reverse() : bytes));
    return this;
  }
  int32(value: number): this {
    return this.raw(value, 4);
  }
  int16(value: number): this {
    return this.raw(value, 2);
  }
}

/**
 * A PCF file for `glyphs`, written independently of the parser from the format description
 * (libXfont pcfread.c), so the parser is checked on layouts the shipped fonts do not use.
 */
function buildPcf(
  glyphs: readonly TestGlyph[],
  layout: Layout,
  fontAscent: number,
  fontDescent: number,
): Uint8Array {
  const order = (layout.msByte ? 4 : 0) | (layout.msBit ? 8 : 0);
  const metrics = new Writer(layout.msByte, order | (layout.compressedMetrics ? 0x100 : 0));
  if (layout.compressedMetrics) metrics.int16(glyphs.length);
  else metrics.int32(glyphs.length);
  for (const g of glyphs) {
    const width = g.rows[0]?.length ?? 0;
    const values = [g.leftBearing, g.leftBearing + width, g.advance, g.ascent, g.rows.length - g.ascent];
    if (layout.compressedMetrics) for (const v of values) metrics.raw(v + 0x80, 1);
    else for (const v of [...values, 0]) metrics.int16(v);
  }

  const pad = 1 << layout.padIndex;
  const unit = 1 << layout.unitIndex;
  const data: number[] = [];
  const offsets: number[] = [];
  for (const g of glyphs) {
    offsets.push(data.length);
    const width = g.rows[0]?.length ?? 0;
    const stride = Math.ceil(width / (pad * 8)) * pad;
    for (const row of g.rows) {
      const units = Array.from({ length: stride / unit }, () => 0);
      [...row].forEach((c, x) => {
        if (c !== "#") return;
        const bit = x % (unit * 8);
        const u = Math.floor(x / (unit * 8));
        units[u] = (units[u] ?? 0) + 2 ** (layout.msBit ? unit * 8 - 1 - bit : bit);
      });
      for (const value of units) {
        const bytes = Array.from({ length: unit }, (_, i) => Math.floor(value / 256 ** i) % 256);
        data.push(...(layout.msByte ? bytes.reverse() : bytes));
      }
    }
  }
  const bitmaps = new Writer(layout.msByte, order | layout.padIndex | (layout.unitIndex << 4)).int32(
    glyphs.length,
  );
  for (const offset of offsets) bitmaps.int32(offset);
  for (let i = 0; i < 4; i++) bitmaps.int32(data.length);
  bitmaps.bytes.push(...data);

  // Columns 0x20-0x7E of rows 0x00-0x20: enough for ASCII and U+2026, and not starting at 0.
  const encodings = new Writer(layout.msByte, order).int16(0x20).int16(0x7e).int16(0).int16(0x20).int16(0x3f);
  const table = Array.from({ length: 95 * 0x21 }, () => 0xffff);
  glyphs.forEach((g, index) => {
    table[(g.codePoint >> 8) * 95 + (g.codePoint & 0xff) - 0x20] = index;
  });
  for (const index of table) encodings.raw(index, 2);

  const accelerators = new Writer(layout.msByte, order)
    .raw(0, 8)
    .int32(fontAscent)
    .int32(fontDescent)
    .int32(0);
  for (let i = 0; i < 12; i++) accelerators.int16(0);

  const tables: [number, number[]][] = [
    [1 << 1, accelerators.bytes],
    [1 << 2, metrics.bytes],
    [1 << 3, bitmaps.bytes],
    [1 << 5, encodings.bytes],
  ];
  const file = new Writer(false, 0x70636601).int32(tables.length);
  let offset = 8 + tables.length * 16;
  for (const [type, bytes] of tables) {
    file
      .int32(type)
      .int32(bytes[0] ?? 0)
      .int32(bytes.length)
      .int32(offset);
    offset += bytes.length;
  }
  for (const [, bytes] of tables) file.bytes.push(...bytes);
  return Uint8Array.from(file.bytes);
}

const GLYPHS: readonly TestGlyph[] = [
  // 10 wide: crosses a byte and, with 1-byte units, a unit.
  {
    codePoint: 0x41,
    leftBearing: 0,
    advance: 11,
    ascent: 3,
    rows: ["##.......#", ".#.#.#.#.#", "#........."],
  },
  // Offset in its cell, with a descender.
  { codePoint: 0x3f, leftBearing: 2, advance: 11, ascent: 2, rows: ["###", "..#", ".#."] },
  // Above the Latin-1 row.
  { codePoint: 0x2026, leftBearing: 0, advance: 11, ascent: 1, rows: ["#.#.#.#.#.#"] },
];

const LAYOUTS: Layout[] = [];
for (const msByte of [true, false]) {
  for (const msBit of [true, false]) {
    for (const [padIndex, unitIndex] of [
      [0, 0],
      [1, 1],
      [2, 0],
      [2, 1],
      [2, 2],
      [3, 2],
    ] as const) {
      for (const compressedMetrics of [true, false])
        LAYOUTS.push({ msByte, msBit, padIndex, unitIndex, compressedMetrics });
    }
  }
}

describe("parsePcf", () => {
  test.each(LAYOUTS)("reads glyphs, metrics and encodings from %j", (layout) => {
    const font = parsePcf(buildPcf(GLYPHS, layout, 3, 1));
    expect([font.ascent, font.descent]).toEqual([3, 1]);
    for (const g of GLYPHS) {
      const glyph = font.glyph(g.codePoint);
      expect(glyph?.rows.map((row) => row.map((ink) => (ink ? "#" : ".")).join(""))).toEqual(g.rows);
      expect(glyph?.metrics).toEqual({
        leftBearing: g.leftBearing,
        rightBearing: g.leftBearing + (g.rows[0]?.length ?? 0),
        advance: g.advance,
        ascent: g.ascent,
        descent: g.rows.length - g.ascent,
      });
    }
    expect(font.glyph(0x42)).toBeUndefined();
    expect(font.glyph(0x1f)).toBeUndefined();
    expect(font.glyph(0x7f)).toBeUndefined();
    expect(font.glyph(0x2141)).toBeUndefined();
    expect(font.glyph(0x1f600)).toBeUndefined();
  });

  test("16-bit scan units: bit order picks the pixel's bit, byte order the bytes (hand-computed)", () => {
    // Row "##.......#" in one 2-byte unit: MSBit first sets bits 15, 14, 6 (0xC040); LSBit first
    // sets bits 0, 1, 9 (0x0203). Each then stored big- or little-endian.
    const cases = [
      [true, true, [0xc0, 0x40]],
      [false, true, [0x40, 0xc0]],
      [false, false, [0x03, 0x02]],
      [true, false, [0x02, 0x03]],
    ] as const;
    for (const [msByte, msBit, bytes] of cases) {
      const pcf = buildPcf(
        [{ codePoint: 0x3f, leftBearing: 0, advance: 10, ascent: 1, rows: ["##.......#"] }],
        { msByte, msBit, padIndex: 1, unitIndex: 1, compressedMetrics: true },
        1,
        0,
      );
      // The bitmaps table is the third TOC entry; its data follows format, count, 1 offset, 4 sizes.
      const bitmapsAt = new DataView(pcf.buffer).getInt32(8 + 2 * 16 + 12, true);
      const data = pcf.subarray(bitmapsAt + 4 + 4 + 4 + 16, bitmapsAt + 4 + 4 + 4 + 16 + 2);
      expect([...data], `msByte ${msByte}, msBit ${msBit}`).toEqual(bytes);
      const rows = parsePcf(pcf).glyph(0x3f)?.rows[0];
      expect(rows?.map((ink) => (ink ? "#" : ".")).join("")).toBe("##.......#");
    }
  });

  test("refuses what is not a PCF file, and a file without a required table", () => {
    expect(() => parsePcf(new TextEncoder().encode("STARTFONT 2.1\n"))).toThrow(PcfError);
    const pcf = buildPcf(GLYPHS, LAYOUTS[0] as Layout, 3, 1);
    const noBitmaps = pcf.slice();
    new DataView(noBitmaps.buffer).setInt32(8 + 2 * 16, 1 << 9, true); // retype the bitmaps entry
    expect(() => parsePcf(noBitmaps)).toThrow(/no bitmaps table/);
  });
});

describe("fontModule", () => {
  test("places each glyph in its cell by its bearing and ascent, and parseFont reads it back", () => {
    // Every printable ASCII character (blank unless in GLYPHS) and the ellipsis.
    const full = [...Array.from({ length: 95 }, (_, i) => 32 + i), 0x2026].map(
      (codePoint): TestGlyph =>
        GLYPHS.find((g) => g.codePoint === codePoint) ?? {
          codePoint,
          leftBearing: 0,
          advance: 11,
          ascent: 0,
          rows: [],
        },
    );
    const font = parsePcf(buildPcf(full, LAYOUTS[0] as Layout, 3, 1));
    const source = fontModule("t", "t.pcf.gz", font);
    expect(source).toContain("Public domain (X.Org misc-fixed, font-misc-misc/COPYING)");
    expect(source).toContain("from t.pcf.gz");
    const text = /`([^`]*)`/.exec(source)?.[1] ?? "";
    const parsed = parseFont("t", 3, text);
    // Ascent 2 under a font ascent of 3: one blank row above; left bearing 2: two blank columns.
    expect(parsed.glyphs.get("?")?.rows).toEqual([
      "...........",
      "..###......",
      "....#......",
      "...#.......",
    ]);
    expect(parsed.glyphs.get("…")?.rows).toEqual([
      "...........",
      "...........",
      "#.#.#.#.#.#",
      "...........",
    ]);
    expect(parsed.glyphs.get("A")?.rows).toEqual([
      "##.......#.",
      ".#.#.#.#.#.",
      "#..........",
      "...........",
    ]);
    expect(parsed.glyphs.get(" ")?.rows).toEqual(Array.from({ length: 4 }, () => "..........."));
    expect(parsed.glyphs.has("·")).toBe(false);
  });

  test("refuses a font missing printable ASCII", () => {
    const font = parsePcf(buildPcf(GLYPHS, LAYOUTS[0] as Layout, 3, 1));
    expect(() => fontModule("t", "t.pcf.gz", font)).toThrow(/no glyph for U\+0020/);
  });
});

describe("gen-font on xfonts-base", () => {
  test("has Debian's xfonts-base to read (npm test installs it)", () => {
    expect(
      existsSync(join(FONT_DIR, "5x7.pcf.gz")),
      "Debian's xfonts-base is not installed: run apt-get install -y xfonts-base",
    ).toBe(true);
  });

  const dirs = [mkdtempSync(join(tmpdir(), "gen-font-")), mkdtempSync(join(tmpdir(), "gen-font-"))];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test("writes the same files twice, and the same as the committed modules", () => {
    const [first = "", second = ""] = dirs;
    generate(FONT_DIR, first);
    generate(FONT_DIR, second);
    for (const { name } of FONTS) {
      const a = readFileSync(join(first, `${name}.ts`), "utf8");
      expect(readFileSync(join(second, `${name}.ts`), "utf8")).toBe(a);
      const committed = join(
        import.meta.dirname,
        "..",
        "..",
        "..",
        "display",
        "render",
        "fonts",
        `${name}.ts`,
      );
      expect(readFileSync(committed, "utf8"), `${name}.ts is stale: run bun scripts/gen-font.ts`).toBe(a);
    }
  });
});
