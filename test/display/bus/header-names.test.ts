import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { openLibc } from "../../../agent/linux/libc.ts";
import { type BusError, isBusError } from "../../../display/bus/errors.ts";
import { GpioCdev } from "../../../display/bus/gpio-cdev.ts";
import { GpioLineFlag } from "../../../display/bus/gpio-uapi.ts";
import { kernelHardware } from "../../../display/hardware.ts";
import { type KernelFds, kernelFds } from "../../linux/kernel-fds.ts";
import { type FakeChip, FakeGpioKernel, PI4_EXPANDER } from "./fake-gpio-kernel.ts";

/**
 * Header lines that the device tree names by function, not "GPIOnn": a configured "GPIO7" must
 * still be found, as line 7 of the header's chip.
 */

/** The Pi 4's header chip as the mainline device tree (bcm2711-rpi-4-b.dts) names its lines. */
const pi4Names = [
  "ID_SDA",
  "ID_SCL",
  "SDA1",
  "SCL1",
  "GPIO_GCLK",
  "GPIO5",
  "GPIO6",
  "SPI_CE1_N",
  "SPI_CE0_N",
  "SPI_MISO",
  "SPI_MOSI",
  "SPI_SCLK",
  "GPIO12",
  "GPIO13",
  "TXD1",
  "RXD1",
  ...Array.from({ length: 12 }, (_, i) => `GPIO${16 + i}`),
  "RGMII_MDIO",
  "RGMIO_MDC",
  "CTS0",
  "RTS0",
  "TXD0",
  "RXD0",
  ...Array.from({ length: 24 }, () => ""),
];

/** The Pi 5's RP1 as its device tree names it: GPIO0/1 are the HAT EEPROM's ID_SDA/ID_SCL. */
const pi5Names = [
  "ID_SDA",
  "ID_SCL",
  ...Array.from({ length: 26 }, (_, i) => `GPIO${2 + i}`),
  "PCIE_RP1_WAKE",
  "FAN_TACH",
  "HOST_SDA",
  "HOST_SCL",
  "ETH_RST_N",
  "-",
  ...Array.from({ length: 20 }, () => ""),
];

let root: string;
let real: { libc: Awaited<ReturnType<typeof openLibc>>; fds: KernelFds };
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "entratool-gpio-names-"));
  real = { libc: await openLibc(), fds: await kernelFds() };
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const kernels: FakeGpioKernel[] = [];
afterEach(() => {
  for (const kernel of kernels.splice(0)) kernel.dispose();
});

/** A /dev of the board's chips (nodes only: the fake kernel answers for them). */
async function board(
  chips: readonly FakeChip[],
): Promise<{ kernel: FakeGpioKernel; gpio: GpioCdev; clock: VirtualClock; dir: string }> {
  const dir = await mkdtemp(join(root, "dev-"));
  for (const chip of chips) await writeFile(join(dir, chip.node), "");
  const kernel = new FakeGpioKernel(dir, chips, real);
  kernels.push(kernel);
  const clock = new VirtualClock();
  return { kernel, clock, dir, gpio: new GpioCdev({ clock, devDir: dir, libc: kernel.libc }) };
}

const pi4: FakeChip[] = [
  { node: "gpiochip0", name: "gpiochip0", label: "pinctrl-bcm2711", lineNames: pi4Names },
  { node: "gpiochip1", ...PI4_EXPANDER },
];

const pi5: FakeChip[] = [
  { node: "gpiochip0", name: "gpiochip0", label: "pinctrl-rp1", lineNames: pi5Names },
  // The SoC's own GPIO blocks: lines of their own, some named like header lines' functions.
  {
    node: "gpiochip10",
    name: "gpiochip10",
    label: "gpio-brcmstb@107d508500",
    lineNames: ["RP1_SDA", "RP1_SCL", "RP1_RUN", "SD_IOVDD_SEL", "SD_PWR_ON", "SD_CDET_N", "SD_FLG_N", ""],
  },
];

describe("header lines named by function", () => {
  test.each([
    ["GPIO7", 7, "SPI_CE1_N"],
    ["GPIO8", 8, "SPI_CE0_N"],
    ["GPIO14", 14, "TXD1"],
    ["GPIO2", 2, "SDA1"],
    ["GPIO0", 0, "ID_SDA"],
  ])("Pi 4: %s is line %i of pinctrl-bcm2711 (named %s there)", async (name, offset, kernelName) => {
    const { gpio } = await board(pi4);
    const found = await gpio.findLine({ name });
    expect([found.chip.label, found.info.offset, found.info.name]).toEqual([
      "pinctrl-bcm2711",
      offset,
      kernelName,
    ]);
  });

  test("Pi 4: a line the kernel does name GPIOnn is found by its name, as before", async () => {
    const { gpio } = await board(pi4);
    const found = await gpio.findLine({ name: "GPIO25" });
    expect([found.chip.label, found.info.offset, found.info.name]).toEqual(["pinctrl-bcm2711", 25, "GPIO25"]);
  });

  test.each([
    ["GPIO0", 0, "ID_SDA"],
    ["GPIO1", 1, "ID_SCL"],
  ])("Pi 5: %s is line %i of pinctrl-rp1 (named %s there)", async (name, offset, kernelName) => {
    const { gpio } = await board(pi5);
    const found = await gpio.findLine({ name });
    expect([found.chip.label, found.info.offset, found.info.name]).toEqual([
      "pinctrl-rp1",
      offset,
      kernelName,
    ]);
  });

  test("Pi 4: GPIO8 (SPI_CE0_N) is requested at offset 8 and labelled as configured", async () => {
    const { gpio, kernel } = await board(pi4);
    const line = await gpio.requestLine({ name: "GPIO8" }, { direction: "output", initial: 1 });
    expect(kernel.requests.map((r) => r.offsets)).toEqual([[8]]);
    expect(line.label).toBe("GPIO8");
    await line.close();
  });

  test("Pi 5, through the displays' hardware: BUSY on GPIO1 (ID_SCL) as a pulled-down input", async () => {
    const { kernel, clock, dir } = await board(pi5);
    const hardware = kernelHardware({ clock, devDir: dir, libc: kernel.libc });
    const line = await hardware.input("GPIO1", { bias: "pull-down" });
    const [request] = kernel.requests;
    expect(request?.offsets).toEqual([1]);
    expect(request?.flags).toBe(GpioLineFlag.INPUT | GpioLineFlag.BIAS_PULL_DOWN);
    await line.close();
  });

  test("a name past the header chip's lines is still not found, and says where it looked", async () => {
    const { gpio } = await board(pi5);
    const error = (await gpio.findLine({ name: "GPIO60" }).catch((e: unknown) => e)) as BusError;
    expect(isBusError(error, "E_GPIO_LINE_NOT_FOUND")).toBe(true);
    expect(error.message).toContain("No GPIO line is named GPIO60 on gpiochip0 [pinctrl-rp1]");
  });

  test("on a board without a known header chip, GPIOnn is only ever found by name", async () => {
    const { gpio } = await board([
      { node: "gpiochip0", name: "gpiochip0", label: "some-other-soc", lineNames: ["PA0", "PA1", "PA2"] },
    ]);
    const error = (await gpio.findLine({ name: "GPIO1" }).catch((e: unknown) => e)) as BusError;
    expect(isBusError(error, "E_GPIO_LINE_NOT_FOUND")).toBe(true);
    expect(error.message).toContain("none of them is the header's chip");
  });

  test("a chip asked for by label is searched by name only", async () => {
    const { gpio } = await board(pi4);
    const error = await gpio
      .findLine({ name: "GPIO7", chipLabel: "pinctrl-bcm2711" })
      .catch((e: unknown) => e);
    expect(isBusError(error, "E_GPIO_LINE_NOT_FOUND")).toBe(true);
  });
});
