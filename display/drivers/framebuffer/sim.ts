import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { noise } from "../../sim/noise.ts";

/**
 * A Linux framebuffer as the driver finds it: a fake sysfs directory
 * (`<root>/sys/class/graphics/fbN/{virtual_size,bits_per_pixel,stride,mode}`) and a device file
 * (`<root>/dev/fbN`) of `stride x virtual height` bytes, both in a temp dir, so the driver runs its
 * real file I/O unchanged. `rgb()` decodes what was written back into 8-bit RGB, independently of
 * the driver: RGB565 little-endian for 16 bpp, B G R X bytes for 32 bpp, channels widened by bit
 * replication (r5 -> r5 << 3 | r5 >> 2), as display hardware does.
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
}

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

  private constructor(root: string, options: FramebufferSimulatorOptions) {
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
    if (options.withDevice ?? true) await writeFile(sim.devicePath, noise(sim.size, 0xfb0));
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
    const out = new Uint8Array(this.width * this.height * 3);
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const o = (y * this.width + x) * 3;
        if (this.bitsPerPixel === 16) {
          const at = y * this.stride + x * 2;
          const v = (bytes[at] ?? 0) | ((bytes[at + 1] ?? 0) << 8);
          const r = v >> 11;
          const g = (v >> 5) & 0x3f;
          const b = v & 0x1f;
          out[o] = (r << 3) | (r >> 2);
          out[o + 1] = (g << 2) | (g >> 4);
          out[o + 2] = (b << 3) | (b >> 2);
        } else if (this.bitsPerPixel === 32) {
          const at = y * this.stride + x * 4;
          out[o] = bytes[at + 2] ?? 0;
          out[o + 1] = bytes[at + 1] ?? 0;
          out[o + 2] = bytes[at] ?? 0;
        } else {
          throw new FramebufferSimulatorError(
            "E_FORMAT",
            `The simulator decodes 16 and 32 bpp, not ${this.bitsPerPixel}.`,
          );
        }
      }
    }
    return out;
  }

  /** Removes the temp dir. */
  async dispose(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
