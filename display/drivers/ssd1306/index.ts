import { onI2C, openWith } from "../../resources.ts";
import type { DisplayEntry } from "../../types.ts";
import { Ssd1306Schema } from "./config.ts";

/** SSD1306 128x64 OLED on I2C. */
export const ssd1306: DisplayEntry<typeof Ssd1306Schema, import("./simulate.ts").Ssd1306Sim> = {
  type: "ssd1306",
  schema: Ssd1306Schema,
  ...onI2C,
  previewable: true,
  // The countdown moves every second, and the QR and code pages take turns.
  tickMs: 1000,
  open: (config, { hardware, clock }) =>
    openWith(async (resources) => {
      const { Ssd1306Display } = await import("./driver.ts");
      const bus = resources.add(await hardware.i2c(config.bus));
      // The schema allows only the two addresses the chip can have.
      const address = config.address === 0x3d ? 0x3d : 0x3c;
      return resources.opened(new Ssd1306Display({ bus, address, rotate: config.rotate, clock }));
    }),
  simulation: async () => (await import("./simulate.ts")).simulation,
};
