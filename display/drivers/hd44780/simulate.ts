import { keepOpen } from "../../sim/keep-open.ts";
import type { Simulation } from "../../types.ts";
import type { Hd44780Config } from "./config.ts";
import { lcdPages } from "./layout.ts";
import { lcdGlass } from "./picture.ts";
import { Hd44780Simulator } from "./sim.ts";

export type Hd44780Sim = Hd44780Simulator;

/** The LCD on a simulated PCF8574 backpack; its picture is the glass, 1 px a dot pixel by default. */
export const simulation: Simulation<Hd44780Config, Hd44780Sim> = {
  async attach(config, { clock }) {
    const { address, columns, rows } = config;
    const sim = new Hd44780Simulator({ address, columns, rows, clock });
    return { sim, hardware: { i2c: async () => keepOpen(sim) } };
  },
  previewConfig: (options) => ({ columns: options.columns ?? 16, rows: options.rows ?? 2 }),
  pages: (screen, config) => lcdPages(screen, config),
  picture: async (sim) => lcdGlass(sim),
};
