import { describe, expect, test } from "vitest";
import { Errno, errnoName } from "../../../agent/linux/errno.ts";
import { BusError, formatI2CAddress, isBusError, openError } from "../../../display/bus/errors.ts";
import { i2cTransferError } from "../../../display/bus/linux-i2c.ts";

describe("errno → sentence", () => {
  test("ENOENT on /dev/i2c-1: I2C is not enabled, with the raspi-config command", () => {
    const error = openError("i2c", "/dev/i2c-1", Errno.ENOENT);
    expect(error.code).toBe("E_I2C_NOT_ENABLED");
    expect(error.errno).toBe("ENOENT");
    expect(error.message).toBe(
      "I2C is not enabled: run 'sudo raspi-config nonint do_i2c 0' (Interface Options → I2C) and reboot.",
    );
  });

  test("ENOENT on another I2C bus points at its overlay", () => {
    const error = openError("i2c", "/dev/i2c-3", Errno.ENOENT);
    expect(error.code).toBe("E_I2C_NOT_ENABLED");
    expect(error.message).toContain("/dev/i2c-3 does not exist");
  });

  test("ENOENT on /dev/spidev0.0: SPI is not enabled", () => {
    const error = openError("spi", "/dev/spidev0.0", Errno.ENOENT);
    expect(error.code).toBe("E_SPI_NOT_ENABLED");
    expect(error.message).toBe(
      "SPI is not enabled: run 'sudo raspi-config nonint do_spi 0' (Interface Options → SPI) and reboot.",
    );
  });

  test.each([
    ["i2c", "/dev/i2c-1"],
    ["spi", "/dev/spidev0.0"],
    ["gpio", "/dev/gpiochip0"],
  ] as const)("EACCES on %s names the group to join", (kind, path) => {
    const error = openError(kind, path, Errno.EACCES);
    expect(error.code).toBe("E_BUS_PERMISSION");
    expect(error.message).toBe(
      `Permission denied on ${path}: add the user to group ${kind} (sudo usermod -aG ${kind} $USER) and log in again.`,
    );
  });

  test("another errno at open is an I/O error naming it", () => {
    const error = openError("i2c", "/dev/i2c-1", Errno.EIO);
    expect(error.code).toBe("E_BUS_IO");
    expect(error.message).toContain("(EIO)");
  });

  test.each([Errno.ENXIO, Errno.EREMOTEIO])("errno %i on a write: no device at the address", (errno) => {
    const error = i2cTransferError("/dev/i2c-1", 0x27, errno);
    expect(error.code).toBe("E_I2C_NO_DEVICE");
    expect(error.message).toBe(
      "No device answers at 0x27 on /dev/i2c-1: check the wiring, or find the address with 'i2cdetect -y 1' (0x27 and 0x3F are common).",
    );
  });

  test("errno names, addresses and the type guard", () => {
    expect(errnoName(Errno.EBUSY)).toBe("EBUSY");
    expect(errnoName(200)).toBe("errno 200");
    expect(errnoName(undefined)).toBe("unknown errno");
    expect(formatI2CAddress(0x3f)).toBe("0x3F");
    expect(formatI2CAddress(0x3)).toBe("0x03");
    expect(isBusError(new BusError("E_BUS_IO"), "E_BUS_IO")).toBe(true);
    expect(isBusError(new Error("x"))).toBe(false);
  });
});
