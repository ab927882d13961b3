import * as v from "valibot";
import { strict } from "../../../agent/core/schema.ts";
import { i2cAddress, i2cBus, rotate } from "../../schema.ts";

/** `{ "type": "ssd1306" }`: a 128x64 OLED on I2C. */
export const Ssd1306Schema = strict({
  type: v.pipe(v.literal("ssd1306"), v.description("SSD1306 128x64 OLED on I2C.")),
  bus: i2cBus,
  // The module's address jumper selects one of two (SA0): anything else is not an SSD1306 on I2C.
  address: v.optional(
    v.pipe(
      i2cAddress(0x3c, 0x3d, '"0x3c" or "0x3d"'),
      v.description('"0x3c", or "0x3d" with the module\'s address jumper moved.'),
    ),
    "0x3c",
  ),
  rotate,
});

export type Ssd1306Config = v.InferOutput<typeof Ssd1306Schema>;
