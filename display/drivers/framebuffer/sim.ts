import { readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Libc } from "../../../agent/linux/libc.ts";
import { noise } from "../../sim/noise.ts";
import {
  defaultPixelFormat,
  encodeVarScreenInfo,
  FB_VAR_SCREENINFO_SIZE,
  FBIOGET_VSCREENINFO,
  type PixelFormat,
  unpackPixel,
} from "./pixel-format.ts";

/**
 * A Linux framebuffer as the driver finds it: a fake sysfs directory
 * (`<root>/sys/class/graphics/fbN/{virtual_size,bits_per_pixel,stride,mode}`) and a device file
 * (`<root>/dev/fbN`) of `stride x virtual height` bytes, both in a temp dir, so the driver runs its
 * real file I/O unchanged. `rgb()` decodes what was written back into 8-bit RGB, independently of
 * the driver, in the device's pixel format (`format`: RGB565 little-endian for 16 bpp and
 * B G R X bytes for 32 bpp unless told, e.g. a BGR panel), channels widened by bit replication
 * (r5 -> r5 << 3 | r5 >> 2), as display hardware does. `ioctl` answers FBIOGET_VSCREENINFO on an
 * fd open on the device file, with the struct the kernel would fill.
 *
 * The device starts with deterministic noise (what the console left behind), so a driver that
 * draws only part of its first frame shows garbage. A real fbdev rejects writes past its end
 * (EFBIG/ENOSPC); a plain file would grow, so `rgb()` rejects a device that grew.
 */

export class FramebufferSimulatorError extends Error {
  override readonly name = "FramebufferSimulatorError";
  /** E_RANGE: written past the device's end; E_FORMAT: a depth the simulator does not decode. */
  readonly code: "E_RANGE" | "E_FORMAT";

  constructor(code: "E_RANGE" | "E_FORMAT", message: string) {
    super(message);
    this.code = code;
  }
}

export interface FramebufferSimulatorOptions {
  readonly width: number;
  readonly height: number;
  readonly bitsPerPixel: 16 | 32 | 24 | 8;
  /** Bytes per line; default width x bytes per pixel (drivers may pad lines: pass more). */
  readonly stride?: number;
  /** Virtual height (panning); default `height`. */
  readonly virtualHeight?: number;
  /** N in fbN; default 0. */
  readonly device?: number;
  /** Write the `mode` file ("U:WxHp-0"); default true. */
  readonly mode?: boolean;
  /** Create the device node; default true. False models a board with no display connected. */
  readonly withDevice?: boolean;
  /** Where the channels sit in a pixel; default RGB565 (16 bpp) or XRGB8888 (32 bpp). */
  readonly format?: PixelFormat;
}

const ENOTTY = 25;

export class FramebufferSimulator {
  readonly root: string;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly devicePath: string;
  readonly device: number;
  readonly width: number;
  readonly height: number;
  readonly bitsPerPixel: number;
  readonly stride: number;
  readonly size: number;
  readonly format: PixelFormat | undefined;
  /** FBIOGET_VSCREENINFO on the device, as the kernel answers it: what the driver reads its pixel format with. */
  readonly ioctl: Pick<Libc, "ioctl" | "errno">;
  /** FBIOGET_VSCREENINFO calls answered. */
  screenInfoReads = 0;
  readonly #options: FramebufferSimulatorOptions;
  #errno: number | undefined;
  /** The device file's real path (the temp dir may be reached through a symlink). */
  #realDevicePath = "";

  private constructor(root: string, options: FramebufferSimulatorOptions) {
    this.#options = options;
    this.root = root;
    this.sysfsRoot = join(root, "sys");
    this.devRoot = join(root, "dev");
    this.device = options.device ?? 0;
    this.devicePath = join(this.devRoot, `fb${this.device}`);
    this.width = options.width;
    this.height = options.height;
    this.bitsPerPixel = options.bitsPerPixel;
    this.stride = options.stride ?? (options.width * options.bitsPerPixel) / 8;
    this.size = this.stride * (options.virtualHeight ?? options.height);
    const bpp = options.bitsPerPixel;
    this.format = options.format ?? (bpp === 16 || bpp === 32 ? defaultPixelFormat(bpp) : undefined);
    this.ioctl = {
      ioctl: (fd, request, arg) => this.#ioctl(fd, request, arg),
      errno: () => this.#errno,
    };
  }

  #ioctl(fd: number, request: number, arg: Uint8Array | number): number {
    let target: string | undefined;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      target = undefined;
    }
    // Only the device answers, as only an fbdev driver knows the request.
    if (target !== this.#realDevicePath || request !== FBIOGET_VSCREENINFO || typeof arg === "number") {
      this.#errno = ENOTTY;
      return -1;
    }
    if (arg.length < FB_VAR_SCREENINFO_SIZE || this.format === undefined) {
      this.#errno = ENOTTY;
      return -1;
    }
    this.screenInfoReads++;
    arg.set(
      encodeVarScreenInfo({
        width: this.width,
        height: this.height,
        virtualWidth: this.width,
        virtualHeight: this.#options.virtualHeight ?? this.height,
        format: this.format,
      }),
    );
    return 0;
  }

  static async create(options: FramebufferSimulatorOptions): Promise<FramebufferSimulator> {
    const sim = new FramebufferSimulator(await mkdtemp(join(tmpdir(), "entratool-fb-")), options);
    const dir = join(sim.sysfsRoot, "class", "graphics", `fb${sim.device}`);
    await mkdir(dir, { recursive: true });
    await mkdir(sim.devRoot, { recursive: true });
    const virtualHeight = options.virtualHeight ?? options.height;
    await writeFile(join(dir, "virtual_size"), `${options.width},${virtualHeight}\n`);
    await writeFile(join(dir, "bits_per_pixel"), `${options.bitsPerPixel}\n`);
    await writeFile(join(dir, "stride"), `${sim.stride}\n`);
    if (options.mode ?? true) await writeFile(join(dir, "mode"), `U:${options.width}x${options.height}p-0\n`);
    if (options.withDevice ?? true) {
      await writeFile(sim.devicePath, noise(sim.size, 0xfb0));
      sim.#realDevicePath = await realpath(sim.devicePath);
    }
    return sim;
  }

  /** The raw device bytes. */
  async bytes(): Promise<Uint8Array> {
    const { size } = await stat(this.devicePath);
    if (size !== this.size) {
      throw new FramebufferSimulatorError(
        "E_RANGE",
        `The framebuffer device is ${this.size} bytes but ${size} were written: a write went past its end.`,
      );
    }
    return new Uint8Array(await readFile(this.devicePath));
  }

  /** The visible picture, 3 bytes a pixel, row-major: what a person sees on the TV. */
  async rgb(): Promise<Uint8Array> {
    const bytes = await this.bytes();
    const format = this.format;
    if (format === undefined) {
      throw new FramebufferSimulatorError(
        "E_FORMAT",
        `The simulator decodes 16 and 32 bpp, not ${this.bitsPerPixel}.`,
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Uint8Array(this.width * this.height * 3);
    const pixelBytes = this.bitsPerPixel / 8;
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const at = y * this.stride + x * pixelBytes;
        const v = pixelBytes === 2 ? view.getUint16(at, true) : view.getUint32(at, true);
        out.set(unpackPixel(format, v), (y * this.width + x) * 3);
      }
    }
    return out;
  }

  /** Removes the temp dir. */
  async dispose(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
