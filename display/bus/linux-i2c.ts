import { Errno, errnoName } from "../../agent/linux/errno.ts";
import { type Libc, O_CLOEXEC, O_RDWR } from "../../agent/linux/libc.ts";
import { BusError, formatI2CAddress, openError } from "./errors.ts";
import { I2C_FUNC_SMBUS_QUICK, I2C_FUNCS, I2C_SLAVE, I2C_SMBUS, I2C_SMBUS_IOCTL_DATA_SIZE } from "./ioctl.ts";
import { busLibc } from "./libc.ts";
import type { I2CBus } from "./types.ts";

export interface LinuxI2CBusOptions {
  /** Where the device nodes live; "/dev" unless a test points elsewhere. */
  readonly devDir?: string;
  /** A libc to use instead of loading one (tests hand in a fake kernel). */
  readonly libc?: Libc;
  /** glibc by default (Raspberry Pi OS). */
  readonly libcPath?: string;
}

/** i2c-dev's write(2) handles at most 8192 bytes (drivers/i2c/i2c-dev.c clamps `count`). */
export const I2C_DEV_MAX_WRITE = 8192;

/**
 * The addresses where i2cdetect's default mode reads a byte instead of a quick write: a quick write
 * can corrupt some EEPROMs (0x50–0x5F) and lock up some chips at 0x30–0x37 (i2cdetect(8)).
 */
function readsToProbe(address: number): boolean {
  return (address >= 0x30 && address <= 0x37) || (address >= 0x50 && address <= 0x5f);
}

/**
 * One I2C adapter through i2c-dev: `ioctl(fd, I2C_SLAVE, address)` selects the target of later
 * read(2)/write(2) calls (<linux/i2c-dev.h>), so the address is set only when it changes.
 * I2C_SLAVE fails with EBUSY when a kernel driver owns the address.
 */
export class LinuxI2CBus implements I2CBus {
  readonly path: string;
  readonly #libc: Libc;
  #fd: number | undefined;
  #address: number | undefined;

  private constructor(path: string, libc: Libc, fd: number) {
    this.path = path;
    this.#libc = libc;
    this.#fd = fd;
  }

  /** Opens `/dev/i2c-<busNumber>` (1 is the header's SDA/SCL on pins 3 and 5). */
  static async open(busNumber: number, options: LinuxI2CBusOptions = {}): Promise<LinuxI2CBus> {
    if (!Number.isInteger(busNumber) || busNumber < 0) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `Invalid I2C bus number ${busNumber}: use 1 for the header pins.`,
      });
    }
    const libc = await busLibc(options.libc, options.libcPath).get();
    const path = `${options.devDir ?? "/dev"}/i2c-${busNumber}`;
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) throw openError("i2c", path, libc.errno());
    return new LinuxI2CBus(path, libc, fd);
  }

  /**
   * One write transaction (START, address+W, data, STOP). Empty data is a no-op: a zero-length
   * write is a probe, and the rp1 controller of the Pi 5 (i2c-designware) refuses it.
   */
  async write(address: number, data: Uint8Array): Promise<void> {
    const fd = this.#open();
    this.#checkAddress(address);
    if (data.length > I2C_DEV_MAX_WRITE) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `An I2C write of ${data.length} bytes is too long: i2c-dev sends at most ${I2C_DEV_MAX_WRITE} per transaction.`,
      });
    }
    if (data.length === 0) return;
    this.#select(fd, address);
    const written = this.#libc.write(fd, data);
    if (written === data.length) return;
    if (written >= 0) {
      throw new BusError("E_BUS_IO", {
        message: `Only ${written} of ${data.length} bytes reached ${formatI2CAddress(address)} on ${this.path}: check the wiring.`,
        details: { path: this.path, address },
      });
    }
    throw this.#transferError(address, this.#libc.errno());
  }

  /**
   * Whether a device acknowledges `address`, as `i2cdetect -y` decides it: an SMBus quick write
   * (I2C_SMBUS ioctl, size I2C_SMBUS_QUICK: address+W and STOP, no data) when the adapter offers it
   * (I2C_FUNCS has I2C_FUNC_SMBUS_QUICK), else a one-byte read(2) — which is also what it does at
   * 0x30–0x37 and 0x50–0x5F. The Pi 5's rp1 (i2c-designware) has no quick write, so it reads.
   * An address a kernel driver owns (I2C_SLAVE fails EBUSY; i2cdetect shows "UU") answers true.
   */
  async probe(address: number): Promise<boolean> {
    const fd = this.#open();
    this.#checkAddress(address);
    if (this.#libc.ioctl(fd, I2C_SLAVE, address) < 0) {
      this.#address = undefined;
      return this.#libc.errno() === Errno.EBUSY;
    }
    this.#address = address;
    if (!readsToProbe(address) && this.#hasQuickWrite(fd)) {
      // struct i2c_smbus_ioctl_data all zero: read_write = I2C_SMBUS_WRITE (0), command 0,
      // size = I2C_SMBUS_QUICK (0), data = NULL.
      return this.#libc.ioctl(fd, I2C_SMBUS, new Uint8Array(I2C_SMBUS_IOCTL_DATA_SIZE)) === 0;
    }
    return this.#libc.read(fd, new Uint8Array(1)) === 1;
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    this.#libc.close(fd);
  }

  #open(): number {
    if (this.#fd === undefined) {
      throw new BusError("E_BUS_CLOSED", { details: { path: this.path } });
    }
    return this.#fd;
  }

  #checkAddress(address: number): void {
    // 7-bit addresses; 0x00–0x02 and 0x78–0x7F are reserved by the I2C specification.
    if (!Number.isInteger(address) || address < 0x03 || address > 0x77) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `Invalid I2C address ${String(address)}: use a 7-bit address from 0x03 to 0x77 (0x27 and 0x3F are common).`,
      });
    }
  }

  #select(fd: number, address: number): void {
    if (this.#address === address) return;
    if (this.#libc.ioctl(fd, I2C_SLAVE, address) < 0) {
      const errno = this.#libc.errno();
      this.#address = undefined;
      if (errno === Errno.EBUSY) {
        throw new BusError("E_I2C_ADDRESS_BUSY", {
          errno: errnoName(errno),
          details: { path: this.path, address },
          message: `A kernel driver already owns ${formatI2CAddress(address)} on ${this.path}: remove its dtoverlay from /boot/firmware/config.txt (or unbind the driver) and reboot.`,
        });
      }
      throw this.#transferError(address, errno);
    }
    this.#address = address;
  }

  #hasQuickWrite(fd: number): boolean {
    // unsigned long, 8 bytes on the 64-bit targets Bun supports.
    const funcs = new Uint8Array(8);
    if (this.#libc.ioctl(fd, I2C_FUNCS, funcs) < 0) return false;
    return (new DataView(funcs.buffer).getUint32(0, true) & I2C_FUNC_SMBUS_QUICK) !== 0;
  }

  #transferError(address: number, errno: number | undefined): BusError {
    return i2cTransferError(this.path, address, errno);
  }
}

/**
 * A failed transfer: EREMOTEIO (no ACK to the address: i2c-bcm2835 on Pi 1–4, i2c-designware on
 * the Pi 5's rp1) and ENXIO (the same from SMBus-only adapters) mean nothing answered; anything
 * else is a bus error with its errno named.
 */
export function i2cTransferError(path: string, address: number, errno: number | undefined): BusError {
  const name = errnoName(errno);
  const at = formatI2CAddress(address);
  const details = { path, address };
  if (errno === Errno.ENXIO || errno === Errno.EREMOTEIO) {
    const bus = path.slice(path.lastIndexOf("-") + 1);
    return new BusError("E_I2C_NO_DEVICE", {
      errno: name,
      details,
      message: `No device answers at ${at} on ${path}: check the wiring, or find the address with 'i2cdetect -y ${bus}' (0x27 and 0x3F are common).`,
    });
  }
  return new BusError("E_BUS_IO", {
    errno: name,
    details,
    message: `I2C transfer to ${at} on ${path} failed (${name}): check the wiring, the pull-ups and the power of the device.`,
  });
}
