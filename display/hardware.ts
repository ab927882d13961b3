import type { Clock } from "../agent/core/clock.ts";
import type { Logger } from "../agent/core/log.ts";
import type { Libc } from "../agent/linux/libc.ts";
import { GpioCdev } from "./bus/gpio-cdev.ts";
import { LinuxI2CBus } from "./bus/linux-i2c.ts";
import { LinuxSpiBus } from "./bus/linux-spi.ts";
import { type DisplayConfig, displayName } from "./config.ts";
import { entryOf } from "./registry.ts";
import { type Display, DisplaySet, DriverDisplay, type RetryPolicy } from "./set.ts";
import type { Hardware, PreviewRenderer, QrEncoder, TerminalOutput } from "./types.ts";

/**
 * The displays on real hardware: the kernel's devices (/dev/i2c-N, /dev/spidevB.C, the GPIO
 * character device, /dev/fbN), the process's terminal, and files. No simulator is loaded here.
 */

export interface KernelHardwareOptions {
  readonly clock: Clock;
  /** Where /dev/i2c-N, /dev/spidevB.C, /dev/gpiochipN and /dev/fbN live; "/dev" unless a test says. */
  readonly devDir?: string;
  /** Where /sys/class/graphics lives for the framebuffer; "/sys" unless a test says. */
  readonly sysfsRoot?: string;
  readonly libc?: Libc;
  /** Where the terminal display writes (stderr, the controlling terminal); none: it cannot open. */
  readonly terminals?: readonly TerminalOutput[];
  readonly qr?: QrEncoder | undefined;
  /** What the PNG display draws with (display/preview.ts's renderPreview). */
  readonly preview?: PreviewRenderer;
}

/**
 * The kernel's devices as `Hardware`. Nothing is opened here: each display opens its bus in its
 * `init()`, so a missing /dev/i2c-1 or a busy GPIO line becomes a logged, failed display (with the
 * sentence that says the fix) when the set is initialised, never a crash.
 */
export function kernelHardware(options: KernelHardwareOptions): Hardware {
  const { clock, devDir, libc } = options;
  const busOptions = { ...(devDir === undefined ? {} : { devDir }), ...(libc ? { libc } : {}) };
  let gpio: GpioCdev | undefined;
  const chips = (): GpioCdev => {
    gpio ??= new GpioCdev({ clock, ...busOptions });
    return gpio;
  };
  return {
    i2c: (bus) => LinuxI2CBus.open(bus, busOptions),
    spi: (bus, chipSelect, speedHz) => LinuxSpiBus.open(bus, chipSelect, { ...busOptions, speedHz }),
    output: (name, { initial, activeLow }) =>
      chips().requestLine({ name }, { direction: "output", initial, activeLow }),
    input: (name, { activeLow, bias, edges }) =>
      chips().requestLine(
        { name },
        {
          direction: "input",
          ...(activeLow === undefined ? {} : { activeLow }),
          ...(bias === undefined ? {} : { bias }),
          ...(edges === undefined ? {} : { edges }),
        },
      ),
    framebuffer: () => ({
      ...(devDir === undefined ? {} : { devRoot: devDir }),
      ...(options.sysfsRoot === undefined ? {} : { sysfsRoot: options.sysfsRoot }),
      ...(libc ? { ioctl: libc } : {}),
    }),
    terminals: () => options.terminals ?? [],
    qr: options.qr,
    preview: options.preview,
  };
}

/** A display of the configuration on `hardware`, named for logs; opened in its `init()`. */
export function openDisplay(config: DisplayConfig, name: string, hardware: Hardware, clock: Clock): Display {
  const entry = entryOf(config);
  return new DriverDisplay(name, (fail) => entry.open(config, { clock, hardware, fail }), entry.tickMs);
}

export interface DisplayDeps extends KernelHardwareOptions {
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy>;
  /** Names for logs; default `displays[i] <type> <where>`, i being the place in `displays`. */
  readonly name?: (config: DisplayConfig, index: number) => string;
}

/** The configured displays on the kernel's devices, as one set (initialise it with `init()`). */
export function createDisplays(displays: readonly DisplayConfig[], deps: DisplayDeps): DisplaySet {
  const hardware = kernelHardware(deps);
  const name = deps.name ?? displayName;
  return new DisplaySet({
    displays: displays.map((config, index) => openDisplay(config, name(config, index), hardware, deps.clock)),
    logger: deps.logger,
    clock: deps.clock,
    ...(deps.retry ? { retry: deps.retry } : {}),
  });
}
