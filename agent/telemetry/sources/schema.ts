import * as v from "valibot";
import { integerIn, must, show, strict } from "../../core/schema.ts";

/**
 * The `sources` list of the configuration file: what the agent collects and how often. Each entry
 * is a `system` or an `exec` source (./index.ts builds them). Only valibot and agent/core here, so
 * that the configuration's schema can take this file without the sources' code.
 *
 * Example:
 *   [ { "type": "system", "intervalSeconds": 60 },
 *     { "type": "exec", "command": ["/usr/local/bin/soil-sensor", "--json"], "intervalSeconds": 300 } ]
 */

const INTERVAL_RULE = "a whole number of seconds 1-86400";
const TOPIC_RULE = "a topic: letters, digits, _ . - in levels separated by /";
const COMMAND_RULE = 'a list of the program and its arguments, like ["/usr/bin/prog", "--json"]';
const ARGUMENT_RULE = "a non-empty string";
export const EXEC_FORMATS = ["auto", "json", "ndjson", "influx"] as const;

const intervalSeconds = v.pipe(
  integerIn(1, 86400, INTERVAL_RULE),
  v.description("Seconds between two collections (the first one is at start), 1-86400."),
);

/**
 * A message topic. Kept to characters that are safe in an MQTT topic, a URL path and a file name
 * (no wildcards + and #, no empty level), so that every sink can use it as it is.
 */
const topic = v.pipe(
  v.string(must(TOPIC_RULE)),
  v.regex(/^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/, must(TOPIC_RULE)),
  v.maxLength(200, must(`${TOPIC_RULE}, at most 200 characters`)),
);

/** `{ "type": "system" }`: the board's own health, read from /proc and /sys. */
export const SystemSourceSchema = strict(
  {
    type: v.pipe(
      v.literal("system"),
      v.description(
        "The board's health: CPU temperature and load, memory, the root file system, uptime, network counters and the Raspberry Pi's under-voltage and throttling flags.",
      ),
    ),
    intervalSeconds,
    topic: v.optional(v.pipe(topic, v.description('The messages\' topic; default "system".')), "system"),
  },
  { required: { intervalSeconds: INTERVAL_RULE } },
);

/** `{ "type": "exec", "command": [...] }`: a program's output (JSON, NDJSON or InfluxDB line protocol). */
export const ExecSourceSchema = strict(
  {
    type: v.pipe(
      v.literal("exec"),
      v.description(
        "Runs a program (without a shell) and sends what it prints: JSON, NDJSON or InfluxDB line protocol.",
      ),
    ),
    command: v.pipe(
      v.array(v.pipe(v.string(must(ARGUMENT_RULE)), v.minLength(1, must(ARGUMENT_RULE))), must(COMMAND_RULE)),
      v.minLength(1, must(COMMAND_RULE)),
      v.description(
        "The program (a path, or a name found on PATH) and its arguments, run directly: no shell, so no pipes, globs or $VARIABLES.",
      ),
    ),
    intervalSeconds,
    topic: v.optional(v.pipe(topic, v.description("The messages' topic; default: the program's file name."))),
    timeoutSeconds: v.optional(
      v.pipe(
        integerIn(1, 86400, "a whole number of seconds 1-86400"),
        v.description(
          "Seconds the program may run before it is stopped (SIGTERM, SIGKILL 2 s later); default: intervalSeconds, at most 30.",
        ),
      ),
    ),
    format: v.optional(
      v.pipe(
        v.picklist(EXEC_FORMATS, must(`one of ${EXEC_FORMATS.join(", ")}`)),
        v.description(
          'How to read the output: "json" (one value, one message), "ndjson" (one value per line), "influx" (InfluxDB line protocol, a message per line), or "auto" (the first of these that fits).',
        ),
      ),
      "auto",
    ),
  },
  { required: { command: COMMAND_RULE, intervalSeconds: INTERVAL_RULE } },
);

const TYPES_RULE = "one of system, exec";

/** One source: a known `type`, then that type's fields. */
export const SourceSchema = v.variant("type", [SystemSourceSchema, ExecSourceSchema], (issue) => {
  const at = issue.path?.[issue.path.length - 1];
  // Without a known type the other fields mean nothing: only the type is reported.
  if (at?.key === "type") {
    return issue.input === undefined
      ? `is required (${TYPES_RULE})`
      : `must be ${TYPES_RULE} (found ${show(issue.input)})`;
  }
  return `must be an object with a "type" (found ${show(issue.input)})`;
});

/** The `sources` list; absent: none. */
export const SourcesSchema = v.optional(
  v.pipe(
    v.array(SourceSchema, (issue) => `must be a list of sources (found ${show(issue.input)})`),
    v.description("What the agent collects and sends, each on its own schedule."),
  ),
  [],
);

export type SystemSourceConfig = v.InferOutput<typeof SystemSourceSchema>;
export type ExecSourceConfig = v.InferOutput<typeof ExecSourceSchema>;
export type SourceConfig = v.InferOutput<typeof SourceSchema>;
export type ExecFormat = (typeof EXEC_FORMATS)[number];
