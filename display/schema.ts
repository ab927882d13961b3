import * as v from "valibot";
import { integerIn, must } from "../agent/core/schema.ts";

/** The parts of the configuration schema that only displays use (agent/core/schema.ts has the rest). */

/**
 * GPIO0-GPIO27: the header's lines on every Pi, by BCM number. Found by that name where the kernel
 * names the line so (`gpioinfo`), else by offset on the header's GPIO chip: the Pi 4's device tree
 * calls several of them SPI_CE0_N, TXD1, SDA1..., the Pi 5's calls GPIO0/1 ID_SDA/ID_SCL.
 */
const GPIO_RULE = 'a header GPIO line name GPIO0-GPIO27, e.g. "GPIO17" (the BCM number, not the pin number)';
export const gpio = v.pipe(
  v.string(must(GPIO_RULE)),
  v.regex(/^GPIO([0-9]|1[0-9]|2[0-7])$/, must(GPIO_RULE)),
  v.description(
    "A header GPIO line by its BCM number, GPIO0-GPIO27 (found by offset on the header's chip where the kernel names the line otherwise).",
  ),
);

/**
 * How a pixel display is mounted: the picture is turned clockwise by this many degrees on the
 * panel; at 90 and 270 the screens are laid out for the panel's height as width.
 */
export const rotate = v.optional(
  v.pipe(
    v.picklist([0, 90, 180, 270], must("0, 90, 180 or 270")),
    v.description(
      "Turns the picture clockwise by 0, 90, 180 or 270 degrees, as the panel is mounted; 90 and 270 lay the screens out upright (portrait on a landscape panel).",
    ),
  ),
  0,
);

export type Rotation = 0 | 90 | 180 | 270;

/** "0x27" (any case) → 39. */
function hex(text: string): number {
  return Number.parseInt(text.slice(2), 16);
}

/**
 * An I2C address in [min, max], written "0x27" (as i2cdetect and datasheets do) or 39; the output
 * is the number. A wrong value is reported as it was written (`found "0x80"`).
 */
export function i2cAddress(min: number, max: number, rule: string) {
  const message = must(rule);
  const allowed = (address: number): boolean => address >= min && address <= max;
  return v.union(
    [
      v.pipe(v.number(), v.integer(message), v.minValue(min, message), v.maxValue(max, message)),
      v.pipe(
        v.string(),
        v.regex(/^0x[0-9a-fA-F]{1,2}$/, message),
        v.check((text) => allowed(hex(text)), message),
        v.transform(hex),
      ),
    ],
    message,
  );
}

/** The I2C adapter of a display: N of /dev/i2c-N, 1 (the header's) when absent. */
export const i2cBus = v.optional(
  v.pipe(integerIn(0, 255), v.description("N of /dev/i2c-N; 1 is the header's SDA/SCL (pins 3 and 5).")),
  1,
);
