import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { openLibc } from "../../../agent/linux/libc.ts";
import { type BusError, isBusError } from "../../../display/bus/errors.ts";
import { GpioCdev } from "../../../display/bus/gpio-cdev.ts";
import { encodeLineEvent, GpioLineAttrId, GpioLineFlag } from "../../../display/bus/gpio-uapi.ts";
import type { Edge } from "../../../display/bus/types.ts";
import { fdsOn, type KernelFds, kernelFds } from "../../linux/kernel-fds.ts";
import { type FakeChip, FakeGpioKernel, PI4_EXPANDER } from "./fake-gpio-kernel.ts";

const bcm2711Names = Array.from({ length: 58 }, (_, i) => `GPIO${i}`);

let dir: string;
let real: { libc: Awaited<ReturnType<typeof openLibc>>; fds: KernelFds };
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-gpio-"));
  // gpiochip4 stands for the Pi 5's compatibility symlink to gpiochip0: the same chip twice.
  for (const node of ["gpiochip0", "gpiochip1", "gpiochip4", "i2c-1"]) await writeFile(join(dir, node), "");
  real = { libc: await openLibc(), fds: await kernelFds() };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const kernels: FakeGpioKernel[] = [];
afterEach(() => {
  for (const kernel of kernels.splice(0)) kernel.dispose();
});

function rig(held?: ReadonlyMap<number, string>): {
  kernel: FakeGpioKernel;
  gpio: GpioCdev;
  clock: VirtualClock;
} {
  const header: Omit<FakeChip, "node"> = {
    name: "gpiochip0",
    label: "pinctrl-bcm2711",
    lineNames: bcm2711Names,
    ...(held === undefined ? {} : { held }),
  };
  const kernel = new FakeGpioKernel(
    dir,
    [
      { node: "gpiochip0", ...header },
      { node: "gpiochip1", ...PI4_EXPANDER },
      { node: "gpiochip4", ...header },
    ],
    real,
  );
  kernels.push(kernel);
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

  test("a button: pull-up input with both edges, its events read as the kernel queues them", async () => {
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

    const { seen, until } = collect();
    const stop = line.watch(seen.listener);
    kernel.emit(
      "gpiochip0",
      27,
      { timestampNs: 5_000_000_000n, id: 2, offset: 27, seqno: 1, lineSeqno: 1 },
      { timestampNs: 5_812_345_000n, id: 1, offset: 27, seqno: 2, lineSeqno: 2 },
    );
    await until(2);
    // An event cut in two by the writes is delivered whole, once its end arrives.
    const third = encodeLineEvent({ timestampNs: 6_000_250_000n, id: 2, offset: 27, seqno: 3, lineSeqno: 3 });
    kernel.write("gpiochip0", 27, third.subarray(0, 20));
    kernel.write("gpiochip0", 27, third.subarray(20));
    await until(3);
    stop();
    expect(seen.edges).toEqual([
      ["falling", 5000],
      ["rising", 5812.345],
      ["falling", 6000.25],
    ]);
    // No timer: the watch waits on the line fd in Bun's event loop, nothing sleeps.
    expect(clock.sleeps).toEqual([]);
    await line.close();
    expect(kernel.libc.openFds).toEqual([]);
    expect(kernel.isHeld("gpiochip0", 27)).toBe(false);
  });

  test("close() releases a watched line: it can be requested again at once", async () => {
    const { gpio, kernel } = rig();
    const options = { direction: "input", edges: "both" } as const;
    const first = await gpio.requestLine({ name: "GPIO27" }, options);
    const { seen, until } = collect();
    first.watch(seen.listener);
    kernel.emit("gpiochip0", 27, { timestampNs: 1_000_000n, id: 1, offset: 27, seqno: 1, lineSeqno: 1 });
    await until(1);
    const target = kernel.target("gpiochip0", 27);
    // The line fd, the watcher's copy and Bun's copy of that.
    expect(fdsOn(target, "read")).toHaveLength(3);
    await first.close();
    expect(fdsOn(target, "read")).toEqual([]);

    const second = await gpio.requestLine({ name: "GPIO27" }, options);
    const again = collect();
    second.watch(again.seen.listener);
    kernel.emit("gpiochip0", 27, { timestampNs: 2_000_000n, id: 2, offset: 27, seqno: 2, lineSeqno: 2 });
    await again.until(1);
    expect(again.seen.edges).toEqual([["falling", 2]]);
    expect(seen.edges).toEqual([["rising", 1]]);
    await second.close();
    expect(kernel.libc.openFds).toEqual([]);
  });

  test("a line still held is refused with EBUSY naming us", async () => {
    const { gpio } = rig();
    const line = await gpio.requestLine({ name: "GPIO27" }, { direction: "input", edges: "both" });
    line.watch(() => undefined);
    const error = (await gpio
      .requestLine({ name: "GPIO27" }, { direction: "input", edges: "both" })
      .catch((e: unknown) => e)) as BusError;
    expect(error.code).toBe("E_GPIO_LINE_BUSY");
    expect(error.message).toContain("already in use by entratool");
    await line.close();
  });

  test("the last listener gone ends the watch and frees its copies of the fd; a new listener starts another", async () => {
    const { gpio, kernel } = rig();
    const line = await gpio.requestLine({ name: "GPIO27" }, { direction: "input", edges: "both" });
    const target = kernel.target("gpiochip0", 27);
    const a = collect();
    const b = collect();
    const stopA = line.watch(a.seen.listener);
    const stopB = line.watch(b.seen.listener);
    expect(fdsOn(target, "read")).toHaveLength(3);
    kernel.emit("gpiochip0", 27, { timestampNs: 1_000_000n, id: 1, offset: 27, seqno: 1, lineSeqno: 1 });
    await Promise.all([a.until(1), b.until(1)]);
    stopA();
    stopB();
    const c = collect();
    line.watch(c.seen.listener);
    kernel.emit("gpiochip0", 27, { timestampNs: 3_000_000n, id: 2, offset: 27, seqno: 2, lineSeqno: 2 });
    await c.until(1);
    expect([a.seen.edges, b.seen.edges, c.seen.edges]).toEqual([
      [["rising", 1]],
      [["rising", 1]],
      [["falling", 3]],
    ]);
    await line.close();
    expect(fdsOn(target, "read")).toEqual([]);
  });

  test("a throwing listener is reported and neither stops the others nor the watch", async () => {
    const { gpio, kernel } = rig();
    const errors: unknown[] = [];
    const line = await gpio.requestLine(
      { name: "GPIO27" },
      { direction: "input", edges: "both", onError: (error) => errors.push(error) },
    );
    const boom = new Error("listener failed");
    line.watch(() => {
      throw boom;
    });
    const { seen, until } = collect();
    line.watch(seen.listener);
    kernel.emit("gpiochip0", 27, { timestampNs: 1_000_000n, id: 1, offset: 27, seqno: 1, lineSeqno: 1 });
    await until(1);
    kernel.emit("gpiochip0", 27, { timestampNs: 2_000_000n, id: 2, offset: 27, seqno: 2, lineSeqno: 2 });
    await until(2);
    expect(seen.edges).toEqual([
      ["rising", 1],
      ["falling", 2],
    ]);
    expect(errors).toEqual([boom, boom]);
    await line.close();
  });

  test("an end of the edge events stops the watch with one E_BUS_IO and releases the copies", async () => {
    const { gpio, kernel } = rig();
    let reported: (error: unknown) => void = () => undefined;
    const failure = new Promise<unknown>((resolve) => {
      reported = resolve;
    });
    const errors: unknown[] = [];
    const line = await gpio.requestLine(
      { name: "GPIO27" },
      {
        direction: "input",
        edges: "both",
        onError: (error) => {
          errors.push(error);
          reported(error);
        },
      },
    );
    const target = kernel.target("gpiochip0", 27);
    line.watch(() => undefined);
    kernel.endEvents("gpiochip0", 27);
    const error = await failure;
    expect(isBusError(error, "E_BUS_IO")).toBe(true);
    expect((error as BusError).message).toBe(
      "The kernel ended the edges of GPIO27 (its GPIO chip went away): restart entratool once the chip is back.",
    );
    await line.close();
    expect(errors).toHaveLength(1);
    expect(fdsOn(target, "read")).toEqual([]);
    expect(kernel.libc.openFds).toEqual([]);
  });

  test("watching a line requested without edges is refused", async () => {
    const { gpio } = rig();
    const line = await gpio.requestLine({ name: "GPIO22" }, { direction: "input" });
    expect(() => line.watch(() => undefined)).toThrow(/without edge detection/);
    await line.close();
  });
});

/** Edges a listener was given, with a promise for the nth. */
function collect() {
  const edges: Array<[Edge, number]> = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const listener = (edge: Edge, at: number): void => {
    edges.push([edge, at]);
    for (const w of waiters.splice(0)) {
      if (edges.length >= w.n) w.resolve();
      else waiters.push(w);
    }
  };
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      if (edges.length >= n) resolve();
      else waiters.push({ n, resolve });
    });
  return { seen: { edges, listener }, until };
}
