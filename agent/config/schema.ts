import * as v from "valibot";
import { DisplaysSchema } from "../../display/config.ts";
import { must, strict } from "../core/schema.ts";

/**
 * The agent's configuration file (config.json in the configuration directory, or `--config FILE`),
 * as one valibot schema: each part's schema lives with its code (the displays' in display/, each
 * type's in its folder) and is put together here. Defaults are in the schema, so the parsed
 * configuration has no holes. deploy/config.schema.json is generated from it
 * (scripts/json-schema.ts), for editors that complete and check the file.
 */
export const AgentConfigSchema = strict(
  {
    // Lets the file name its JSON Schema, for editors; entratool itself ignores it.
    $schema: v.optional(
      v.pipe(v.string(must("a string")), v.description("The JSON Schema of this file, for editors.")),
    ),
    version: v.optional(v.pipe(v.literal(1, must("1")), v.description("The file format: 1.")), 1),
    displays: DisplaysSchema,
  },
  { what: 'an object { "version": 1, "displays": [...] }' },
);

export type AgentConfig = v.InferOutput<typeof AgentConfigSchema>;
