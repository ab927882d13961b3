import { openWith } from "../../resources.ts";
import type { DisplayEntry } from "../../types.ts";
import { Ssd1680Schema } from "./config.ts";

/** SSD1680 2.13" e-ink panel on SPI, with DC, RST and BUSY lines. */
export const ssd1680: DisplayEntry<typeof Ssd1680Schema, import("./simulate.ts").Ssd1680Sim> = {
  type: "ssd1680",
  schema: Ssd1680Schema,
  where: (config) => ` on SPI ${config.spi.bus}.${config.spi.chipSelect}`,
  claims: (config) => [
    { resource: `SPI ${config.spi.bus}.${config.spi.chipSelect}`, field: ["spi"] },
    ...Object.entries(config.pins).map(([pin, name]) => ({ resource: name, field: ["pins", pin] })),
  ],
  previewable: true,
  // The driver itself decides to refresh the countdown at most once a minute.
  tickMs: 1000,
  open: (config, { hardware, clock }) =>
    openWith(async (resources) => {
      const { Ssd1680Display } = await import("./driver.ts");
      const { bus, chipSelect, speedHz } = config.spi;
      const spi = resources.add(await hardware.spi(bus, chipSelect, speedHz));
      // DC starts low (command); RST starts high: low would hold the chip in reset.
      const dc = resources.add(await hardware.output(config.pins.dc, { initial: 0, activeLow: false }));
      const rst = resources.add(await hardware.output(config.pins.rst, { initial: 1, activeLow: false }));
      const busy = resources.add(await hardware.input(config.pins.busy, {}));
      return resources.opened(new Ssd1680Display({ spi, dc, rst, busy, clock, rotate180: config.rotate180 }));
    }),
  simulation: async () => (await import("./simulate.ts")).simulation,
};
