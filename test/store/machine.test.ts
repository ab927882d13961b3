import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MachineIdentity, UNKNOWN_MACHINE } from "../../agent/store/machine.ts";
import { captureLogger, makeTempDir } from "./helpers.ts";

describe("MachineIdentity", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  const identity = (logger = captureLogger().logger) =>
    new MachineIdentity({
      logger,
      machineIdFiles: [join(dir, "etc-machine-id"), join(dir, "dbus-machine-id")],
      serialNumberFile: join(dir, "serial-number"),
      cpuinfoFile: join(dir, "cpuinfo"),
    });

  it("combines the machine id and the device-tree serial, and is stable", async () => {
    await writeFile(join(dir, "etc-machine-id"), "0123456789ABCDEF0123456789abcdef\n");
    await writeFile(join(dir, "serial-number"), "10000000deadbeef\0");
    const first = await identity().get();
    expect(first).toBe("machine-id=0123456789abcdef0123456789abcdef;serial=10000000deadbeef");
    expect(await identity().get()).toBe(first);
  });

  it("falls back to the D-Bus machine id and the Serial line of cpuinfo", async () => {
    await writeFile(join(dir, "etc-machine-id"), "uninitialized\n");
    await writeFile(join(dir, "dbus-machine-id"), "feedfacefeedfacefeedfacefeedface\n");
    await writeFile(
      join(dir, "cpuinfo"),
      "processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 00000000c0ffee11\nModel\t: Pi\n",
    );
    expect(await identity().get()).toBe("machine-id=feedfacefeedfacefeedfacefeedface;serial=c0ffee11");
  });

  it("differs between machines", async () => {
    await writeFile(join(dir, "etc-machine-id"), "aaaa\n");
    const a = await identity().get();
    await writeFile(join(dir, "etc-machine-id"), "bbbb\n");
    expect(await identity().get()).not.toBe(a);
  });

  it("returns the marker and notes it once at info, not as a warning, when nothing identifies the machine", async () => {
    // Every invocation in a container gets here; a warning would reach stderr every time.
    const { logger, records } = captureLogger();
    const source = identity(logger);
    expect(await source.get()).toBe(UNKNOWN_MACHINE);
    expect(await source.get()).toBe(UNKNOWN_MACHINE);
    expect(records.filter((record) => record.level === "warn")).toEqual([]);
    expect(records.filter((record) => record.msg.startsWith("No machine id"))).toMatchObject([
      { level: "info" },
    ]);
  });
});
