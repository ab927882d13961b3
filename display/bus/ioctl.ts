/**
 * ioctl request numbers, computed the way the kernel's _IOC macro does
 * (<asm-generic/ioctl.h>, used by x86_64 and arm64): nr in bits 0–7, type in 8–15, argument size
 * in 16–29, direction in 30–31. Every constant below is checked in test/display/bus/ioctl.test.ts
 * against the value the C headers produce.
 */
import {
  GPIO_V2_LINE_INFO_SIZE,
  GPIO_V2_LINE_REQUEST_SIZE,
  GPIO_V2_LINE_VALUES_SIZE,
  GPIOCHIP_INFO_SIZE,
} from "./gpio-uapi.ts";

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

const NRSHIFT = 0;
const TYPESHIFT = 8;
const SIZESHIFT = 16;
const DIRSHIFT = 30;
const SIZEMASK = (1 << 14) - 1;

/** _IOC(dir, type, nr, size) as an unsigned 32-bit number. */
export function ioc(direction: number, type: number, nr: number, size: number): number {
  if (size < 0 || size > SIZEMASK)
    throw new RangeError(`ioctl argument size ${size} does not fit in 14 bits`);
  return ((direction << DIRSHIFT) | (type << TYPESHIFT) | (nr << NRSHIFT) | (size << SIZESHIFT)) >>> 0;
}
export const io = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
/** The kernel writes the struct (userspace reads it). */
export const ior = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
/** Userspace writes the struct (the kernel reads it). */
export const iow = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);
export const iowr = (type: number, nr: number, size: number): number =>
  ioc(IOC_READ | IOC_WRITE, type, nr, size);

// <linux/i2c-dev.h>. These predate _IOC and are plain numbers (I2C_SLAVE happens to equal _IO(7, 3)).
/** Sets the 7-bit address of later read(2)/write(2) calls; argument passed by value. */
export const I2C_SLAVE = 0x0703;
/** Reads the adapter's functionality mask (unsigned long, 8 bytes on 64-bit). */
export const I2C_FUNCS = 0x0705;
/** One SMBus transfer described by struct i2c_smbus_ioctl_data. */
export const I2C_SMBUS = 0x0720;
// <linux/i2c.h>
export const I2C_FUNC_I2C = 0x00000001;
export const I2C_FUNC_SMBUS_QUICK = 0x00010000;
/**
 * sizeof(struct i2c_smbus_ioctl_data) on 64-bit: __u8 read_write @0, __u8 command @1,
 * __u32 size @4, union i2c_smbus_data *data @8.
 */
export const I2C_SMBUS_IOCTL_DATA_SIZE = 16;

// <linux/spi/spidev.h>: SPI_IOC_MAGIC 'k'.
const SPI_IOC_MAGIC = 0x6b;
/** _IOW(SPI_IOC_MAGIC, 1, __u8): SPI mode 0–3 (CPOL/CPHA bits). */
export const SPI_IOC_WR_MODE = iow(SPI_IOC_MAGIC, 1, 1);
/** _IOW(SPI_IOC_MAGIC, 4, __u32): the default transfer speed in Hz. */
export const SPI_IOC_WR_MAX_SPEED_HZ = iow(SPI_IOC_MAGIC, 4, 4);

// <linux/gpio.h>, uAPI v2 (Linux 5.10+).
const GPIO_IOC_MAGIC = 0xb4;
/** _IOR(0xB4, 0x01, struct gpiochip_info) */
export const GPIO_GET_CHIPINFO_IOCTL = ior(GPIO_IOC_MAGIC, 0x01, GPIOCHIP_INFO_SIZE);
/** _IOWR(0xB4, 0x05, struct gpio_v2_line_info) */
export const GPIO_V2_GET_LINEINFO_IOCTL = iowr(GPIO_IOC_MAGIC, 0x05, GPIO_V2_LINE_INFO_SIZE);
/** _IOWR(0xB4, 0x07, struct gpio_v2_line_request) */
export const GPIO_V2_GET_LINE_IOCTL = iowr(GPIO_IOC_MAGIC, 0x07, GPIO_V2_LINE_REQUEST_SIZE);
/** _IOWR(0xB4, 0x0E, struct gpio_v2_line_values) */
export const GPIO_V2_LINE_GET_VALUES_IOCTL = iowr(GPIO_IOC_MAGIC, 0x0e, GPIO_V2_LINE_VALUES_SIZE);
/** _IOWR(0xB4, 0x0F, struct gpio_v2_line_values) */
export const GPIO_V2_LINE_SET_VALUES_IOCTL = iowr(GPIO_IOC_MAGIC, 0x0f, GPIO_V2_LINE_VALUES_SIZE);
