import { onI2C, openWith } from "../../resources.ts";
import type { DisplayEntry } from "../../types.ts";
import { Hd44780Schema } from "./config.ts";

/** HD44780 16x2/20x4 character LCD on a PCF8574 I2C backpack. */
export const hd44780: DisplayEntry<typeof Hd44780Schema, import("./simulate.ts").Hd44780Sim> = {
  type: "hd44780",
  schema: Hd44780Schema,
  ...onI2C,
  previewable: true,
  // The countdown moves every second, and long URLs page.
  tickMs: 1000,
  open: (config, { hardware, clock }) =>
    openWith(async (resources) => {
      const { Hd44780Display } = await import("./driver.ts");
      const bus = resources.add(await hardware.i2c(config.bus));
      const { address, columns, rows, backlight } = config;
      return resources.opened(new Hd44780Display({ bus, address, columns, rows, backlight, clock }));
    }),
  simulation: async () => (await import("./simulate.ts")).simulation,
};
