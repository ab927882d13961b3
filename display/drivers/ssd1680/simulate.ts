import type { GpioLine } from "../../bus/types.ts";
import { keepOpen } from "../../sim/keep-open.ts";
import type { Simulation } from "../../types.ts";
import type { Ssd1680Config } from "./config.ts";
import { Ssd1680Simulator } from "./sim.ts";

export type Ssd1680Sim = Ssd1680Simulator;

/** The e-ink panel's controller on simulated SPI and DC/RST/BUSY lines; its picture is ink on white. */
export const simulation: Simulation<Ssd1680Config, Ssd1680Sim> = {
  async attach(config, { clock }) {
    const sim = new Ssd1680Simulator({ clock });
    const pins = new Map<string, GpioLine>([
      [config.pins.dc, sim.dc],
      [config.pins.rst, sim.rst],
      [config.pins.busy, sim.busy],
    ]);
    const pin = async (name: string): Promise<GpioLine> => {
      const line = pins.get(name);
      if (line === undefined) throw new Error(`the simulated SSD1680 has no line ${name}`);
      return keepOpen(line);
    };
    return { sim, hardware: { spi: async () => keepOpen(sim.spi), output: pin, input: pin } };
  },
  scale: 3,
  previewConfig: () => ({}),
  picture: async (sim) => ({ kind: "bitmap", bitmap: sim.panel(), on: "black" }),
};
