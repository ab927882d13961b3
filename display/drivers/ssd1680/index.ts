import { openWith } from "../../resources.ts";
import type { DisplayEntry } from "../../types.ts";
import { Ssd1680Schema } from "./config.ts";

/** SSD1680 2.13" e-ink panel on SPI, with DC, RST and BUSY lines (and PWR on newer Waveshare HATs). */
export const ssd1680: DisplayEntry<typeof Ssd1680Schema, import("./simulate.ts").Ssd1680Sim> = {
  type: "ssd1680",
  schema: Ssd1680Schema,
  where: (config) => ` on SPI ${config.spi.bus}.${config.spi.chipSelect}`,
  claims: (config) => [
    { resource: `SPI ${config.spi.bus}.${config.spi.chipSelect}`, field: ["spi"] },
    ...Object.entries(config.pins)
      .filter((entry): entry is [string, string] => entry[1] !== undefined)
      .map(([pin, name]) => ({ resource: name, field: ["pins", pin] })),
  ],
  previewable: true,
  // The driver itself decides to refresh the countdown at most once a minute.
  tickMs: 1000,
  open: (config, { hardware, clock }) =>
    openWith(async (resources) => {
      const { Ssd1680Display } = await import("./driver.ts");
      const { bus, chipSelect, speedHz } = config.spi;
      // The panel's power first (Waveshare's newer HATs switch it with a GPIO, which their library
      // raises at init and lowers at exit): without it the panel stays blank. Lowered when the
      // display is released, before the line is let go, so the panel is not left powered by a
      // line nobody holds.
      const pwr = config.pins.pwr;
      if (pwr !== undefined) {
        const line = await hardware.output(pwr, { initial: 1, activeLow: false });
        resources.add({
          close: async () => {
            try {
              await line.set(0);
            } finally {
              await line.close();
            }
          },
        });
      }
      const spi = resources.add(await hardware.spi(bus, chipSelect, speedHz));
      // DC starts low (command); RST starts high: low would hold the chip in reset.
      const dc = resources.add(await hardware.output(config.pins.dc, { initial: 0, activeLow: false }));
      const rst = resources.add(await hardware.output(config.pins.rst, { initial: 1, activeLow: false }));
      // Pulled up, so that a BUSY wire nothing drives (the panel unpowered, its power switch
      // off, or unplugged) reads busy and the draw ends in E_DISPLAY_BUSY with the fix, instead of
      // reading "ready" and "drawing" a panel that stays blank. (Waveshare's library pulls it
      // down; the SSD1680's BUSY is high while busy, so down would read an absent panel as idle.)
      // A powered controller drives the line either way.
      const busy = resources.add(await hardware.input(config.pins.busy, { bias: "pull-up" }));
      return resources.opened(new Ssd1680Display({ spi, dc, rst, busy, clock, rotate: config.rotate }));
    }),
  simulation: async () => (await import("./simulate.ts")).simulation,
};
