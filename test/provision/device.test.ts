import { describe, expect, it } from "vitest";
import { boardSerial, expandDevice, type ProvisionFs } from "../../agent/provision/provision.ts";

/** Only readFile is used to find the serial number. */
function filesFs(files: Record<string, string>): ProvisionFs {
  const none = async (): Promise<void> => undefined;
  return {
    readFile: async (path) => (path in files ? new TextEncoder().encode(files[path]) : undefined),
    exists: async (path) => path in files,
    mkdir: none,
    chown: none,
    chmod: none,
    unlink: none,
    rename: none,
    fsync: none,
  };
}

describe("the device id's pattern", () => {
  const board = { serial: "9a3bc4de", hostname: "raspberrypi.lan" };

  it("puts in the serial, its last 8 digits and the host name's first label", () => {
    expect(expandDevice("pi-{serial8}", { ...board, serial: "100000009a3bc4de" })).toEqual({
      device: "pi-9a3bc4de",
    });
    expect(expandDevice("{hostname}-{serial}", board)).toEqual({ device: "raspberrypi-9a3bc4de" });
    // A short serial is padded to 8 digits, as Raspberry Pi OS shows it.
    expect(expandDevice("pi-{serial8}", { ...board, serial: "abc" })).toEqual({ device: "pi-00000abc" });
    expect(expandDevice("kitchen", board)).toEqual({ device: "kitchen" });
  });

  it("names an unknown placeholder, and a serial the board does not have", () => {
    expect(expandDevice("pi-{mac}", board)).toEqual({
      error: "device: {mac} is not a placeholder (use {serial}, {serial8} or {hostname})",
    });
    expect(expandDevice("pi-{serial}", { ...board, serial: undefined })).toEqual({
      error: "device: this board has no serial number to put into {serial}: use {hostname}",
    });
  });
});

describe("the board's serial number", () => {
  it("comes from the device tree (NUL-terminated), without leading zeros, in lower case", async () => {
    const fs = filesFs({ "/r/proc/device-tree/serial-number": "100000009A3BC4DE\0" });
    expect(await boardSerial(fs, "/r")).toBe("100000009a3bc4de");
    expect(
      await boardSerial(
        filesFs({ "/r/sys/firmware/devicetree/base/serial-number": "00000000deadbeef\0" }),
        "/r",
      ),
    ).toBe("deadbeef");
  });

  it("else from /proc/cpuinfo; an all-zero or missing one is no serial", async () => {
    const cpuinfo =
      "processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 00000000c0ffee42\nModel\t\t: Raspberry Pi\n";
    expect(await boardSerial(filesFs({ "/proc/cpuinfo": cpuinfo }), "/")).toBe("c0ffee42");
    expect(
      await boardSerial(filesFs({ "/proc/cpuinfo": "Serial\t\t: 0000000000000000\n" }), "/"),
    ).toBeUndefined();
    expect(await boardSerial(filesFs({}), "/")).toBeUndefined();
  });
});
