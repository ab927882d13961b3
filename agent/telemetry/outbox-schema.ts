import * as v from "valibot";
import { integerIn, strict } from "../core/schema.ts";

/**
 * The configuration's `"outbox": { "maxBytes": N, "maxAgeSeconds": N }`: how much telemetry the
 * agent keeps on the board while sinks cannot deliver it. Beyond either bound the oldest messages
 * are dropped (and counted), so a board that is offline for weeks never fills its SD card.
 */

/** 64 MiB: about 300 000 messages of 200 bytes, days of telemetry at one message a second. */
export const DEFAULT_OUTBOX_MAX_BYTES = 64 * 1024 * 1024;
/** 7 days, in seconds. */
export const DEFAULT_OUTBOX_MAX_AGE_SECONDS = 7 * 24 * 60 * 60;

/** 64 KiB: below that a single burst of telemetry would already be dropped. */
const MIN_BYTES = 64 * 1024;
/** 4 GiB: more than any SD card should give to a queue. */
const MAX_BYTES = 4 * 1024 * 1024 * 1024;
/** One minute: shorter would drop what a sink is still retrying. */
const MIN_AGE_SECONDS = 60;
/** 366 days. */
const MAX_AGE_SECONDS = 366 * 24 * 60 * 60;

export const OutboxConfigSchema = strict({
  maxBytes: v.optional(
    v.pipe(
      integerIn(MIN_BYTES, MAX_BYTES, `a whole number of bytes ${MIN_BYTES}-${MAX_BYTES}`),
      v.description(
        "Most bytes of telemetry kept on the board while sinks cannot deliver it; beyond it the oldest messages are dropped. Default 64 MiB.",
      ),
    ),
    DEFAULT_OUTBOX_MAX_BYTES,
  ),
  maxAgeSeconds: v.optional(
    v.pipe(
      integerIn(
        MIN_AGE_SECONDS,
        MAX_AGE_SECONDS,
        `a whole number of seconds ${MIN_AGE_SECONDS}-${MAX_AGE_SECONDS}`,
      ),
      v.description(
        "Oldest telemetry kept, in seconds; older messages are dropped even when not delivered. Default 7 days.",
      ),
    ),
    DEFAULT_OUTBOX_MAX_AGE_SECONDS,
  ),
});

export type OutboxConfig = v.InferOutput<typeof OutboxConfigSchema>;
