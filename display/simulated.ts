import type * as v from "valibot";
import type { Clock } from "../agent/core/clock.ts";
import type { Logger } from "../agent/core/log.ts";
import type { GpioLine } from "./bus/types.ts";
import { type DisplayConfig, displayName } from "./config.ts";
import { openDisplay } from "./hardware.ts";
import { entryOf, type REGISTRY } from "./registry.ts";
import { DisplaySet, type RetryPolicy } from "./set.ts";
import type {
  DisplayEntry,
  FramebufferSize,
  GpioInputOptions,
  Hardware,
  PreviewRenderer,
  QrEncoder,
  SimulationContext,
} from "./types.ts";

/**
 * The displays on simulated hardware, for `display preview`, the PNG display's pictures and tests:
 * the same drivers, opened by the same code as on a Pi (each type's `open`), on simulators that
 * decode the wire as the chips would. One chip per configured display, created here so that its
 * state outlives the display's re-initialisation. Each type's simulator is loaded only now.
 */

/** The simulator behind one configured display, by type: what tests and previews read. */
export type SimulatedHardware = (typeof REGISTRY)[number] extends infer E
  ? E extends DisplayEntry<infer S, infer H>
    ? v.InferOutput<S> extends { readonly type: infer T }
      ? { readonly type: T; readonly index: number; readonly sim: H }
      : never
    : never
  : never;

export interface SimulatedDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy>;
  /** The simulated HDMI screen; default 1280x720 at 32 bpp. */
  readonly framebuffer?: FramebufferSize;
  /** The simulated terminal; default not a TTY, 80 columns. */
  readonly terminal?: SimulationContext["terminal"];
  readonly qr?: QrEncoder;
  /** What the PNG display draws with. */
  readonly preview?: PreviewRenderer;
  /** Names for logs; default `displays[i] <type> <where>`. */
  readonly name?: (config: DisplayConfig, index: number) => string;
}

export interface SimulatedDisplays {
  readonly set: DisplaySet;
  readonly hardware: readonly SimulatedHardware[];
  /** Requests an input line (the sign-in button) of whichever simulated display has it. */
  input(name: string, options: GpioInputOptions): Promise<GpioLine>;
  /** Removes what the simulators made (the framebuffers' temp files); after `set.close()`. */
  dispose(): Promise<void>;
}

function unavailable(what: string): () => Promise<never> {
  return () => Promise.reject(new Error(`the simulated hardware has no ${what}`));
}

export async function createSimulatedDisplays(
  displays: readonly DisplayConfig[],
  deps: SimulatedDeps,
): Promise<SimulatedDisplays> {
  const context: SimulationContext = {
    clock: deps.clock,
    ...(deps.framebuffer === undefined ? {} : { framebuffer: deps.framebuffer }),
    ...(deps.terminal === undefined ? {} : { terminal: deps.terminal }),
  };
  const name = deps.name ?? displayName;
  const hardware: SimulatedHardware[] = [];
  const disposers: Array<() => Promise<void>> = [];
  const parts: Hardware[] = [];
  const dispose = async (): Promise<void> => {
    await Promise.all(disposers.splice(0).map((d) => d()));
  };
  try {
    for (const [index, config] of displays.entries()) {
      const simulation = await entryOf(config).simulation();
      const simulated = await simulation.attach(config, context);
      if (simulated.dispose) disposers.push(simulated.dispose);
      // The type of `sim` is the one of `config.type`'s entry (see SimulatedHardware).
      hardware.push({ type: config.type, index, sim: simulated.sim } as SimulatedHardware);
      parts.push({
        i2c: unavailable("I2C bus"),
        spi: unavailable("SPI bus"),
        output: unavailable("GPIO output"),
        input: unavailable("GPIO input"),
        framebuffer: () => ({}),
        terminals: () => [],
        qr: deps.qr,
        preview: deps.preview,
        ...simulated.hardware,
      });
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  const set = new DisplaySet({
    displays: displays.map((config, index) =>
      openDisplay(config, name(config, index), parts[index] as Hardware, deps.clock),
    ),
    logger: deps.logger,
    clock: deps.clock,
    ...(deps.retry ? { retry: deps.retry } : {}),
  });
  return {
    set,
    hardware,
    input: (line, options) => {
      const index = displays.findIndex((config) => entryOf(config).button?.(config) === line);
      const part = parts[index];
      if (part === undefined) return Promise.reject(new Error(`no simulated display has the line ${line}`));
      return part.input(line, options);
    },
    dispose,
  };
}
