import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { type BusError, isBusError } from "../../../display/bus/errors.ts";
import { resolveSysfsNumber, SysfsGpioOutput, sysfsChips } from "../../../display/bus/sysfs-gpio.ts";

type Chip = readonly [label: string, base: number, ngpio: number];

/** Kernel 6.6 on a Pi 4: the SoC's chip at 512, the firmware expander after it. */
const PI4: readonly Chip[] = [
  ["pinctrl-bcm2711", 512, 58],
  ["raspberrypi-exp-gpio", 570, 8],
];
/** Kernel 6.6.45+ on a Pi 5: four brcmstb chips first, the RP1 header chip at 571. */
const PI5: readonly Chip[] = [
  ["gpio-brcmstb@107d508500", 512, 32],
  ["gpio-brcmstb@107d508520", 544, 4],
  ["gpio-brcmstb@107d517c00", 548, 17],
  ["gpio-brcmstb@107d517c20", 565, 6],
  ["pinctrl-rp1", 571, 54],
];

let top: string;
beforeAll(async () => {
  top = await mkdtemp(join(tmpdir(), "entratool-sysfs-"));
});
afterAll(async () => {
  await rm(top, { recursive: true, force: true });
});

async function fakeSysfs(name: string, chips: readonly Chip[]): Promise<string> {
  const root = join(top, name);
  await mkdir(root, { recursive: true });
  for (const [label, base, ngpio] of chips) {
    const chip = join(root, `gpiochip${base}`);
    await mkdir(chip);
    await writeFile(join(chip, "label"), `${label}\n`);
    await writeFile(join(chip, "base"), `${base}\n`);
    await writeFile(join(chip, "ngpio"), `${ngpio}\n`);
  }
  await writeFile(join(root, "export"), "");
  await writeFile(join(root, "unexport"), "");
  return root;
}

describe("sysfs GPIO base resolution", () => {
  test("Pi 4 on 6.6: GPIO17 is 529", async () => {
    const root = await fakeSysfs("pi4", PI4);
    expect(await resolveSysfsNumber(17, undefined, root)).toBe(529);
    expect((await sysfsChips(root)).map((chip) => chip.label)).toEqual([
      "pinctrl-bcm2711",
      "raspberrypi-exp-gpio",
    ]);
  });

  test("Pi 5 on 6.6.45+: GPIO17 is 588, past four other chips", async () => {
    const root = await fakeSysfs("pi5", PI5);
    expect(await resolveSysfsNumber(17, undefined, root)).toBe(588);
    expect(await resolveSysfsNumber(3, ["gpio-brcmstb@107d517c00"], root)).toBe(551);
  });

  test("an offset past the chip, an unknown label and a missing tree are clear errors", async () => {
    const root = await fakeSysfs("pi4-errors", PI4);
    const range = (await resolveSysfsNumber(58, undefined, root).catch((e: unknown) => e)) as BusError;
    expect(range.code).toBe("E_BUS_ARGUMENT");
    expect(range.message).toContain("lines 0 to 57");
    const label = (await resolveSysfsNumber(17, ["pinctrl-rp1"], root).catch((e: unknown) => e)) as BusError;
    expect(label.code).toBe("E_GPIO_CHIP_NOT_FOUND");
    expect(label.message).toContain("found pinctrl-bcm2711 (base 512), raspberrypi-exp-gpio (base 570)");
    const none = await resolveSysfsNumber(17, undefined, join(top, "absent")).catch((e: unknown) => e);
    expect(isBusError(none, "E_GPIO_NOT_AVAILABLE")).toBe(true);
  });
});

describe("SysfsGpioOutput", () => {
  test("exports base + offset, sets direction and level, unexports on close", async () => {
    const root = await fakeSysfs("pi5-out", PI5);
    const clock = new VirtualClock();
    clock.hold();
    const opening = SysfsGpioOutput.open(17, { root, clock, initial: 1 });
    // The export is written, but gpio588/ is not there yet (as before udev and the kernel catch
    // up): open waits on the clock, then retries once the "kernel" has made the directory.
    await clock.whenParked();
    expect(await readFile(join(root, "export"), "utf8")).toBe("588");
    await mkdir(join(root, "gpio588"));
    await writeFile(join(root, "gpio588", "value"), "1");
    clock.release();
    const line = await opening;
    expect(line.number).toBe(588);
    expect(await readFile(join(root, "gpio588", "direction"), "utf8")).toBe("high");
    await line.set(0);
    expect(await line.get()).toBe(0);
    expect(() => line.watch()).toThrow(/outputs only/);
    await line.close();
    expect(await readFile(join(root, "unexport"), "utf8")).toBe("588");
    expect(isBusError(await line.set(1).catch((e: unknown) => e), "E_BUS_CLOSED")).toBe(true);
  });

  test("a line exported by someone else is used but not unexported", async () => {
    const root = await fakeSysfs("pi4-shared", PI4);
    await mkdir(join(root, "gpio529"));
    const line = await SysfsGpioOutput.open(17, { root, clock: new VirtualClock() });
    expect(await readFile(join(root, "gpio529", "direction"), "utf8")).toBe("low");
    await line.close();
    expect(await readFile(join(root, "export"), "utf8")).toBe("");
    expect(await readFile(join(root, "unexport"), "utf8")).toBe("");
  });
});
