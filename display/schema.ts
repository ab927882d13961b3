import * as v from "valibot";
import { integerIn, must } from "../agent/core/schema.ts";

/** The parts of the configuration schema that only displays use (agent/core/schema.ts has the rest). */

/** GPIO0-GPIO27: the header's lines on every Pi, named as the kernel names them (`gpioinfo`). */
const GPIO_RULE = 'a header GPIO line name GPIO0-GPIO27, e.g. "GPIO17" (the BCM number, not the pin number)';
export const gpio = v.pipe(
  v.string(must(GPIO_RULE)),
  v.regex(/^GPIO([0-9]|1[0-9]|2[0-7])$/, must(GPIO_RULE)),
  v.description("A GPIO line by its kernel name (the BCM number): GPIO0-GPIO27."),
);

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
