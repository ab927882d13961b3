import * as v from "valibot";
import { integerIn, strict } from "../../../agent/core/schema.ts";
import { gpio, rotate } from "../../schema.ts";

/**
 * `{ "type": "ssd1680" }`: a 2.13" 250x122 e-ink panel on SPI with DC, RST and BUSY lines. The
 * defaults are the Waveshare HAT's wiring; `pwr` is the panel power switch of Waveshare's newer HATs
 * (GPIO18 on those), held high while the display is open.
 */
export const Ssd1680Schema = strict({
  type: v.pipe(v.literal("ssd1680"), v.description('SSD1680 2.13" 250x122 e-ink panel on SPI.')),
  spi: v.optional(
    strict({
      bus: v.optional(v.pipe(integerIn(0, 6), v.description("B of /dev/spidevB.C.")), 0),
      chipSelect: v.optional(v.pipe(integerIn(0, 3), v.description("C of /dev/spidevB.C (CE0, CE1).")), 0),
      // The SSD1680 takes writes up to 20 MHz; below 100 kHz a refresh crawls.
      speedHz: v.optional(integerIn(100_000, 20_000_000, "a clock in Hz, 100000-20000000"), 4_000_000),
    }),
    {},
  ),
  pins: v.optional(
    strict({
      dc: v.optional(gpio, "GPIO25"),
      rst: v.optional(gpio, "GPIO17"),
      busy: v.optional(gpio, "GPIO24"),
      pwr: v.optional(
        v.pipe(
          gpio,
          v.description(
            "The panel's power switch on Waveshare's newer e-Paper HATs (GPIO18 there): held high while the display is open, low after. Absent: the panel is always powered.",
          ),
        ),
      ),
    }),
    {},
  ),
  rotate,
});

export type Ssd1680Config = v.InferOutput<typeof Ssd1680Schema>;
