import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { Errno } from "../../../agent/linux/errno.ts";
import { O_CLOEXEC, O_RDWR, openLibc } from "../../../agent/linux/libc.ts";
import { isBusError } from "../../../display/bus/errors.ts";
import { GpioCdev } from "../../../display/bus/gpio-cdev.ts";
import { I2C_SLAVE } from "../../../display/bus/ioctl.ts";
import { LinuxI2CBus } from "../../../display/bus/linux-i2c.ts";
import { LinuxSpiBus } from "../../../display/bus/linux-spi.ts";

/**
 * The real libc through bun:ffi, against what this machine has: regular files and missing paths.
 * (No I2C, SPI or GPIO devices here; their ioctls on a regular file fail ENOTTY, which proves the
 * call reached the kernel and errno was read back.)
 */
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-bus-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("libc through bun:ffi", () => {
  test("open, write a sub-array, read, close, and errno after a failure", async () => {
    const libc = await openLibc();
    const path = join(dir, "data.bin");
    await writeFile(path, "");
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(libc.write(fd, Uint8Array.of(9, 1, 2, 3, 9).subarray(1, 4))).toBe(3);
    expect(libc.close(fd)).toBe(0);
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    const again = libc.open(path, O_RDWR | O_CLOEXEC);
    const buffer = new Uint8Array(8);
    expect(libc.read(again, buffer)).toBe(3);
    expect([...buffer.subarray(0, 3)]).toEqual([1, 2, 3]);
    expect(libc.ioctl(again, I2C_SLAVE, 0x27)).toBe(-1);
    expect(libc.errno()).toBe(Errno.ENOTTY);
    libc.close(again);
    expect(libc.open(join(dir, "missing"), O_RDWR)).toBe(-1);
    expect(libc.errno()).toBe(Errno.ENOENT);
  });

  test("a missing /dev/i2c-1 says I2C is not enabled", async () => {
    const error = await LinuxI2CBus.open(1, { devDir: dir }).catch((e: unknown) => e);
    expect(isBusError(error, "E_I2C_NOT_ENABLED")).toBe(true);
    expect((error as Error).message).toBe(
      "I2C is not enabled: run 'sudo raspi-config nonint do_i2c 0' (Interface Options → I2C) and reboot.",
    );
  });

  test("a missing /dev/spidev0.0 says SPI is not enabled", async () => {
    const error = await LinuxSpiBus.open(0, 0, { devDir: dir }).catch((e: unknown) => e);
    expect(isBusError(error, "E_SPI_NOT_ENABLED")).toBe(true);
  });

  test("a node that is not spidev refuses the mode ioctl, and the fd is closed", async () => {
    await writeFile(join(dir, "spidev0.1"), "");
    const error = await LinuxSpiBus.open(0, 1, { devDir: dir }).catch((e: unknown) => e);
    expect(isBusError(error, "E_BUS_ARGUMENT")).toBe(true);
    expect((error as Error).message).toContain("(ENOTTY)");
  });

  test("an I2C node that answers ENOTTY to I2C_SLAVE fails the write with an I/O error", async () => {
    await writeFile(join(dir, "i2c-7"), "");
    const bus = await LinuxI2CBus.open(7, { devDir: dir });
    const error = await bus.write(0x27, Uint8Array.of(1)).catch((e: unknown) => e);
    expect(isBusError(error, "E_BUS_IO")).toBe(true);
    await bus.close();
  });

  test("GPIO: no gpiochip in the directory, then a chip node the kernel does not know", async () => {
    const gpio = new GpioCdev({ clock: new VirtualClock(), devDir: dir });
    expect(isBusError(await gpio.chips().catch((e: unknown) => e), "E_GPIO_NOT_AVAILABLE")).toBe(true);
    await writeFile(join(dir, "gpiochip0"), "");
    const error = await gpio.chips().catch((e: unknown) => e);
    expect(isBusError(error, "E_BUS_UNSUPPORTED")).toBe(true);
    expect((error as Error).message).toContain("ENOTTY");
  });
});
