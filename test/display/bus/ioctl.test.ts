import { describe, expect, test } from "vitest";
import {
  GPIO_GET_CHIPINFO_IOCTL,
  GPIO_V2_GET_LINE_IOCTL,
  GPIO_V2_GET_LINEINFO_IOCTL,
  GPIO_V2_LINE_GET_VALUES_IOCTL,
  GPIO_V2_LINE_SET_VALUES_IOCTL,
  I2C_FUNC_SMBUS_QUICK,
  I2C_FUNCS,
  I2C_SLAVE,
  I2C_SMBUS,
  io,
  ioc,
  ior,
  iow,
  iowr,
  SPI_IOC_WR_MAX_SPEED_HZ,
  SPI_IOC_WR_MODE,
} from "../../../display/bus/ioctl.ts";

// Expected values: what gcc prints for the macros of <linux/i2c-dev.h>, <linux/i2c.h>,
// <linux/spi/spidev.h> and <linux/gpio.h> (x86_64 and arm64 share asm-generic/ioctl.h).
describe("ioctl request numbers", () => {
  test.each([
    ["SPI_IOC_WR_MODE", SPI_IOC_WR_MODE, 0x40016b01],
    ["SPI_IOC_WR_MAX_SPEED_HZ", SPI_IOC_WR_MAX_SPEED_HZ, 0x40046b04],
    ["GPIO_GET_CHIPINFO_IOCTL", GPIO_GET_CHIPINFO_IOCTL, 0x8044b401],
    ["GPIO_V2_GET_LINEINFO_IOCTL", GPIO_V2_GET_LINEINFO_IOCTL, 0xc100b405],
    ["GPIO_V2_GET_LINE_IOCTL", GPIO_V2_GET_LINE_IOCTL, 0xc250b407],
    ["GPIO_V2_LINE_GET_VALUES_IOCTL", GPIO_V2_LINE_GET_VALUES_IOCTL, 0xc010b40e],
    ["GPIO_V2_LINE_SET_VALUES_IOCTL", GPIO_V2_LINE_SET_VALUES_IOCTL, 0xc010b40f],
    ["I2C_SLAVE", I2C_SLAVE, 0x0703],
    ["I2C_FUNCS", I2C_FUNCS, 0x0705],
    ["I2C_SMBUS", I2C_SMBUS, 0x0720],
    ["I2C_FUNC_SMBUS_QUICK", I2C_FUNC_SMBUS_QUICK, 0x00010000],
  ])("%s", (_name, actual, expected) => {
    expect(actual).toBe(expected);
  });

  test("_IOC puts nr, type, size and direction in their bit fields, unsigned", () => {
    expect(ioc(3, 0xff, 0xff, 0x3fff)).toBe(0xffffffff);
    expect(io(0x07, 0x03)).toBe(I2C_SLAVE);
    expect(ior(0xb4, 1, 68) >>> 30).toBe(2);
    expect(iow(0x6b, 1, 1) >>> 30).toBe(1);
    expect((iowr(0xb4, 7, 592) >>> 16) & 0x3fff).toBe(592);
    expect(() => ioc(1, 0, 0, 0x4000)).toThrow(RangeError);
  });
});
