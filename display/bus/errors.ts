import { EntraToolError, type ErrorCode } from "../../agent/core/errors.ts";
import { Errno, errnoName } from "../../agent/linux/errno.ts";

/**
 * Errors of the real buses (/dev/i2c-N, /dev/spidevB.C, the GPIO character device, sysfs GPIO).
 * Each has a stable code to branch on and one sentence that says what went wrong and the fix
 * (the raspi-config option, the group, the address). Display code catches these, shows the
 * sentence, and keeps the other displays (and the sign-in) running.
 */

/** The part of the catalogue (agent/core/errors.ts) that the buses raise. */
export type BusErrorCode = Extract<
  ErrorCode,
  | "E_BUS_UNAVAILABLE"
  | "E_I2C_NOT_ENABLED"
  | "E_SPI_NOT_ENABLED"
  | "E_GPIO_NOT_AVAILABLE"
  | "E_BUS_PERMISSION"
  | "E_I2C_NO_DEVICE"
  | "E_I2C_ADDRESS_BUSY"
  | "E_GPIO_LINE_BUSY"
  | "E_GPIO_LINE_NOT_FOUND"
  | "E_GPIO_CHIP_NOT_FOUND"
  | "E_BUS_UNSUPPORTED"
  | "E_BUS_ARGUMENT"
  | "E_BUS_IO"
  | "E_BUS_CLOSED"
>;

export interface BusErrorOptions {
  /** Replaces the catalogue sentence; must still be one sentence with the fix. */
  readonly message?: string;
  /** The errno name (EACCES, ENXIO…) when the error came from a system call. */
  readonly errno?: string;
  readonly cause?: unknown;
  /** For logs: the device path, address, line… */
  readonly details?: Readonly<Record<string, unknown>>;
}

export class BusError extends EntraToolError {
  override readonly name = "BusError";
  declare readonly code: BusErrorCode;
  readonly errno: string | undefined;

  constructor(code: BusErrorCode, options: BusErrorOptions = {}) {
    super(code, {
      ...(options.message === undefined ? {} : { message: options.message }),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      ...(options.details === undefined ? {} : { details: options.details }),
    });
    this.errno = options.errno;
  }
}

export function isBusError(value: unknown, code?: BusErrorCode): value is BusError {
  return value instanceof BusError && (code === undefined || value.code === code);
}

/** 0x27, 0x3F: the way i2cdetect and datasheets write addresses. */
export function formatI2CAddress(address: number): string {
  return `0x${address.toString(16).toUpperCase().padStart(2, "0")}`;
}

export type DeviceKind = "i2c" | "spi" | "gpio";

/** The Raspberry Pi OS group that owns each kind of device node (udev rules of raspberrypi-sys-mods). */
const GROUPS: Readonly<Record<DeviceKind, string>> = { i2c: "i2c", spi: "spi", gpio: "gpio" };

/**
 * The error for a failed open(2) of a device node: ENOENT means the interface is not enabled,
 * EACCES/EPERM means the user is not in the device's group; anything else is an I/O error.
 */
export function openError(kind: DeviceKind, path: string, errno: number | undefined): BusError {
  const name = errnoName(errno);
  const details = { path };
  if (errno === Errno.EACCES || errno === Errno.EPERM) {
    const group = GROUPS[kind];
    return new BusError("E_BUS_PERMISSION", {
      errno: name,
      details,
      message: `Permission denied on ${path}: add the user to group ${group} (sudo usermod -aG ${group} $USER) and log in again.`,
    });
  }
  if (errno === Errno.ENOENT || errno === Errno.ENODEV || errno === Errno.ENXIO) {
    if (kind === "i2c") {
      // raspi-config's I2C option enables i2c_arm, which is /dev/i2c-1; other buses need an overlay.
      return path.endsWith("/i2c-1")
        ? new BusError("E_I2C_NOT_ENABLED", { errno: name, details })
        : new BusError("E_I2C_NOT_ENABLED", {
            errno: name,
            details,
            message: `${path} does not exist: enable that I2C bus with a dtoverlay in /boot/firmware/config.txt and reboot.`,
          });
    }
    if (kind === "spi") {
      return path.includes("/spidev0.")
        ? new BusError("E_SPI_NOT_ENABLED", { errno: name, details })
        : new BusError("E_SPI_NOT_ENABLED", {
            errno: name,
            details,
            message: `${path} does not exist: enable that SPI bus with a dtoverlay (spi1-1cs…) in /boot/firmware/config.txt and reboot.`,
          });
    }
    return new BusError("E_GPIO_NOT_AVAILABLE", { errno: name, details });
  }
  return new BusError("E_BUS_IO", {
    errno: name,
    details,
    message: `Cannot open ${path} (${name}): check that the device exists and that its driver is loaded.`,
  });
}

/** ENOTTY/ENOSYS/EOPNOTSUPP from an ioctl: the kernel (or qemu-user) does not know the request. */
export function isUnsupportedErrno(errno: number | undefined): boolean {
  return errno === Errno.ENOTTY || errno === Errno.ENOSYS || errno === Errno.EOPNOTSUPP;
}
