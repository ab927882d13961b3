/**
 * Errors of the real buses (/dev/i2c-N, /dev/spidevB.C, the GPIO character device, sysfs GPIO).
 * Each has a stable code to branch on and one sentence that says what went wrong and the fix
 * (the raspi-config option, the group, the address). Display code catches these, shows the
 * sentence, and keeps the other displays (and the sign-in) running.
 */

export const BUS_ERRORS = {
  E_BUS_UNAVAILABLE:
    "The C library cannot be loaded for device access: entratool needs Bun on Linux with glibc.",
  E_I2C_NOT_ENABLED:
    "I2C is not enabled: run 'sudo raspi-config nonint do_i2c 0' (Interface Options → I2C) and reboot.",
  E_SPI_NOT_ENABLED:
    "SPI is not enabled: run 'sudo raspi-config nonint do_spi 0' (Interface Options → SPI) and reboot.",
  E_GPIO_NOT_AVAILABLE:
    "No GPIO character device (/dev/gpiochip*) was found: run on the board itself, or pass /dev/gpiochip* into the container.",
  E_BUS_PERMISSION:
    "Permission denied on the device: add the user to its group (i2c, spi or gpio) and log in again.",
  E_I2C_NO_DEVICE:
    "No device answers at that address: check the wiring, or find the address with 'i2cdetect -y 1'.",
  E_I2C_ADDRESS_BUSY:
    "A kernel driver already owns that I2C address: unload the driver (or remove its dtoverlay) first.",
  E_GPIO_LINE_BUSY: "The GPIO line is already in use: stop the program that holds it or choose another pin.",
  E_GPIO_LINE_NOT_FOUND:
    "No GPIO line has that name: list the lines with 'gpioinfo' and use a name shown there.",
  E_GPIO_CHIP_NOT_FOUND: "No GPIO chip has that label: list the chips with 'gpiodetect'.",
  E_BUS_UNSUPPORTED:
    "The kernel does not support this operation on the device: this needs Linux 5.10 or later.",
  E_BUS_ARGUMENT: "Invalid bus setting: check the display configuration.",
  E_BUS_IO: "Input/output error on the bus: check the wiring and the power of the device.",
  E_BUS_CLOSED: "The bus was already closed: this is a bug in entratool, please report it.",
} as const;

export type BusErrorCode = keyof typeof BUS_ERRORS;

export interface BusErrorOptions {
  /** Replaces the catalogue sentence; must still be one sentence with the fix. */
  readonly message?: string;
  /** The errno name (EACCES, ENXIO…) when the error came from a system call. */
  readonly errno?: string;
  readonly cause?: unknown;
  /** For logs: the device path, address, line… */
  readonly details?: Readonly<Record<string, unknown>>;
}

export class BusError extends Error {
  override readonly name = "BusError";
  readonly code: BusErrorCode;
  readonly errno: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: BusErrorCode, options: BusErrorOptions = {}) {
    super(options.message ?? BUS_ERRORS[code], options.cause === undefined ? {} : { cause: options.cause });
    this.code = code;
    this.errno = options.errno;
    this.details = options.details ?? {};
  }
}

export function isBusError(value: unknown, code?: BusErrorCode): value is BusError {
  return value instanceof BusError && (code === undefined || value.code === code);
}

/** <asm-generic/errno-base.h> and <asm-generic/errno.h>: the same numbers on x86_64 and arm64. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  EREMOTEIO: 121,
} as const;

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Errno).map(([name, n]) => [n, name]));

/** "EACCES", or "errno 42" for one we do not name, or "unknown errno" when it could not be read. */
export function errnoName(errno: number | undefined): string {
  if (errno === undefined) return "unknown errno";
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
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
