import * as v from "valibot";
import { DisplaysSchema } from "../../display/config.ts";
import { must, show, strict } from "../core/schema.ts";
import { NAME_PATTERN, NAME_RULE } from "../store/names.ts";
import { ProfileSchema } from "../store/profiles.ts";
import type { Profile } from "../store/types.ts";
import { OutboxConfigSchema } from "../telemetry/outbox-schema.ts";
import {
  AzureMonitorLogsSinkSchema,
  EventHubsSinkSchema,
  HttpSinkSchema,
} from "../telemetry/sinks/http-schema.ts";
import { MqttSinkSchema } from "../telemetry/sinks/mqtt-schema.ts";
import { SourcesSchema } from "../telemetry/sources/schema.ts";

/** A device id goes into MQTT topics and HTTP records: no wildcards, separators or spaces. */
const DEVICE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const DEVICE_RULE = "1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit";

const SINK_TYPES_RULE = "one of mqtt, http, eventhubs, azure-monitor-logs";

/** One sink: a known `type`, then that type's fields. */
export const SinkSchema = v.variant(
  "type",
  [MqttSinkSchema, HttpSinkSchema, EventHubsSinkSchema, AzureMonitorLogsSinkSchema],
  (issue) => {
    const at = issue.path?.[issue.path.length - 1];
    // Without a known type the other fields mean nothing: only the type is reported.
    if (at?.key === "type") {
      return issue.input === undefined
        ? `is required (${SINK_TYPES_RULE})`
        : `must be ${SINK_TYPES_RULE} (found ${show(issue.input)})`;
    }
    return `must be an object with a "type" (found ${show(issue.input)})`;
  },
);

/** The profile's fields as create-profile's defaults fill them in when the file leaves them out. */
const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";

/**
 * A profile written into the configuration itself, so that one file (the boot partition's
 * entratool.json, /etc/entratool/config.json of a package) is a whole board: the fields of
 * profiles.json, with the name, the authority host and the flow defaulted.
 */
export const InlineProfileSchema = strict(
  {
    ...ProfileSchema.entries,
    name: v.optional(ProfileSchema.entries.name, "default"),
    scopes: v.optional(ProfileSchema.entries.scopes, []),
    authorityHost: v.optional(ProfileSchema.entries.authorityHost, DEFAULT_AUTHORITY_HOST),
    defaultFlow: v.optional(ProfileSchema.entries.defaultFlow, "device-code"),
  },
  {
    what: 'a profile name, or an object { "tenantId": …, "clientId": …, "scopes": [...] }',
    required: {
      tenantId:
        "a GUID, a domain name such as contoso.onmicrosoft.com, or one of organizations, common, consumers",
      clientId: "the app registration's application (client) id, a GUID",
    },
  },
);

export const ProfileNameSchema = v.pipe(
  v.string(must(NAME_RULE)),
  v.regex(NAME_PATTERN, must(NAME_RULE)),
  v.description("The name of a profile in profiles.json (entratool create-profile)."),
);

/**
 * The agent's configuration file (config.json in the configuration directory, or `--config FILE`),
 * as one valibot schema: each part's schema lives with its code (the displays' in display/, each
 * type's in its folder; sources, sinks and the outbox in agent/telemetry) and is put together
 * here. Defaults are in the schema, so the parsed configuration has no holes (`device` alone is
 * filled in at start: the host name). deploy/config.schema.json is generated from it
 * (scripts/json-schema.ts), for editors that complete and check the file. `get-token --config`
 * reads the same file for its displays.
 */
export const AgentConfigSchema = strict(
  {
    // Lets the file name its JSON Schema, for editors; entratool itself ignores it.
    $schema: v.optional(
      v.pipe(v.string(must("a string")), v.description("The JSON Schema of this file, for editors.")),
    ),
    version: v.optional(v.pipe(v.literal(1, must("1")), v.description("The file format: 1.")), 1),
    profile: v.optional(
      v.pipe(
        // Chosen by the input's kind (a union would report only "none matched", hiding the field
        // that is wrong in an object).
        v.lazy((input) => (typeof input === "string" ? ProfileNameSchema : InlineProfileSchema)),
        v.description(
          "The profile the agent signs in with: the name of one in profiles.json (entratool create-profile), or the profile itself. Default: default.",
        ),
      ),
      "default",
    ),
    device: v.optional(
      v.pipe(
        v.string(must(DEVICE_RULE)),
        v.regex(DEVICE_PATTERN, must(DEVICE_RULE)),
        v.description("This board's id in every message and MQTT topic. Default: the host name."),
      ),
    ),
    displays: DisplaysSchema,
    sources: SourcesSchema,
    sinks: v.optional(
      v.pipe(
        v.array(SinkSchema, (issue) => `must be a list of sinks (found ${show(issue.input)})`),
        v.description("Where telemetry goes: MQTT brokers and HTTP endpoints, each with its own cursor."),
      ),
      [],
    ),
    outbox: v.optional(OutboxConfigSchema, {}),
  },
  { what: 'an object { "version": 1, "profile": …, "displays": [...], "sources": [...], "sinks": [...] }' },
);

export type AgentConfig = v.InferOutput<typeof AgentConfigSchema>;
export type SinkConfig = v.InferOutput<typeof SinkSchema>;
export type { SourceConfig } from "../telemetry/sources/schema.ts";

/** The configuration as the agent runs it: `device` filled in. */
/**
 * The configuration as the agent runs it: `profile` is the profile's name, `inlineProfile` the
 * profile itself when the file holds it (else it comes from profiles.json), and `device` is set.
 */
export type ResolvedAgentConfig = Omit<AgentConfig, "profile" | "device"> & {
  readonly profile: string;
  readonly inlineProfile?: Profile;
  readonly device: string;
};

/** Whether a device id (the host name, say) may be used as it is. */
export function isValidDevice(device: string): boolean {
  return DEVICE_PATTERN.test(device);
}
