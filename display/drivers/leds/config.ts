import * as v from "valibot";
import { boolean, strict } from "../../../agent/core/schema.ts";
import { gpio } from "../../schema.ts";

/** `{ "type": "leds" }`: status LEDs, an optional buzzer and the optional sign-in button. */
export const LedsSchema = strict({
  type: v.pipe(
    v.literal("leds"),
    v.description("Status LEDs, a buzzer and the sign-in button on GPIO lines."),
  ),
  pins: v.optional(
    strict({
      status: v.optional(gpio, "GPIO23"),
      error: v.optional(gpio),
    }),
    {},
  ),
  buzzer: v.optional(gpio),
  // LEDs wired from 3V3 to the pin: requested active-low, so "on" drives the pin low.
  activeLow: v.optional(
    v.pipe(boolean, v.description("true for LEDs wired from 3.3 V to the pin (lit when low).")),
    false,
  ),
  button: v.optional(
    v.pipe(gpio, v.description("A push button to GND: a short press asks for a new code, 3 s signs out.")),
  ),
});

export type LedsConfig = v.InferOutput<typeof LedsSchema>;
