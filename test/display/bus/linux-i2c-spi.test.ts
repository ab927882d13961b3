import { describe, expect, test } from "vitest";
import { Errno } from "../../../agent/linux/errno.ts";
import { isBusError } from "../../../display/bus/errors.ts";
import {
  I2C_FUNC_I2C,
  I2C_FUNC_SMBUS_QUICK,
  I2C_FUNCS,
  I2C_SLAVE,
  I2C_SMBUS,
  SPI_IOC_WR_MAX_SPEED_HZ,
  SPI_IOC_WR_MODE,
} from "../../../display/bus/ioctl.ts";
import { LinuxI2CBus } from "../../../display/bus/linux-i2c.ts";
import { LinuxSpiBus } from "../../../display/bus/linux-spi.ts";
import { bytesOf, FakeLibc, type FakeResult } from "./fake-libc.ts";

/** An i2c-dev node with devices at `present`; `owned` addresses belong to a kernel driver. */
function i2cKernel(options: { present: number[]; owned?: number[]; funcs?: number }): FakeLibc {
  const libc = new FakeLibc();
  let address = -1;
  const nack = (): FakeResult => (options.present.includes(address) ? 1 : { errno: Errno.EREMOTEIO });
  libc.devices.set("/dev/i2c-1", {
    ioctl: (request, arg) => {
      if (request === I2C_SLAVE && typeof arg === "number") {
        if (options.owned?.includes(arg)) return { errno: Errno.EBUSY };
        address = arg;
        return 0;
      }
      if (request === I2C_FUNCS && typeof arg !== "number") {
        new DataView(arg.buffer, arg.byteOffset).setUint32(0, options.funcs ?? I2C_FUNC_I2C, true);
        return 0;
      }
      if (request === I2C_SMBUS) return options.present.includes(address) ? 0 : { errno: Errno.ENXIO };
      return { errno: Errno.ENOTTY };
    },
    write: (data) => (options.present.includes(address) ? data.length : { errno: Errno.EREMOTEIO }),
    read: () => nack(),
  });
  return libc;
}

describe("LinuxI2CBus against a fake i2c-dev", () => {
  test("sets I2C_SLAVE only when the address changes, then writes the bytes", async () => {
    const libc = i2cKernel({ present: [0x27, 0x3c] });
    const bus = await LinuxI2CBus.open(1, { libc });
    await bus.write(0x27, Uint8Array.of(1, 2));
    await bus.write(0x27, Uint8Array.of(3));
    await bus.write(0x3c, Uint8Array.of(4));
    const summary = libc.calls.map((c) => (c.call === "ioctl" ? `slave ${c.arg}` : `${c.call} ${c.arg}`));
    expect(summary).toEqual(["slave 39", "write 1,2", "write 3", "slave 60", "write 4"]);
    await bus.close();
    expect(libc.openFds).toEqual([]);
  });

  test("no ACK at the address gives the i2cdetect sentence", async () => {
    const bus = await LinuxI2CBus.open(1, { libc: i2cKernel({ present: [] }) });
    const error = await bus.write(0x27, Uint8Array.of(0)).catch((e: unknown) => e);
    expect(isBusError(error, "E_I2C_NO_DEVICE")).toBe(true);
    expect((error as Error).message).toBe(
      "No device answers at 0x27 on /dev/i2c-1: check the wiring, or find the address with 'i2cdetect -y 1' (0x27 and 0x3F are common).",
    );
  });

  test("an address a kernel driver owns is E_I2C_ADDRESS_BUSY on write and present on probe", async () => {
    const bus = await LinuxI2CBus.open(1, { libc: i2cKernel({ present: [], owned: [0x3c] }) });
    const error = await bus.write(0x3c, Uint8Array.of(0)).catch((e: unknown) => e);
    expect(isBusError(error, "E_I2C_ADDRESS_BUSY")).toBe(true);
    expect(await bus.probe(0x3c)).toBe(true);
  });

  test("probe uses the SMBus quick write when offered, and a 1-byte read at 0x50–0x5F", async () => {
    const libc = i2cKernel({ present: [0x27, 0x50], funcs: I2C_FUNC_I2C | I2C_FUNC_SMBUS_QUICK });
    const bus = await LinuxI2CBus.open(1, { libc });
    expect(await bus.probe(0x27)).toBe(true);
    expect(await bus.probe(0x3f)).toBe(false);
    const quick = libc.calls.filter((c) => c.request === I2C_SMBUS);
    expect(quick).toHaveLength(2);
    expect([...bytesOf(quick[0])]).toEqual(new Array(16).fill(0));
    libc.calls.length = 0;
    expect(await bus.probe(0x50)).toBe(true);
    expect(libc.calls.map((c) => c.call)).toEqual(["ioctl", "read"]);
  });

  test("probe reads one byte where the adapter has no quick write (the Pi 5's rp1)", async () => {
    const libc = i2cKernel({ present: [0x3c], funcs: I2C_FUNC_I2C });
    const bus = await LinuxI2CBus.open(1, { libc });
    expect(await bus.probe(0x3c)).toBe(true);
    expect(await bus.probe(0x3d)).toBe(false);
    expect(libc.calls.some((c) => c.request === I2C_SMBUS)).toBe(false);
  });

  test("bad addresses, oversized writes and use after close are refused", async () => {
    const libc = i2cKernel({ present: [0x27] });
    const bus = await LinuxI2CBus.open(1, { libc });
    expect(
      isBusError(await bus.write(0x80, Uint8Array.of(0)).catch((e: unknown) => e), "E_BUS_ARGUMENT"),
    ).toBe(true);
    expect(
      isBusError(await bus.write(0x27, new Uint8Array(8193)).catch((e: unknown) => e), "E_BUS_ARGUMENT"),
    ).toBe(true);
    await bus.write(0x27, new Uint8Array(0));
    expect(libc.calls).toEqual([]);
    await bus.close();
    await bus.close();
    expect(isBusError(await bus.probe(0x27).catch((e: unknown) => e), "E_BUS_CLOSED")).toBe(true);
  });

  test("EACCES at open names group i2c", async () => {
    const libc = new FakeLibc();
    libc.devices.set("/dev/i2c-1", { openErrno: Errno.EACCES });
    const error = await LinuxI2CBus.open(1, { libc }).catch((e: unknown) => e);
    expect(isBusError(error, "E_BUS_PERMISSION")).toBe(true);
    expect((error as Error).message).toContain("sudo usermod -aG i2c $USER");
  });
});

describe("LinuxSpiBus against a fake spidev", () => {
  function spiKernel(): { libc: FakeLibc; writes: number[] } {
    const libc = new FakeLibc();
    const writes: number[] = [];
    libc.devices.set("/dev/spidev0.0", {
      ioctl: () => 0,
      // spidev refuses a transfer longer than bufsiz with EMSGSIZE.
      write: (data) => {
        if (data.length > 4096) return { errno: 90 };
        writes.push(data.length);
        return data.length;
      },
    });
    return { libc, writes };
  }

  test("sets mode (u8) and speed (u32) at open, then writes in chunks of at most 4096 bytes", async () => {
    const { libc, writes } = spiKernel();
    const bus = await LinuxSpiBus.open(0, 0, { libc, speedHz: 8_000_000, mode: 3 });
    const mode = bytesOf(libc.calls.find((c) => c.request === SPI_IOC_WR_MODE));
    const speed = bytesOf(libc.calls.find((c) => c.request === SPI_IOC_WR_MAX_SPEED_HZ));
    expect([...mode]).toEqual([3]);
    expect(new DataView(speed.buffer).getUint32(0, true)).toBe(8_000_000);
    const frame = Uint8Array.from({ length: 10_000 }, (_, i) => i & 0xff);
    await bus.write(frame);
    expect(writes).toEqual([4096, 4096, 1808]);
    const sent = libc.calls.filter((c) => c.call === "write").map((c) => [...bytesOf(c)]);
    expect(sent.flat()).toEqual([...frame]);
    await bus.close();
    expect(libc.openFds).toEqual([]);
  });

  test("defaults to mode 0 at 4 MHz and rejects a bad mode before opening", async () => {
    const { libc } = spiKernel();
    await LinuxSpiBus.open(0, 0, { libc });
    expect([...bytesOf(libc.calls[0])]).toEqual([0]);
    const speed = bytesOf(libc.calls[1]);
    expect(new DataView(speed.buffer).getUint32(0, true)).toBe(4_000_000);
    const error = await LinuxSpiBus.open(0, 0, { libc, mode: 4 }).catch((e: unknown) => e);
    expect(isBusError(error, "E_BUS_ARGUMENT")).toBe(true);
  });

  test("a failed write names the errno; EACCES at open names group spi", async () => {
    const { libc } = spiKernel();
    const bus = await LinuxSpiBus.open(0, 0, { libc, chunkBytes: 8192 });
    const error = await bus.write(new Uint8Array(5000)).catch((e: unknown) => e);
    expect(isBusError(error, "E_BUS_IO")).toBe(true);
    expect((error as Error).message).toContain("errno 90");
    libc.devices.set("/dev/spidev0.1", { openErrno: Errno.EACCES });
    const denied = await LinuxSpiBus.open(0, 1, { libc }).catch((e: unknown) => e);
    expect((denied as Error).message).toContain("group spi");
  });
});
