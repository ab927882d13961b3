import { keepOpen } from "../../sim/keep-open.ts";
import type { Simulation } from "../../types.ts";
import type { Ssd1306Config } from "./config.ts";
import { OLED_LANDSCAPE, OLED_PORTRAIT, oledPages } from "./layout.ts";
import { Ssd1306Simulator } from "./sim.ts";

export type Ssd1306Sim = Ssd1306Simulator;

/** The OLED on a simulated I2C bus; its picture glows white on black, 4 px a pixel by default. */
export const simulation: Simulation<Ssd1306Config, Ssd1306Sim> = {
  async attach(config) {
    const sim = new Ssd1306Simulator({ address: config.address });
    return { sim, hardware: { i2c: async () => keepOpen(sim) } };
  },
  scale: 4,
  previewConfig: (options) => (options.rotate === undefined ? {} : { rotate: options.rotate }),
  // The driver's default timing: QR page, then the code page.
  pages: (screen, config) =>
    oledPages(screen, {}, config.rotate === 90 || config.rotate === 270 ? OLED_PORTRAIT : OLED_LANDSCAPE),
  picture: async (sim) => ({ kind: "bitmap", bitmap: sim.pixels(), on: "white" }),
};
