/**
 * A framebuffer's pixel format as the kernel describes it: `FBIOGET_VSCREENINFO` fills a
 * `struct fb_var_screeninfo` (<linux/fb.h>) whose red, green, blue and transp `fb_bitfield`s say
 * where each channel sits in a pixel. A panel may be BGR, so RGB565 or BGR565 at 16 bpp, XRGB or
 * XBGR at 32 bpp: the driver reads this rather than assume one.
 *
 * struct fb_var_screeninfo, all __u32: xres @0, yres @4, xres_virtual @8, yres_virtual @12,
 * xoffset @16, yoffset @20, bits_per_pixel @24, grayscale @28, red @32, green @44, blue @56,
 * transp @68 (each fb_bitfield is offset, length, msb_right), nonstd @80 … reserved[4] @144;
 * 160 bytes. Integers are little-endian on every target we build for.
 */

/** FBIOGET_VSCREENINFO: a plain number in <linux/fb.h>, not _IOR-encoded. */
export const FBIOGET_VSCREENINFO = 0x4600;
export const FB_VAR_SCREENINFO_SIZE = 160;

const BITS_PER_PIXEL = 24;
const RED = 32;
const GREEN = 44;
const BLUE = 56;
const TRANSP = 68;

/** One channel: its lowest bit in the pixel value, and how many bits it has. */
export interface Bitfield {
  readonly offset: number;
  readonly length: number;
}

export interface PixelFormat {
  readonly bitsPerPixel: number;
  readonly red: Bitfield;
  readonly green: Bitfield;
  readonly blue: Bitfield;
  /** Alpha (or the unused X byte, length 0 when the driver reports none). */
  readonly transp: Bitfield;
}

/**
 * What fbdev emulation on KMS offers when nothing says otherwise: RGB565 at 16 bpp, XRGB8888
 * (bytes B, G, R, X in memory) at 32 bpp.
 */
export function defaultPixelFormat(bitsPerPixel: 16 | 32): PixelFormat {
  return bitsPerPixel === 16
    ? {
        bitsPerPixel,
        red: { offset: 11, length: 5 },
        green: { offset: 5, length: 6 },
        blue: { offset: 0, length: 5 },
        transp: { offset: 0, length: 0 },
      }
    : {
        bitsPerPixel,
        red: { offset: 16, length: 8 },
        green: { offset: 8, length: 8 },
        blue: { offset: 0, length: 8 },
        transp: { offset: 24, length: 0 },
      };
}

/** The pixel format in a filled `struct fb_var_screeninfo`. */
export function decodePixelFormat(info: Uint8Array): PixelFormat {
  const view = new DataView(info.buffer, info.byteOffset, info.byteLength);
  const field = (at: number): Bitfield => ({
    offset: view.getUint32(at, true),
    length: view.getUint32(at + 4, true),
  });
  return {
    bitsPerPixel: view.getUint32(BITS_PER_PIXEL, true),
    red: field(RED),
    green: field(GREEN),
    blue: field(BLUE),
    transp: field(TRANSP),
  };
}

/** A `struct fb_var_screeninfo` as the kernel fills it (for the simulator). */
export function encodeVarScreenInfo(info: {
  readonly width: number;
  readonly height: number;
  readonly virtualWidth: number;
  readonly virtualHeight: number;
  readonly format: PixelFormat;
}): Uint8Array {
  const bytes = new Uint8Array(FB_VAR_SCREENINFO_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, info.width, true);
  view.setUint32(4, info.height, true);
  view.setUint32(8, info.virtualWidth, true);
  view.setUint32(12, info.virtualHeight, true);
  view.setUint32(BITS_PER_PIXEL, info.format.bitsPerPixel, true);
  for (const [at, field] of [
    [RED, info.format.red],
    [GREEN, info.format.green],
    [BLUE, info.format.blue],
    [TRANSP, info.format.transp],
  ] as const) {
    view.setUint32(at, field.offset, true);
    view.setUint32(at + 4, field.length, true);
  }
  return bytes;
}

/**
 * Whether the driver can draw in `format`: true-colour channels of 1-8 bits, inside the pixel and
 * not overlapping. Anything else (a palette, grayscale, msb_right) is not ours to draw.
 */
export function drawablePixelFormat(format: PixelFormat): boolean {
  const channels = [format.red, format.green, format.blue];
  let used = 0;
  for (const { offset, length } of channels) {
    if (length < 1 || length > 8 || offset + length > format.bitsPerPixel) return false;
    const mask = ((1 << length) - 1) << offset;
    if ((used & mask) !== 0) return false;
    used |= mask;
  }
  return true;
}

/** "RGB565", "BGR565", "XRGB8888", "XBGR8888", or the bitfields for anything else: for messages and logs. */
export function describePixelFormat(format: PixelFormat): string {
  const { red, green, blue } = format;
  const order = [
    ["R", red],
    ["G", green],
    ["B", blue],
  ] as const;
  const sorted = [...order].sort((a, b) => b[1].offset - a[1].offset);
  const lengths = sorted.map(([, field]) => field.length).join("");
  const spare = format.bitsPerPixel - red.length - green.length - blue.length;
  return `${spare > 0 ? "X" : ""}${sorted.map(([name]) => name).join("")}${spare > 0 ? spare : ""}${lengths}`;
}

/** The bits of a pixel no colour channel uses (the X byte of XRGB8888): set, so that anything reading them as alpha sees opaque. */
export function spareBits(format: PixelFormat): number {
  let used = 0;
  for (const { offset, length } of [format.red, format.green, format.blue])
    used |= ((1 << length) - 1) << offset;
  const all = format.bitsPerPixel >= 32 ? 0xffffffff : (1 << format.bitsPerPixel) - 1;
  return (all & ~used) >>> 0;
}

/** A pixel's value from 8-bit channels, each cut to its length (plus `spare`, see spareBits). */
export function packPixel(format: PixelFormat, r: number, g: number, b: number, spare: number): number {
  const put = (value: number, field: Bitfield): number => (value >> (8 - field.length)) << field.offset;
  return (put(r, format.red) | put(g, format.green) | put(b, format.blue) | spare) >>> 0;
}

/** The 8-bit channels of a pixel value, each widened back by bit replication, as display hardware does. */
export function unpackPixel(format: PixelFormat, value: number): [number, number, number] {
  const get = (field: Bitfield): number => {
    const bits = (value >>> field.offset) & ((1 << field.length) - 1);
    let wide = 0;
    for (let shift = 8 - field.length; shift > -field.length; shift -= field.length)
      wide |= shift >= 0 ? bits << shift : bits >> -shift;
    return wide & 0xff;
  };
  return [get(format.red), get(format.green), get(format.blue)];
}
