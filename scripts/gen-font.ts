/**
 * Generates display/render/fonts/<name>.ts from the X.Org misc-fixed bitmap fonts that Debian's
 * xfonts-base installs as PCF (/usr/share/fonts/X11/misc/*.pcf.gz). The generated modules are
 * committed, so neither the build nor a Pi needs the package; run this again only to add a font:
 *
 *   bun scripts/gen-font.ts [outDir]     (default display/render/fonts)
 *
 * Only fonts of font-misc-misc are listed: its COPYING says "Public domain font. Share and
 * enjoy." (other families in the same directory, such as the Schumacher cl* fonts, carry other
 * terms). We take the ISO10646-1 (Unicode) files, which hold '…' and '·' besides ASCII.
 *
 * PCF layout (from X.Org libXfont, src/bitmap/pcfread.c): a header "\x01fcp", a table count and a
 * table of contents (type, format, size, offset; little-endian int32s). Each table starts with its
 * own format word (little-endian); the format's byte-order bit then says how that table's other
 * integers are stored, and for bitmaps also the bit order, row padding and scan unit.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";

/** The fonts we ship: a small one for 128x64 OLEDs and URLs, a large one for the user code. */
export const FONTS: readonly { readonly name: string; readonly file: string }[] = [
  { name: "5x7", file: "5x7.pcf.gz" },
  { name: "6x10", file: "6x10.pcf.gz" },
  { name: "10x20", file: "10x20.pcf.gz" },
];

export const FONT_DIR = "/usr/share/fonts/X11/misc";

/** Printable ASCII, then the two extras the displays use (an ellipsis for cut URLs, a middle dot). */
export const CODE_POINTS: readonly number[] = [
  ...Array.from({ length: 126 - 32 + 1 }, (_, i) => 32 + i),
  0x00b7, // · MIDDLE DOT
  0x2026, // … HORIZONTAL ELLIPSIS
];
const REQUIRED_LAST = 126;

// Table types (pcf.h). Properties (FONT_ASCENT, COPYRIGHT…) are not read: the accelerators
// carry the ascent and descent, and the licence is stated in the generated header.
const PCF_ACCELERATORS = 1 << 1;
const PCF_METRICS = 1 << 2;
const PCF_BITMAPS = 1 << 3;
const PCF_BDF_ENCODINGS = 1 << 5;
const PCF_BDF_ACCELERATORS = 1 << 8;
// Format bits (pcf.h).
const PCF_FORMAT_MASK = 0xffffff00;
const PCF_DEFAULT_FORMAT = 0x00000000;
const PCF_ACCEL_W_INKBOUNDS = 0x00000100;
const PCF_COMPRESSED_METRICS = 0x00000100;
const PCF_GLYPH_PAD_MASK = 3 << 0;
const PCF_BYTE_MASK = 1 << 2; // set: most significant byte first
const PCF_BIT_MASK = 1 << 3; // set: most significant bit first (leftmost pixel)
const PCF_SCAN_UNIT_MASK = 3 << 4;
const NO_GLYPH = 0xffff;

/** One glyph's metrics, as in BDF: bearings and ascent/descent relative to the pen on the baseline. */
export interface PcfMetrics {
  readonly leftBearing: number;
  readonly rightBearing: number;
  readonly advance: number;
  readonly ascent: number;
  readonly descent: number;
}

export interface PcfGlyph {
  readonly metrics: PcfMetrics;
  /** `ascent + descent` rows, each `rightBearing - leftBearing` pixels, true = ink. */
  readonly rows: readonly (readonly boolean[])[];
}

export interface PcfFont {
  /** Pixels above and below the baseline of a line (the font's ascent and descent, not one glyph's). */
  readonly ascent: number;
  readonly descent: number;
  /** The glyph for a code point, if the font has one. */
  glyph(codePoint: number): PcfGlyph | undefined;
}

export class PcfError extends Error {
  override readonly name = "PcfError";
}

/** A bounds-checked reader of one PCF table, in the byte order its format word declares. */
class TableReader {
  readonly format: number;
  private readonly view: DataView;
  private readonly bigEndian: boolean;
  private readonly size: number;
  private position: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly offset: number,
    size: number,
  ) {
    // mkfontscale rounds the last table's size up past the end of the file (10x20.pcf's BDF
    // accelerators do), and libXfont does not mind, so read up to the end instead.
    this.size = Math.min(size, bytes.length - offset);
    if (offset < 0 || this.size < 4) throw new PcfError("table runs past the end of the file");
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.format = this.view.getInt32(offset, true);
    this.bigEndian = (this.format & PCF_BYTE_MASK) !== 0;
    this.position = offset + 4;
  }

  int32(): number {
    this.need(4);
    const value = this.view.getInt32(this.position, !this.bigEndian);
    this.position += 4;
    return value;
  }

  int16(): number {
    this.need(2);
    const value = this.view.getInt16(this.position, !this.bigEndian);
    this.position += 2;
    return value;
  }

  uint16(): number {
    this.need(2);
    const value = this.view.getUint16(this.position, !this.bigEndian);
    this.position += 2;
    return value;
  }

  uint8(): number {
    this.need(1);
    const value = this.bytes[this.position] ?? 0;
    this.position += 1;
    return value;
  }

  skip(count: number): void {
    this.need(count);
    this.position += count;
  }

  /** `count` bytes from the current position (a view, not a copy). */
  take(count: number): Uint8Array {
    this.need(count);
    const slice = this.bytes.subarray(this.position, this.position + count);
    this.position += count;
    return slice;
  }

  private need(count: number): void {
    if (this.position + count > this.offset + this.size) throw new PcfError("table is shorter than it says");
  }
}

/** Parses a PCF font (already gunzipped). Throws PcfError on anything it cannot read. */
export function parsePcf(bytes: Uint8Array): PcfFont {
  const header = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || header.getUint32(0, true) !== 0x70636601) throw new PcfError("not a PCF file");
  const tableCount = header.getInt32(4, true);
  if (tableCount < 0 || 8 + tableCount * 16 > bytes.length) throw new PcfError("bad table of contents");
  const tables = new Map<number, TableReader>();
  for (let i = 0; i < tableCount; i++) {
    const entry = 8 + i * 16;
    const type = header.getInt32(entry, true);
    const size = header.getInt32(entry + 8, true);
    const offset = header.getInt32(entry + 12, true);
    tables.set(type, new TableReader(bytes, offset, size));
  }
  const table = (type: number, what: string): TableReader => {
    const found = tables.get(type);
    if (found === undefined) throw new PcfError(`no ${what} table`);
    return found;
  };

  const metrics = readMetrics(table(PCF_METRICS, "metrics"));
  const bitmaps = readBitmaps(table(PCF_BITMAPS, "bitmaps"), metrics);
  const encoding = readEncodings(table(PCF_BDF_ENCODINGS, "encodings"));
  // BDF accelerators are the more accurate copy when both exist (pcfread.c prefers them too).
  const accelerators = tables.get(PCF_BDF_ACCELERATORS) ?? table(PCF_ACCELERATORS, "accelerators");
  const { ascent, descent } = readAccelerators(accelerators);

  return {
    ascent,
    descent,
    glyph(codePoint) {
      const index = encoding(codePoint);
      if (index === undefined) return undefined;
      const glyphMetrics = metrics[index];
      if (glyphMetrics === undefined) return undefined;
      return { metrics: glyphMetrics, rows: bitmaps(index) };
    },
  };
}

function readMetrics(reader: TableReader): PcfMetrics[] {
  const compressed = (reader.format & PCF_FORMAT_MASK) === PCF_COMPRESSED_METRICS;
  if (!compressed && (reader.format & PCF_FORMAT_MASK) !== PCF_DEFAULT_FORMAT) {
    throw new PcfError("unknown metrics format");
  }
  const count = compressed ? reader.int16() : reader.int32();
  // Compressed: five unsigned bytes, each biased by 0x80. Else six int16s, the last attributes.
  const next = compressed ? () => reader.uint8() - 0x80 : () => reader.int16();
  return Array.from({ length: count }, () => {
    const [leftBearing, rightBearing, advance, ascent, descent] = [next(), next(), next(), next(), next()];
    if (!compressed) reader.int16();
    return { leftBearing, rightBearing, advance, ascent, descent };
  });
}

/**
 * Each glyph's rows: `rightBearing - leftBearing` pixels wide, padded to the glyph pad (1, 2, 4 or
 * 8 bytes); pixels grouped in scan units (1, 2 or 4 bytes) stored in the table's byte order; within
 * a unit, the leftmost pixel is its most significant bit when the bit-order flag is set, else its
 * least significant (the X11 image convention).
 */
function readBitmaps(reader: TableReader, metrics: readonly PcfMetrics[]): (index: number) => boolean[][] {
  if ((reader.format & PCF_FORMAT_MASK) !== PCF_DEFAULT_FORMAT) throw new PcfError("unknown bitmap format");
  const count = reader.int32();
  if (count !== metrics.length) throw new PcfError(`${count} bitmaps for ${metrics.length} metrics`);
  const offsets = Array.from({ length: count }, () => reader.int32());
  const padIndex = reader.format & PCF_GLYPH_PAD_MASK;
  const sizes = [0, 1, 2, 3].map(() => reader.int32());
  const data = reader.take(sizes[padIndex] ?? 0);
  const padBytes = 1 << padIndex;
  const unitBytes = 1 << ((reader.format & PCF_SCAN_UNIT_MASK) >> 4);
  if (unitBytes > padBytes) throw new PcfError("scan unit larger than the glyph padding");
  const msByteFirst = (reader.format & PCF_BYTE_MASK) !== 0;
  const msBitFirst = (reader.format & PCF_BIT_MASK) !== 0;

  // Decoded on demand: the Unicode fonts hold thousands of glyphs and we want about a hundred.
  return (index) => {
    const m = metrics[index];
    if (m === undefined) throw new PcfError(`no glyph ${index}`);
    const width = m.rightBearing - m.leftBearing;
    const height = m.ascent + m.descent;
    const stride = Math.ceil(width / (padBytes * 8)) * padBytes;
    const start = offsets[index] ?? 0;
    if (width < 0 || height < 0 || start + stride * height > data.length) {
      throw new PcfError(`glyph ${index} bitmap out of range`);
    }
    const rows: boolean[][] = [];
    for (let y = 0; y < height; y++) {
      const row: boolean[] = [];
      for (let x = 0; x < width; x++) {
        const unitStart = start + y * stride + Math.floor(x / (unitBytes * 8)) * unitBytes;
        let unit = 0;
        for (let b = 0; b < unitBytes; b++) {
          const byte = data[unitStart + (msByteFirst ? b : unitBytes - 1 - b)] ?? 0;
          unit = unit * 256 + byte;
        }
        const bitInUnit = x % (unitBytes * 8);
        const shift = msBitFirst ? unitBytes * 8 - 1 - bitInUnit : bitInUnit;
        row.push(Math.floor(unit / 2 ** shift) % 2 === 1);
      }
      rows.push(row);
    }
    return rows;
  };
}

/** A lookup from code point to glyph index: a two-byte (row, column) table, 0xffff = none. */
function readEncodings(reader: TableReader): (codePoint: number) => number | undefined {
  const minColumn = reader.int16();
  const maxColumn = reader.int16();
  const minRow = reader.int16();
  const maxRow = reader.int16();
  reader.int16(); // default char: we choose our own fallback ('?') in font.ts
  const columns = maxColumn - minColumn + 1;
  const rowCount = maxRow - minRow + 1;
  if (columns <= 0 || rowCount <= 0) throw new PcfError("empty encoding table");
  const indices = Array.from({ length: columns * rowCount }, () => reader.uint16());
  return (codePoint) => {
    const row = codePoint >> 8;
    const column = codePoint & 0xff;
    if (codePoint > 0xffff || row < minRow || row > maxRow || column < minColumn || column > maxColumn) {
      return undefined;
    }
    const index = indices[(row - minRow) * columns + (column - minColumn)];
    return index === undefined || index === NO_GLYPH ? undefined : index;
  };
}

/** The font's ascent and descent from an accelerator table (the rest: flags, bounds, unused). */
function readAccelerators(reader: TableReader): { ascent: number; descent: number } {
  const format = reader.format & PCF_FORMAT_MASK;
  if (format !== PCF_DEFAULT_FORMAT && format !== PCF_ACCEL_W_INKBOUNDS) {
    throw new PcfError("unknown accelerator format");
  }
  reader.skip(8); // noOverlap, constantMetrics, terminalFont, constantWidth, inkInside, inkMetrics, drawDirection, padding
  const ascent = reader.int32();
  const descent = reader.int32();
  return { ascent, descent };
}

/**
 * One glyph as a full character cell, `advance` pixels wide and `ascent + descent` rows tall,
 * `#` ink and `.` blank: misc-fixed fonts are character-cell fonts, so every glyph fits its cell.
 * Throws if one does not (a proportional font would need a different BitmapFont).
 */
export function cellRows(font: PcfFont, glyph: PcfGlyph, label: string): string[] {
  const { metrics: m } = glyph;
  const height = font.ascent + font.descent;
  const cell = Array.from({ length: height }, () => Array.from({ length: m.advance }, () => "."));
  glyph.rows.forEach((row, gy) => {
    row.forEach((ink, gx) => {
      if (!ink) return;
      const x = m.leftBearing + gx;
      const y = font.ascent - m.ascent + gy;
      const line = cell[y];
      if (line === undefined || x < 0 || x >= m.advance) {
        throw new PcfError(`${label}: ink at (${x}, ${y}) falls outside its ${m.advance}x${height} cell`);
      }
      line[x] = "#";
    });
  });
  return cell.map((line) => line.join(""));
}

/**
 * The TypeScript module for one font. Glyphs sit in one template literal (a format font.ts's
 * `parseFont` reads) so that the formatter leaves them alone and a reviewer sees each shape.
 */
export function fontModule(name: string, file: string, font: PcfFont): string {
  const blocks: string[] = [];
  let advance: number | undefined;
  for (const codePoint of CODE_POINTS) {
    const glyph = font.glyph(codePoint);
    const label = `U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}`;
    if (glyph === undefined) {
      if (codePoint <= REQUIRED_LAST) throw new PcfError(`${file} has no glyph for ${label}`);
      continue;
    }
    if (advance !== undefined && glyph.metrics.advance !== advance) {
      throw new PcfError(`${file} is not monospaced (${label} advances ${glyph.metrics.advance})`);
    }
    advance = glyph.metrics.advance;
    blocks.push(`${label}\n${cellRows(font, glyph, `${file} ${label}`).join("\n")}`);
  }
  const identifier = `font${name.replace(/[^A-Za-z0-9]/g, "_")}`;
  return [
    `// Generated by scripts/gen-font.ts from ${file} (Debian xfonts-base, X.Org misc-fixed). Do not edit.`,
    `// Public domain (X.Org misc-fixed, font-misc-misc/COPYING): "Public domain font. Share and enjoy."`,
    `import { type BitmapFont, parseFont } from "../font.ts";`,
    "",
    `/** misc-fixed ${name}: ${advance ?? 0} px advance, ${font.ascent + font.descent} px line (ascent ${font.ascent}, descent ${font.descent}). */`,
    `export const ${identifier}: BitmapFont = parseFont(`,
    `  ${JSON.stringify(name)},`,
    `  ${font.ascent},`,
    "  `",
    blocks.join("\n\n"),
    "`,",
    ");",
    "",
  ].join("\n");
}

/** Writes every font in FONTS from `fontDir` into `outDir`; returns the paths written. */
export function generate(fontDir: string, outDir: string): string[] {
  mkdirSync(outDir, { recursive: true });
  return FONTS.map(({ name, file }) => {
    const font = parsePcf(gunzipSync(readFileSync(join(fontDir, file))));
    const path = join(outDir, `${name}.ts`);
    writeFileSync(path, fontModule(name, file, font));
    return path;
  });
}

if (import.meta.main) {
  const outDir = process.argv[2] ?? join(import.meta.dirname, "..", "display", "render", "fonts");
  for (const path of generate(FONT_DIR, outDir)) console.log(`wrote ${path}`);
}
