import { describe, expect, test } from "vitest";
import { Bitmap } from "../../../display/render/bitmap.ts";
import {
  type BitmapFont,
  drawText,
  glyphFor,
  measureText,
  parseFont,
  truncateText,
  wrapText,
} from "../../../display/render/font.ts";
import { font5x7 } from "../../../display/render/fonts/5x7.ts";
import { font6x10 } from "../../../display/render/fonts/6x10.ts";
import { font10x20 } from "../../../display/render/fonts/10x20.ts";

const FONTS: readonly [string, BitmapFont, number, number][] = [
  ["5x7", font5x7, 5, 7],
  ["6x10", font6x10, 6, 10],
  ["10x20", font10x20, 10, 20],
];
const PRINTABLE = Array.from({ length: 126 - 32 + 1 }, (_, i) => String.fromCharCode(32 + i));
const URL = "https://microsoft.com/devicelogin";

/** Columns that have ink, and rows that have ink, of a glyph. */
function ink(rows: readonly string[]): { columns: number[]; rows: number[] } {
  const width = rows[0]?.length ?? 0;
  return {
    columns: Array.from({ length: width }, (_, x) => x).filter((x) => rows.some((row) => row[x] === "#")),
    rows: rows.flatMap((row, y) => (row.includes("#") ? [y] : [])),
  };
}

describe.each(FONTS)("font %s", (_name, font, advance, height) => {
  test(`has every printable ASCII glyph, each a ${advance}x${height} cell, plus … and ·`, () => {
    expect(font.height).toBe(height);
    for (const char of [...PRINTABLE, "…", "·"]) {
      const glyph = font.glyphs.get(char);
      expect(glyph, `glyph ${JSON.stringify(char)}`).toBeDefined();
      expect(glyph?.advance).toBe(advance);
      expect(glyph?.rows).toHaveLength(height);
      for (const row of glyph?.rows ?? []) expect(row).toMatch(new RegExp(`^[#.]{${advance}}$`));
    }
    expect(font.glyphs.size).toBe(PRINTABLE.length + 2);
  });

  test("space is empty and every other printable glyph has ink", () => {
    expect(glyphFor(font, " ").rows.join("")).not.toContain("#");
    for (const char of PRINTABLE.slice(1)) expect(glyphFor(font, char).rows.join(""), char).toContain("#");
  });

  test("'|' is a vertical bar, 'I' a vertical stem with serifs, '_' lies lowest and '-' is one flat stroke", () => {
    const barRows = glyphFor(font, "|").rows;
    const bar = ink(barRows);
    expect(bar.columns.length).toBeLessThanOrEqual(2);
    expect(bar.rows.length).toBeGreaterThanOrEqual(height / 2);
    // Straight and unbroken: every row from the top of the bar to its bottom is the same.
    const first = bar.rows[0] ?? 0;
    const last = bar.rows.at(-1) ?? 0;
    expect(bar.rows).toHaveLength(last - first + 1);
    expect(new Set(bar.rows.map((y) => barRows[y]))).toEqual(new Set([barRows[first]]));

    const i = glyphFor(font, "I").rows;
    const stem = ink(i).columns.filter((x) => ink(i).rows.every((y) => i[y]?.[x] === "#"));
    expect(stem.length).toBeGreaterThanOrEqual(1);
    expect(ink(i).rows.length).toBeGreaterThanOrEqual(height / 2);

    const underscore = ink(glyphFor(font, "_").rows).rows;
    const lowestOfA = Math.max(...ink(glyphFor(font, "A").rows).rows);
    expect(underscore).toHaveLength(1);
    expect(underscore[0]).toBeGreaterThanOrEqual(lowestOfA);

    const dash = glyphFor(font, "-").rows;
    expect(ink(dash).rows.length).toBeLessThanOrEqual(2);
    expect(ink(dash).columns.length).toBeGreaterThanOrEqual(advance / 2);
  });

  test("'O' is symmetric left to right and top to bottom within its ink", () => {
    const rows = glyphFor(font, "O").rows;
    const box = ink(rows);
    const cropped = box.rows.map((y) =>
      (rows[y] ?? "").slice(Math.min(...box.columns), Math.max(...box.columns) + 1),
    );
    expect(cropped.map((row) => [...row].reverse().join(""))).toEqual(cropped);
    expect([...cropped].reverse()).toEqual(cropped);
  });
});

describe("measureText and drawText", () => {
  test("measure the sum of advances times the scale, and the line height times the scale", () => {
    expect(measureText(font6x10, "ABCD-EFGH")).toEqual({ width: 54, height: 10 });
    expect(measureText(font10x20, "ABCD-EFGH", 3)).toEqual({ width: 270, height: 60 });
    expect(measureText(font5x7, "")).toEqual({ width: 0, height: 7 });
    expect(measureText(font5x7, "…")).toEqual({ width: 5, height: 7 });
    expect(() => measureText(font5x7, "A", 1.5)).toThrow(RangeError);
  });

  test("a missing character is drawn and measured as '?'", () => {
    expect(glyphFor(font6x10, "€")).toBe(glyphFor(font6x10, "?"));
    const drawn = new Bitmap(6, 10);
    const expected = new Bitmap(6, 10);
    drawText(drawn, font6x10, "€", 0, 0);
    drawText(expected, font6x10, "?", 0, 0);
    expect(drawn.equals(expected)).toBe(true);
  });

  test("draws each glyph's cell with the line's top left at (x, y), and returns the width drawn", () => {
    const bitmap = new Bitmap(20, 12);
    expect(drawText(bitmap, font5x7, "IT", 3, 2)).toBe(10);
    const expected = new Bitmap(20, 12);
    expected.blit(Bitmap.fromRows(glyphFor(font5x7, "I").rows), 3, 2);
    expected.blit(Bitmap.fromRows(glyphFor(font5x7, "T").rows), 8, 2);
    expect(bitmap.toRows()).toEqual(expected.toRows());
  });

  test("leaves the background as it was, unless inverted, which paints the cell and cuts the ink out", () => {
    const plain = new Bitmap(5, 7);
    plain.clear(true);
    drawText(plain, font5x7, " ", 0, 0);
    expect(plain.toRows().join("")).not.toContain(".");

    const inverted = new Bitmap(7, 9);
    drawText(inverted, font5x7, "A", 1, 1, { invert: true });
    const expected = new Bitmap(7, 9);
    const glyph = Bitmap.fromRows(glyphFor(font5x7, "A").rows);
    glyph.invert();
    expected.blit(glyph, 1, 1);
    expect(inverted.toRows()).toEqual(expected.toRows());
  });

  test("scale makes every glyph pixel a scale x scale square", () => {
    const bitmap = new Bitmap(15, 21);
    expect(drawText(bitmap, font5x7, "H", 0, 0, { scale: 3 })).toBe(15);
    const rows = glyphFor(font5x7, "H").rows;
    for (let y = 0; y < 21; y++) {
      for (let x = 0; x < 15; x++) {
        expect(bitmap.get(x, y), `(${x}, ${y})`).toBe(rows[Math.floor(y / 3)]?.[Math.floor(x / 3)] === "#");
      }
    }
  });

  test("is clipped at the bitmap's edges", () => {
    const bitmap = new Bitmap(4, 4);
    expect(drawText(bitmap, font10x20, "WW", -3, -5)).toBe(20);
    const expected = new Bitmap(4, 4);
    expected.blit(Bitmap.fromRows(glyphFor(font10x20, "W").rows), -3, -5);
    expect(bitmap.toRows()).toEqual(expected.toRows());
  });
});

describe("wrapText and truncateText", () => {
  const columns = (n: number, font: BitmapFont = font6x10): number => n * glyphFor(font, "M").advance;

  test("the verification URL in 21 character widths (a 128-px OLED in 6x10) breaks before the path", () => {
    expect(wrapText(font6x10, URL, columns(21))).toEqual(["https://microsoft.com", "/devicelogin"]);
  });

  test("in 16 character widths it breaks after // and before the path, never mid-word", () => {
    expect(wrapText(font6x10, URL, columns(16))).toEqual(["https://", "microsoft.com", "/devicelogin"]);
    expect(wrapText(font10x20, URL, columns(16, font10x20), { scale: 1 })).toEqual([
      "https://",
      "microsoft.com",
      "/devicelogin",
    ]);
  });

  test("widths count scaled pixels", () => {
    expect(wrapText(font5x7, URL, 21 * 5 * 2, { scale: 2 })).toEqual([
      "https://microsoft.com",
      "/devicelogin",
    ]);
  });

  test("a URL that fits stays on one line; one without break points breaks hard", () => {
    expect(wrapText(font6x10, URL, columns(33))).toEqual([URL]);
    expect(wrapText(font6x10, "abcdefghijklmnopqrstuvwxyz", columns(10))).toEqual([
      "abcdefghij",
      "klmnopqrst",
      "uvwxyz",
    ]);
    expect(
      wrapText(font6x10, "https://login.microsoftonline.com/common/oauth2/deviceauth", columns(21)),
    ).toEqual(["https://login", ".microsoftonline.com", "/common/oauth2", "/deviceauth"]);
  });

  test("prose breaks at spaces, which are dropped; newlines always break", () => {
    expect(wrapText(font6x10, "Sign in at the URL below", columns(10))).toEqual([
      "Sign in at",
      "the URL",
      "below",
    ]);
    expect(wrapText(font6x10, "Signed in\nas ada", columns(20))).toEqual(["Signed in", "as ada"]);
  });

  test("maxLines cuts the last line with an ellipsis", () => {
    expect(wrapText(font6x10, URL, columns(16), { maxLines: 2 })).toEqual(["https://", "microsoft.com/d…"]);
    expect(wrapText(font6x10, URL, columns(16), { maxLines: 3 })).toEqual([
      "https://",
      "microsoft.com",
      "/devicelogin",
    ]);
    expect(() => wrapText(font6x10, URL, columns(16), { maxLines: 0 })).toThrow(RangeError);
  });

  test("a character wider than the line still gets one, so wrapping always ends", () => {
    expect(wrapText(font10x20, "ab", 4)).toEqual(["a", "b"]);
  });

  test("truncateText keeps text that fits and cuts the rest with …, or ... in a font without it", () => {
    expect(truncateText(font6x10, "ABCD-EFGH", columns(9))).toBe("ABCD-EFGH");
    expect(truncateText(font6x10, URL, columns(12))).toBe("https://mic…");
    expect(measureText(font6x10, truncateText(font6x10, URL, columns(12))).width).toBe(columns(12));
    expect(truncateText(font6x10, "signed in as ada", columns(11))).toBe("signed in…");
    const plain = parseFont("tiny", 1, ["U+002E", "#", "", "U+003F", "#", "", "U+0061", "#"].join("\n"));
    expect(truncateText(plain, "aaaaaa", 5)).toBe("aa...");
  });
});

describe("parseFont", () => {
  test("reads U+XXXX blocks into frozen glyphs", () => {
    const font = parseFont("t", 2, "\nU+0041\n.#.\n#.#\n\nU+003F\n##.\n.#.\n");
    expect(font.height).toBe(2);
    expect(font.glyphs.get("A")).toEqual({ advance: 3, rows: [".#.", "#.#"] });
    expect(Object.isFrozen(font)).toBe(true);
    expect(Object.isFrozen(font.glyphs.get("A"))).toBe(true);
  });

  test("refuses bad labels, ragged rows, unequal heights and a font without '?'", () => {
    expect(() => parseFont("t", 1, "A\n#")).toThrow(/bad glyph label/);
    expect(() => parseFont("t", 1, "U+003F\n##\n#")).toThrow(/unequal/);
    expect(() => parseFont("t", 1, "U+003F\n#\n\nU+0041\n#\n#")).toThrow(/2 rows/);
    expect(() => parseFont("t", 1, "U+0041\n#")).toThrow(/fallback/);
  });
});
