import { type FileHandle, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { SerialQueue } from "../../../agent/core/serial.ts";
import { type Libc, openLibc } from "../../../agent/linux/libc.ts";
import { DisplayError } from "../../errors.ts";
import type { Rotation } from "../../schema.ts";
import type { Screen } from "../../screens.ts";
import { type FramebufferFrame, framebufferFrame, type Region } from "./layout.ts";
import {
  decodePixelFormat,
  defaultPixelFormat,
  describePixelFormat,
  drawablePixelFormat,
  FB_VAR_SCREENINFO_SIZE,
  FBIOGET_VSCREENINFO,
  type PixelFormat,
  packPixel,
  spareBits,
  unpackPixel,
} from "./pixel-format.ts";

/**
 * Linux framebuffer (`/dev/fbN`): HDMI to a TV or monitor. With the KMS driver
 * (`dtoverlay=vc4-kms-v3d`, the Raspberry Pi OS default) the kernel's fbdev emulation gives one
 * fbN per connected display.
 *
 * Geometry and depth come from sysfs (`/sys/class/graphics/fbN/`): `virtual_size` ("1920,1080"),
 * `bits_per_pixel` ("16" or "32"), `stride` (bytes per line, which may exceed width x bytes per
 * pixel) and, when present, `mode` ("U:1920x1080p-0", the visible part when the virtual size is
 * larger for panning). The channel layout is read from the device (FBIOGET_VSCREENINFO's red,
 * green and blue bitfields, pixel-format.ts), so a BGR panel (BGR565, XBGR8888) shows the right
 * colours; where that ioctl is not to be had, RGB565 and XRGB8888 (bytes B, G, R, X in memory),
 * the formats fbdev emulation on KMS offers, are assumed.
 *
 * `rotate` turns the picture clockwise on the screen (a monitor on its side); at 90 and 270 the
 * screens are laid out for the height as width.
 *
 * The device is written as a file, with positional writes (no mmap from Bun without FFI). The
 * driver keeps the bytes it last wrote and sends only the bands of rows that changed, one write
 * per band: a countdown tick rewrites the countdown's rows (about 1/7 of the screen at 1080p), a
 * new screen what differs. Whole rows, not rectangles, because a band of rows is contiguous in
 * the file and so costs one write; rectangles would cost one write per row. The first frame is
 * written whole, since the framebuffer holds whatever the console left there.
 *
 * The console cursor may still blink on fb0 over our picture: boot with
 * `vt.global_cursor_default=0`, or give the console another fb (`con2fbmap`).
 */

export type FramebufferErrorCode =
  /** No such framebuffer (no display connected, or no KMS/fbdev driver). */
  | "E_FB_ABSENT"
  /** The device exists but this user may not write it (not in group video). */
  | "E_FB_PERMISSION"
  /** sysfs describes a depth or geometry this driver does not draw. */
  | "E_FB_FORMAT"
  /** A write to the device failed. */
  | "E_FB_WRITE";

export class FramebufferError extends DisplayError<FramebufferErrorCode> {
  override readonly name = "FramebufferError";
}

export interface FramebufferGeometry {
  /** Visible pixels, what the driver draws. */
  readonly width: number;
  readonly height: number;
  readonly virtualWidth: number;
  readonly virtualHeight: number;
  readonly bitsPerPixel: 16 | 32;
  /** Bytes from one line to the next in the device. */
  readonly stride: number;
  /** Where each channel sits in a pixel (FBIOGET_VSCREENINFO); the KMS default until read. */
  readonly format: PixelFormat;
}

/** The one ioctl the driver makes: FBIOGET_VSCREENINFO (libc's, or a simulator's). */
export type FramebufferIoctl = Pick<Libc, "ioctl" | "errno">;

export interface FramebufferPaths {
  /** N in fbN; default 0. */
  readonly device?: number;
  /** Where sysfs is mounted; default "/sys" (a temp dir in tests). */
  readonly sysfsRoot?: string;
  /** Where device nodes are; default "/dev". */
  readonly devRoot?: string;
  /** How the pixel format is read off the open device; default libc's ioctl (bun:ffi), loaded on open. */
  readonly ioctl?: FramebufferIoctl;
  /** The picture turned clockwise on the screen; default 0. */
  readonly rotate?: Rotation;
}

export interface FramebufferStats {
  /** Positional writes to the device. */
  readonly writes: number;
  /** Bytes written to the device. */
  readonly bytes: number;
}

function codeOf(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined;
}

function absent(devicePath: string, cause?: unknown): FramebufferError {
  return new FramebufferError(
    "E_FB_ABSENT",
    `No framebuffer at ${devicePath}: is a display connected and 'dtoverlay=vc4-kms-v3d' set? The terminal display keeps working.`,
    cause,
  );
}

/** Reads fbN's geometry and depth from sysfs. */
export async function readFramebufferGeometry(paths: FramebufferPaths = {}): Promise<FramebufferGeometry> {
  const device = paths.device ?? 0;
  const dir = join(paths.sysfsRoot ?? "/sys", "class", "graphics", `fb${device}`);
  const devicePath = join(paths.devRoot ?? "/dev", `fb${device}`);
  const read = async (name: string): Promise<string | undefined> => {
    try {
      return (await readFile(join(dir, name), "utf8")).trim();
    } catch (error) {
      if (codeOf(error) === "ENOENT") return undefined;
      throw error;
    }
  };
  const virtualSize = await read("virtual_size");
  const bpp = await read("bits_per_pixel");
  if (virtualSize === undefined || bpp === undefined) throw absent(devicePath);
  const size = /^(\d+),(\d+)$/.exec(virtualSize);
  const virtualWidth = Number(size?.[1] ?? 0);
  const virtualHeight = Number(size?.[2] ?? 0);
  if (virtualWidth < 1 || virtualHeight < 1) {
    throw new FramebufferError(
      "E_FB_FORMAT",
      `${join(dir, "virtual_size")} says "${virtualSize}", not a size like "1920,1080".`,
    );
  }
  if (bpp !== "16" && bpp !== "32") {
    throw new FramebufferError(
      "E_FB_FORMAT",
      `fb${device} is ${bpp} bits per pixel; this driver draws 16 (RGB565/BGR565) and 32 (XRGB8888/XBGR8888). Set 'framebuffer_depth=32' in /boot/firmware/config.txt.`,
    );
  }
  const bitsPerPixel = bpp === "16" ? 16 : 32;
  // `mode` is absent on some drivers; the visible size then is the virtual size.
  const mode = /(\d+)x(\d+)/.exec((await read("mode")) ?? "");
  const width = Math.min(virtualWidth, Number(mode?.[1] ?? virtualWidth));
  const height = Math.min(virtualHeight, Number(mode?.[2] ?? virtualHeight));
  const strideText = await read("stride");
  const stride = strideText === undefined ? (virtualWidth * bitsPerPixel) / 8 : Number(strideText);
  if (!Number.isInteger(stride) || stride < (width * bitsPerPixel) / 8) {
    throw new FramebufferError(
      "E_FB_FORMAT",
      `${join(dir, "stride")} says "${strideText ?? ""}", less than a ${width}-pixel line at ${bitsPerPixel} bpp.`,
    );
  }
  const format = defaultPixelFormat(bitsPerPixel);
  return { width, height, virtualWidth, virtualHeight, bitsPerPixel, stride, format };
}

/**
 * The device's pixel format, read with FBIOGET_VSCREENINFO on the open device; the KMS default
 * for its depth when the ioctl is not to be had (no bun:ffi, a device that does not answer it).
 * A format the driver cannot draw (a palette, grayscale, a depth other than sysfs said) is an
 * E_FB_FORMAT error with the fix.
 */
export async function readPixelFormat(
  fd: number,
  geometry: FramebufferGeometry,
  ioctl: FramebufferIoctl | undefined,
  devicePath: string,
): Promise<PixelFormat> {
  let libc = ioctl;
  if (libc === undefined) {
    try {
      libc = await openLibc();
    } catch {
      return geometry.format;
    }
  }
  const info = new Uint8Array(FB_VAR_SCREENINFO_SIZE);
  if (libc.ioctl(fd, FBIOGET_VSCREENINFO, info) < 0) return geometry.format;
  const format = decodePixelFormat(info);
  if (format.bitsPerPixel !== geometry.bitsPerPixel || !drawablePixelFormat(format)) {
    throw new FramebufferError(
      "E_FB_FORMAT",
      `${devicePath} reports a pixel format this driver does not draw (${format.bitsPerPixel} bpp, ${describePixelFormat(format)}); set 'framebuffer_depth=32' in /boot/firmware/config.txt.`,
    );
  }
  return format;
}

/** 8-bit channels reduced to the device's channel lengths and widened back (bit replication), as the glass shows them. */
export function quantise(rgb: Uint8Array, format: PixelFormat): Uint8Array {
  const out = new Uint8Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    const [r, g, b] = unpackPixel(
      format,
      packPixel(format, rgb[i] ?? 0, rgb[i + 1] ?? 0, rgb[i + 2] ?? 0, 0),
    );
    out[i] = r;
    out[i + 1] = g;
    out[i + 2] = b;
  }
  return out;
}

/** `rgb` (width x height) in the device's memory layout: `stride` bytes a line, little-endian pixels. */
function encode(frame: FramebufferFrame, geometry: FramebufferGeometry): Uint8Array {
  const { width, height, stride, bitsPerPixel, format } = geometry;
  const out = new Uint8Array(stride * height);
  const view = new DataView(out.buffer);
  const rgb = frame.rgb;
  // X is ignored by the scanout; set, it keeps the picture opaque should anything read it as alpha.
  const spare = spareBits(format);
  for (let y = 0; y < height; y++) {
    let o = y * stride;
    let i = y * width * 3;
    for (let x = 0; x < width; x++, i += 3) {
      const v = packPixel(format, rgb[i] ?? 0, rgb[i + 1] ?? 0, rgb[i + 2] ?? 0, spare);
      if (bitsPerPixel === 16) {
        view.setUint16(o, v, true);
        o += 2;
      } else {
        view.setUint32(o, v, true);
        o += 4;
      }
    }
  }
  return out;
}

/** `frame` turned clockwise by `rotate` (its width and height swap at 90 and 270), regions with it. */
export function rotateFrame(frame: FramebufferFrame, rotate: Rotation): FramebufferFrame {
  if (rotate === 0) return frame;
  const { width: w, height: h } = frame;
  const quarter = rotate === 90 || rotate === 270;
  const width = quarter ? h : w;
  const height = quarter ? w : h;
  const rgb = new Uint8Array(frame.rgb.length);
  // Where source pixel (x, y) lands.
  const to = (x: number, y: number): [number, number] =>
    rotate === 90 ? [h - 1 - y, x] : rotate === 180 ? [w - 1 - x, h - 1 - y] : [y, w - 1 - x];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [tx, ty] = to(x, y);
      const from = (y * w + x) * 3;
      const at = (ty * width + tx) * 3;
      rgb[at] = frame.rgb[from] ?? 0;
      rgb[at + 1] = frame.rgb[from + 1] ?? 0;
      rgb[at + 2] = frame.rgb[from + 2] ?? 0;
    }
  }
  const region = (r: Region | undefined): Region | undefined => {
    if (r === undefined) return undefined;
    const [ax, ay] = to(r.x, r.y);
    const [bx, by] = to(r.x + r.width - 1, r.y + r.height - 1);
    return {
      x: Math.min(ax, bx),
      y: Math.min(ay, by),
      width: Math.abs(bx - ax) + 1,
      height: Math.abs(by - ay) + 1,
    };
  };
  return {
    width,
    height,
    rgb,
    codeRegion: region(frame.codeRegion),
    countdownRegion: region(frame.countdownRegion),
    qrRegion: region(frame.qrRegion),
  };
}

/** Runs of consecutive rows that differ between `before` and `after`: [first, end) pairs. */
export function dirtyBands(
  before: Uint8Array | undefined,
  after: Uint8Array,
  stride: number,
  height: number,
): Array<readonly [number, number]> {
  if (before === undefined) return [[0, height]];
  const bands: Array<readonly [number, number]> = [];
  let start = -1;
  for (let y = 0; y <= height; y++) {
    let dirty = false;
    if (y < height) {
      const a = y * stride;
      for (let i = a; i < a + stride; i++) {
        if (before[i] !== after[i]) {
          dirty = true;
          break;
        }
      }
    }
    if (dirty && start < 0) start = y;
    if (!dirty && start >= 0) {
      bands.push([start, y]);
      start = -1;
    }
  }
  return bands;
}

export class FramebufferDisplay {
  readonly geometry: FramebufferGeometry;
  readonly devicePath: string;
  readonly #file: FileHandle;
  /** The bytes the device holds from us; undefined until the first frame (or after a failed write). */
  #shown: Uint8Array | undefined;
  #frame: FramebufferFrame;
  readonly #rotate: Rotation;
  #writes = 0;
  #bytes = 0;
  readonly #queue = new SerialQueue();

  private constructor(geometry: FramebufferGeometry, devicePath: string, file: FileHandle, rotate: Rotation) {
    this.geometry = geometry;
    this.#rotate = rotate;
    this.devicePath = devicePath;
    this.#file = file;
    this.#frame = {
      width: geometry.width,
      height: geometry.height,
      rgb: new Uint8Array(geometry.width * geometry.height * 3),
      codeRegion: undefined,
      countdownRegion: undefined,
      qrRegion: undefined,
    };
  }

  /** Reads the geometry from sysfs, opens the device for writing and reads its pixel format. */
  static async open(paths: FramebufferPaths = {}): Promise<FramebufferDisplay> {
    const devicePath = join(paths.devRoot ?? "/dev", `fb${paths.device ?? 0}`);
    const geometry = await readFramebufferGeometry(paths);
    let file: FileHandle;
    try {
      // "r+": write without truncating or creating; a device node cannot be created by mistake.
      file = await open(devicePath, "r+");
    } catch (error) {
      const code = codeOf(error);
      if (code === "ENOENT" || code === "ENXIO" || code === "ENODEV") throw absent(devicePath, error);
      if (code === "EACCES" || code === "EPERM") {
        throw new FramebufferError(
          "E_FB_PERMISSION",
          `Permission denied on ${devicePath}: add this user to group video ('sudo usermod -aG video $USER', then log in again). The terminal display keeps working.`,
          error,
        );
      }
      throw error;
    }
    try {
      const format = await readPixelFormat(file.fd, geometry, paths.ioctl, devicePath);
      return new FramebufferDisplay({ ...geometry, format }, devicePath, file, paths.rotate ?? 0);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** Draws `screen` as it should look at `now` (epoch ms), writing only the rows that changed. */
  show(screen: Screen, now: number): Promise<void> {
    return this.#queue.run(() => {
      const { width, height } = this.geometry;
      const quarter = this.#rotate === 90 || this.#rotate === 270;
      const page = framebufferFrame(screen, now, quarter ? height : width, quarter ? width : height);
      return this.#draw(rotateFrame(page, this.#rotate));
    });
  }

  /** Black, everywhere we draw. */
  clear(): Promise<void> {
    return this.#queue.run(() =>
      this.#draw({
        ...this.#frame,
        rgb: new Uint8Array(this.#frame.rgb.length),
        codeRegion: undefined,
        countdownRegion: undefined,
        qrRegion: undefined,
      }),
    );
  }

  /** The last frame as the glass shows it (channels at the device's depth), for previews and PNGs. */
  frameRgb(): { width: number; height: number; rgb: Uint8Array } {
    return {
      width: this.#frame.width,
      height: this.#frame.height,
      rgb: quantise(this.#frame.rgb, this.geometry.format),
    };
  }

  /** The last frame's layout (where the code, countdown and QR code are, on the screen as turned). */
  get layout(): Omit<FramebufferFrame, "rgb"> {
    const { rgb: _, ...rest } = this.#frame;
    return rest;
  }

  get stats(): FramebufferStats {
    return { writes: this.#writes, bytes: this.#bytes };
  }

  async close(): Promise<void> {
    await this.#queue.idle();
    await this.#file.close();
  }

  async #draw(frame: FramebufferFrame): Promise<void> {
    const { stride, height } = this.geometry;
    const next = encode(frame, this.geometry);
    const bands = dirtyBands(this.#shown, next, stride, height);
    this.#frame = frame;
    try {
      for (const [y0, y1] of bands) {
        const length = (y1 - y0) * stride;
        const { bytesWritten } = await this.#file.write(next, y0 * stride, length, y0 * stride);
        if (bytesWritten !== length) throw new Error(`short write: ${bytesWritten} of ${length} bytes`);
        this.#writes++;
        this.#bytes += length;
      }
    } catch (error) {
      // Part of the frame may be missing: the next frame goes in whole.
      this.#shown = undefined;
      const why = error instanceof Error ? error.message : String(error);
      throw new FramebufferError(
        "E_FB_WRITE",
        `Writing to ${this.devicePath} failed (${why}). The terminal display keeps working.`,
        error,
      );
    }
    this.#shown = next;
  }
}
