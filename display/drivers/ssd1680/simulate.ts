import type { GpioLine } from "../../bus/types.ts";
import { keepOpen } from "../../sim/keep-open.ts";
import type { Simulation } from "../../types.ts";
import type { Ssd1680Config } from "./config.ts";
import { Ssd1680Simulator } from "./sim.ts";

export type Ssd1680Sim = Ssd1680Simulator;

/** The e-ink panel's controller on simulated SPI and DC/RST/BUSY (and PWR) lines; its picture is ink on white. */
export const simulation: Simulation<Ssd1680Config, Ssd1680Sim> = {
  async attach(config, { clock }) {
    const sim = new Ssd1680Simulator({ clock, powerSwitch: config.pins.pwr !== undefined });
    const pins = new Map<string, GpioLine>([
      [config.pins.dc, sim.dc],
      [config.pins.rst, sim.rst],
      [config.pins.busy, sim.busy],
      ...(config.pins.pwr === undefined ? [] : [[config.pins.pwr, sim.pwr] as const]),
    ]);
    const pin = (name: string): GpioLine => {
      const line = pins.get(name);
      if (line === undefined) throw new Error(`the simulated SSD1680 has no line ${name}`);
      return keepOpen(line);
    };
    return {
      sim,
      hardware: {
        spi: async () => keepOpen(sim.spi),
        // An output starts at its requested level, as the kernel sets it with the request.
        output: async (name, { initial }) => {
          const line = pin(name);
          await line.set(initial);
          return line;
        },
        input: async (name, { bias }) => {
          const line = pin(name);
          if (name === config.pins.busy) sim.biasBusy(bias);
          return line;
        },
      },
    };
  },
  scale: 3,
  previewConfig: (options) => (options.rotate === undefined ? {} : { rotate: options.rotate }),
  picture: async (sim) => ({ kind: "bitmap", bitmap: sim.panel(), on: "black" }),
};
