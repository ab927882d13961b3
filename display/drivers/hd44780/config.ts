import * as v from "valibot";
import { boolean, must, strict } from "../../../agent/core/schema.ts";
import { i2cAddress, i2cBus } from "../../schema.ts";

/** `{ "type": "hd44780" }`: a 16x2 or 20x4 character LCD on a PCF8574 I2C backpack. */
export const Hd44780Schema = strict({
  type: v.pipe(
    v.literal("hd44780"),
    v.description("HD44780 16x2 or 20x4 character LCD on a PCF8574 I2C backpack."),
  ),
  bus: i2cBus,
  // 0x00-0x02 and 0x78-0x7F are reserved by the I2C specification (general call, 10-bit…).
  address: v.optional(
    v.pipe(
      i2cAddress(0x03, 0x77, 'an I2C address 0x03-0x77, e.g. "0x27" or 39'),
      v.description('The backpack\'s address: "0x27" (PCF8574T) or "0x3F" (PCF8574AT).'),
    ),
    "0x27",
  ),
  columns: v.optional(v.picklist([16, 20], must("16 or 20")), 16),
  rows: v.optional(v.picklist([2, 4], must("2 or 4")), 2),
  backlight: v.optional(boolean, true),
});

export type Hd44780Config = v.InferOutput<typeof Hd44780Schema>;
