import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { Errno } from "../../../agent/linux/errno.ts";
import { type BusError, isBusError } from "../../../display/bus/errors.ts";
import { GpioCdev } from "../../../display/bus/gpio-cdev.ts";
import {
  decodeLineInfo,
  decodeLineRequest,
  decodeLineValues,
  encodeChipInfo,
  encodeLineEvent,
  encodeLineInfo,
  encodeLineValues,
  GpioLineAttrId,
  GpioLineFlag,
  type GpioLineRequest,
} from "../../../display/bus/gpio-uapi.ts";
import {
  GPIO_GET_CHIPINFO_IOCTL,
  GPIO_V2_GET_LINE_IOCTL,
  GPIO_V2_GET_LINEINFO_IOCTL,
  GPIO_V2_LINE_GET_VALUES_IOCTL,
  GPIO_V2_LINE_SET_VALUES_IOCTL,
} from "../../../display/bus/ioctl.ts";
import type { Edge } from "../../../display/bus/types.ts";
import { FakeLibc } from "./fake-libc.ts";

interface FakeChip {
  readonly node: string;
  readonly name: string;
  readonly label: string;
  readonly lineNames: readonly string[];
  /** offset → consumer of lines already held. */
  readonly held?: ReadonlyMap<number, string>;
}

/** The GPIO character device of a Pi 4: its header chip, the firmware expander, and a Pi 5-style alias. */
class FakeGpioKernel {
  readonly libc = new FakeLibc();
  readonly requests: GpioLineRequest[] = [];
  /** Last value set on each requested line fd, and the events waiting to be read. */
  readonly levels = new Map<number, bigint>();
  readonly events: Uint8Array[] = [];

  constructor(dir: string, chips: readonly FakeChip[]) {
    for (const chip of chips) this.libc.devices.set(join(dir, chip.node), this.#chip(chip));
  }

  #chip(chip: FakeChip) {
    return {
      ioctl: (request: number, arg: Uint8Array | number) => {
        if (typeof arg === "number") return { errno: Errno.EINVAL };
        if (request === GPIO_GET_CHIPINFO_IOCTL) {
          arg.set(encodeChipInfo({ name: chip.name, label: chip.label, lines: chip.lineNames.length }));
          return 0;
        }
        if (request === GPIO_V2_GET_LINEINFO_IOCTL) {
          const { offset } = decodeLineInfo(arg);
          const consumer = chip.held?.get(offset) ?? "";
          const flags = consumer === "" ? GpioLineFlag.INPUT : GpioLineFlag.USED | GpioLineFlag.OUTPUT;
          arg.set(encodeLineInfo({ name: chip.lineNames[offset] ?? "", consumer, offset, flags, attrs: [] }));
          return 0;
        }
        if (request === GPIO_V2_GET_LINE_IOCTL) {
          const decoded = decodeLineRequest(arg);
          this.requests.push(decoded);
          if (decoded.offsets.some((offset) => chip.held?.has(offset))) return { errno: Errno.EBUSY };
          const fd = this.libc.attach(this.#line());
          new DataView(arg.buffer, arg.byteOffset).setInt32(588, fd, true);
          return 0;
        }
        return { errno: Errno.ENOTTY };
      },
    };
  }

  #line() {
    let level = 0n;
    return {
      ioctl: (request: number, arg: Uint8Array | number) => {
        if (typeof arg === "number") return { errno: Errno.EINVAL };
        const { bits, mask } = decodeLineValues(arg);
        if (request === GPIO_V2_LINE_SET_VALUES_IOCTL) {
          level = (level & ~mask) | (bits & mask);
          this.levels.set(0, level);
          return 0;
        }
        if (request === GPIO_V2_LINE_GET_VALUES_IOCTL) {
          arg.set(encodeLineValues({ bits: level & mask, mask }));
          return 0;
        }
        return { errno: Errno.ENOTTY };
      },
      read: (buffer: Uint8Array) => {
        // Whole events only, as many as fit, EAGAIN when none (the fd is O_NONBLOCK).
        let count = 0;
        while (this.events.length > 0 && count + 48 <= buffer.length) {
          buffer.set(this.events.shift() as Uint8Array, count);
          count += 48;
        }
        return count === 0 ? { errno: Errno.EAGAIN } : count;
      },
    };
  }
}

const bcm2711Names = Array.from({ length: 58 }, (_, i) => `GPIO${i}`);
const expanderNames = [
  "BT_ON",
  "WL_ON",
  "PWR_LED_OFF",
  "GLOBAL_RESET",
  "VDD_SD_IO_SEL",
  "CAM_GPIO",
  "SD_PWR_ON",
  "",
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-gpio-"));
  // gpiochip4 stands for the Pi 5's compatibility symlink to gpiochip0: the same chip twice.
  for (const node of ["gpiochip0", "gpiochip1", "gpiochip4", "i2c-1"]) await writeFile(join(dir, node), "");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function rig(held?: ReadonlyMap<number, string>): {
  kernel: FakeGpioKernel;
  gpio: GpioCdev;
  clock: VirtualClock;
} {
  const header = { name: "gpiochip0", label: "pinctrl-bcm2711", lineNames: bcm2711Names, held };
  const kernel = new FakeGpioKernel(dir, [
    { node: "gpiochip0", ...header },
    { node: "gpiochip1", name: "gpiochip1", label: "raspberrypi-exp-gpio", lineNames: expanderNames },
    { node: "gpiochip4", ...header },
  ]);
  const clock = new VirtualClock();
  return { kernel, clock, gpio: new GpioCdev({ clock, devDir: dir, libc: kernel.libc }) };
}

describe("GpioCdev against a fake GPIO character device", () => {
  test("lists chips once each, in order, and closes every chip fd", async () => {
    const { gpio, kernel } = rig();
    const chips = await gpio.chips();
    expect(chips.map((chip) => [chip.name, chip.label, chip.lines, chip.path])).toEqual([
      ["gpiochip0", "pinctrl-bcm2711", 58, join(dir, "gpiochip0")],
      ["gpiochip1", "raspberrypi-exp-gpio", 8, join(dir, "gpiochip1")],
    ]);
    expect(kernel.libc.openFds).toEqual([]);
  });

  test("finds GPIO17 by name, and a line by chip label and offset", async () => {
    const { gpio } = rig();
    const byName = await gpio.findLine({ name: "GPIO17" });
    expect([byName.chip.label, byName.info.offset]).toEqual(["pinctrl-bcm2711", 17]);
    const byLabel = await gpio.findLine({ chipLabel: "raspberrypi-exp-gpio", offset: 2 });
    expect(byLabel.info.name).toBe("PWR_LED_OFF");
  });

  test("an unknown name lists the chips searched; an unknown label lists the chips found", async () => {
    const { gpio } = rig();
    const missing = (await gpio.findLine({ name: "GPIO99" }).catch((e: unknown) => e)) as BusError;
    expect(missing.code).toBe("E_GPIO_LINE_NOT_FOUND");
    expect(missing.message).toBe(
      "No GPIO line is named GPIO99 on gpiochip0 [pinctrl-bcm2711], gpiochip1 [raspberrypi-exp-gpio]: list the line names with 'gpioinfo' (header pins are GPIO0 to GPIO27).",
    );
    const chip = (await gpio
      .findLine({ name: "GPIO17", chipLabel: "pinctrl-rp1" })
      .catch((e: unknown) => e)) as BusError;
    expect(chip.code).toBe("E_GPIO_CHIP_NOT_FOUND");
    expect(chip.message).toContain("found gpiochip0 [pinctrl-bcm2711], gpiochip1 [raspberrypi-exp-gpio]");
  });

  test("requests an active-low output at its initial level, sets and reads it, and closes", async () => {
    const { gpio, kernel } = rig();
    const line = await gpio.requestLine(
      { name: "GPIO17" },
      { direction: "output", activeLow: true, initial: 1 },
    );
    expect(kernel.requests).toEqual([
      {
        offsets: [17],
        consumer: "entratool",
        flags: GpioLineFlag.OUTPUT | GpioLineFlag.ACTIVE_LOW,
        attrs: [{ id: GpioLineAttrId.OUTPUT_VALUES, value: 1n, mask: 1n }],
        eventBufferSize: 0,
        fd: 0,
      },
    ]);
    await line.set(1);
    expect(await line.get()).toBe(1);
    await line.set(0);
    expect(await line.get()).toBe(0);
    await line.close();
    expect(kernel.libc.openFds).toEqual([]);
    expect(isBusError(await line.set(1).catch((e: unknown) => e), "E_BUS_CLOSED")).toBe(true);
  });

  test("EBUSY names the line and its holder", async () => {
    const { gpio } = rig(new Map([[17, "led0"]]));
    const error = (await gpio
      .requestLine({ name: "GPIO17" }, { direction: "output" })
      .catch((e: unknown) => e)) as BusError;
    expect(error.code).toBe("E_GPIO_LINE_BUSY");
    expect(error.message).toBe(
      "GPIO17 is already in use by led0: stop it (see 'gpioinfo') or choose another pin.",
    );
  });

  test("edges on an output are refused before any device is touched", async () => {
    const { gpio, kernel } = rig();
    const error = await gpio
      .requestLine({ name: "GPIO17" }, { direction: "output", edges: "both" })
      .catch((e: unknown) => e);
    expect(isBusError(error, "E_BUS_ARGUMENT")).toBe(true);
    expect(kernel.libc.calls).toEqual([]);
  });

  test("a button: pull-up input with both edges, polled non-blocking on the clock", async () => {
    const { gpio, kernel, clock } = rig();
    const line = await gpio.requestLine(
      { name: "GPIO27", chipLabel: "pinctrl-bcm2711" },
      { direction: "input", bias: "pull-up", edges: "both", debounceMs: 5 },
    );
    const request = kernel.requests[0];
    // Edges timestamped on the realtime clock, comparable with Clock.now() (the button's debounce).
    expect(request?.flags).toBe(
      GpioLineFlag.INPUT |
        GpioLineFlag.BIAS_PULL_UP |
        GpioLineFlag.EDGE_RISING |
        GpioLineFlag.EDGE_FALLING |
        GpioLineFlag.EVENT_CLOCK_REALTIME,
    );
    expect(request?.attrs).toEqual([{ id: GpioLineAttrId.DEBOUNCE, value: 5000n, mask: 1n }]);
    expect(request?.eventBufferSize).toBe(64);
    const fcntl = kernel.libc.calls.filter((c) => c.call === "fcntl");
    expect(fcntl.at(-1)?.arg).toBe(0o2 | 0o4000); // O_RDWR kept, O_NONBLOCK added

    const seen: Array<[Edge, number]> = [];
    let done: () => void = () => undefined;
    const twoEvents = new Promise<void>((resolve) => {
      done = resolve;
    });
    const stop = line.watch((edge, at) => {
      seen.push([edge, at]);
      if (seen.length === 2) done();
    });
    kernel.events.push(
      encodeLineEvent({ timestampNs: 5_000_000_000n, id: 2, offset: 27, seqno: 1, lineSeqno: 1 }),
      encodeLineEvent({ timestampNs: 5_812_345_000n, id: 1, offset: 27, seqno: 2, lineSeqno: 2 }),
    );
    await twoEvents;
    stop();
    expect(seen).toEqual([
      ["falling", 5000],
      ["rising", 5812.345],
    ]);
    expect(clock.sleeps.every((ms) => ms === 10)).toBe(true);
    await line.close();
    expect(kernel.libc.openFds).toEqual([]);
  });

  test("watching a line requested without edges is refused", async () => {
    const { gpio } = rig();
    const line = await gpio.requestLine({ name: "GPIO22" }, { direction: "input" });
    expect(() => line.watch(() => undefined)).toThrow(/without edge detection/);
    await line.close();
  });
});
