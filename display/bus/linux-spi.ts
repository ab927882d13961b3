import { errnoName } from "../../agent/linux/errno.ts";
import { type Libc, O_CLOEXEC, O_RDWR } from "../../agent/linux/libc.ts";
import { BusError, openError } from "./errors.ts";
import { SPI_IOC_WR_MAX_SPEED_HZ, SPI_IOC_WR_MODE } from "./ioctl.ts";
import { busLibc } from "./libc.ts";
import type { SpiBus } from "./types.ts";

/**
 * spidev's default `bufsiz` module parameter: a read(2)/write(2) longer than this fails EMSGSIZE
 * (drivers/spi/spidev.c), so longer writes are sent in chunks of at most this size.
 */
export const SPIDEV_DEFAULT_BUFSIZ = 4096;

export interface LinuxSpiBusOptions {
  /** SCLK in Hz; 4 MHz by default (SSD1680 panels allow up to 20 MHz for writes). */
  readonly speedHz?: number;
  /** SPI mode 0–3 (CPOL, CPHA); 0 by default, as SSD1306/SSD1680 expect. */
  readonly mode?: number;
  /** Largest single write(2); SPIDEV_DEFAULT_BUFSIZ unless spidev.bufsiz was raised. */
  readonly chunkBytes?: number;
  /** Where the device nodes live; "/dev" unless a test points elsewhere. */
  readonly devDir?: string;
  readonly libc?: Libc;
  readonly libcPath?: string;
}

/**
 * One SPI device through spidev, transmit-only: SPI_IOC_WR_MODE and SPI_IOC_WR_MAX_SPEED_HZ
 * (<linux/spi/spidev.h>) once at open, then plain write(2) (half duplex; MISO is ignored).
 * Chip select is released between chunks, which the panels we drive accept: their DC line, not CS,
 * separates commands from data.
 */
export class LinuxSpiBus implements SpiBus {
  readonly path: string;
  readonly #libc: Libc;
  readonly #chunkBytes: number;
  #fd: number | undefined;

  private constructor(path: string, libc: Libc, fd: number, chunkBytes: number) {
    this.path = path;
    this.#libc = libc;
    this.#fd = fd;
    this.#chunkBytes = chunkBytes;
  }

  /** Opens `/dev/spidev<bus>.<chipSelect>` (0.0 is CE0 on pin 24, 0.1 is CE1 on pin 26). */
  static async open(bus: number, chipSelect: number, options: LinuxSpiBusOptions = {}): Promise<LinuxSpiBus> {
    const { speedHz = 4_000_000, mode = 0, chunkBytes = SPIDEV_DEFAULT_BUFSIZ } = options;
    if (!Number.isInteger(bus) || bus < 0 || !Number.isInteger(chipSelect) || chipSelect < 0) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `Invalid SPI device ${bus}.${chipSelect}: use bus 0 and chip select 0 or 1.`,
      });
    }
    if (!Number.isInteger(mode) || mode < 0 || mode > 3) {
      throw new BusError("E_BUS_ARGUMENT", { message: `Invalid SPI mode ${mode}: use 0, 1, 2 or 3.` });
    }
    if (!Number.isInteger(speedHz) || speedHz < 1 || speedHz > 0xffff_ffff) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `Invalid SPI speed ${speedHz} Hz: use a whole number such as 4000000.`,
      });
    }
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `Invalid SPI chunk size ${chunkBytes}: use spidev's bufsiz (4096).`,
      });
    }
    const libc = await busLibc(options.libc, options.libcPath).get();
    const path = `${options.devDir ?? "/dev"}/spidev${bus}.${chipSelect}`;
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) throw openError("spi", path, libc.errno());
    try {
      // __u8 for the mode, __u32 for the speed: the sizes in the _IOW definitions.
      setting(libc, fd, path, SPI_IOC_WR_MODE, Uint8Array.of(mode), `mode ${mode}`);
      const speed = new Uint8Array(4);
      new DataView(speed.buffer).setUint32(0, speedHz, true);
      setting(libc, fd, path, SPI_IOC_WR_MAX_SPEED_HZ, speed, `speed ${speedHz} Hz`);
    } catch (error) {
      libc.close(fd);
      throw error;
    }
    return new LinuxSpiBus(path, libc, fd, chunkBytes);
  }

  async write(data: Uint8Array): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) throw new BusError("E_BUS_CLOSED", { details: { path: this.path } });
    for (let at = 0; at < data.length; at += this.#chunkBytes) {
      const chunk = data.subarray(at, at + this.#chunkBytes);
      const written = this.#libc.write(fd, chunk);
      if (written === chunk.length) continue;
      const name = written < 0 ? errnoName(this.#libc.errno()) : `short write of ${written}`;
      throw new BusError("E_BUS_IO", {
        errno: written < 0 ? name : undefined,
        details: { path: this.path, offset: at },
        message: `SPI write to ${this.path} failed (${name}): check that spidev.bufsiz is at least ${this.#chunkBytes} and the wiring.`,
      });
    }
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    this.#libc.close(fd);
  }
}

function setting(libc: Libc, fd: number, path: string, request: number, arg: Uint8Array, what: string): void {
  if (libc.ioctl(fd, request, arg) === 0) return;
  const name = errnoName(libc.errno());
  throw new BusError("E_BUS_ARGUMENT", {
    errno: name,
    details: { path },
    message: `${path} refused SPI ${what} (${name}): use mode 0–3 and a speed the controller supports.`,
  });
}
