/**
 * Writes deploy/config.schema.json, the JSON Schema (draft 2020-12) of the configuration file, from
 * the configuration's own valibot schema (agent/config/schema.ts), so that an editor completes and
 * checks config.json when its `"$schema"` names the file:
 *
 *   bun scripts/json-schema.ts            writes deploy/config.schema.json
 *   bun scripts/json-schema.ts --check    writes nothing; exits 1 when the file is stale
 *
 * The schema describes what may be written (typeMode "input": `"0x27"` and 39 both), with the
 * defaults. Checks that JSON Schema cannot say (an I2C address's range when written in hex, a
 * resource claimed by two displays) are entratool's alone. @valibot/to-json-schema is a
 * devDependency: this script is never part of the binary.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ConversionConfig, toJsonSchema } from "@valibot/to-json-schema";
import { AgentConfigSchema, InlineProfileSchema, ProfileNameSchema } from "../agent/config/schema.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const SCHEMA_FILE = join(ROOT, "deploy", "config.schema.json");

/** The file's text: the schema, with a title for editors, two-space indented. */
export function configJsonSchema(): string {
  const options: ConversionConfig = {
    target: "draft-2020-12",
    typeMode: "input",
    // check and raw_check are entratool's own rules (a range after a transform, unique resources);
    // they have no JSON Schema form, and the generator would otherwise refuse the whole schema.
    ignoreActions: ["check", "raw_check"],
  };
  const schema = toJsonSchema(AgentConfigSchema, {
    ...options,
    // The profile is a name or the profile itself, chosen by the input's kind (a lazy schema,
    // which the generator would resolve for an object only).
    overrideSchema: ({ valibotSchema }) =>
      valibotSchema.type === "lazy"
        ? {
            anyOf: [toJsonSchema(ProfileNameSchema, options), toJsonSchema(InlineProfileSchema, options)].map(
              ({ $schema: _, ...rest }) => rest,
            ),
          }
        : undefined,
  });
  // The generator still files the lazy schema's object under $defs although nothing refers to it.
  if (!JSON.stringify(schema).includes('"$ref"')) delete schema.$defs;
  const titled = {
    $schema: schema.$schema,
    title: "entratool configuration (config.json)",
    description:
      "The displays that show the sign-in code, and later the agent's settings. Generated from agent/config/schema.ts by scripts/json-schema.ts.",
    ...schema,
  };
  return `${JSON.stringify(titled, null, 2)}\n`;
}

function main(argv: readonly string[]): number {
  const unknown = argv.filter((arg) => arg !== "--check");
  if (unknown.length > 0) {
    process.stderr.write(
      `Unknown argument ${unknown.join(" ")}.\nUsage: bun scripts/json-schema.ts [--check]\n`,
    );
    return 2;
  }
  const text = configJsonSchema();
  if (argv.includes("--check")) {
    let committed = "";
    try {
      committed = readFileSync(SCHEMA_FILE, "utf8");
    } catch {
      // Missing: stale.
    }
    if (committed === text) {
      process.stdout.write("deploy/config.schema.json is up to date.\n");
      return 0;
    }
    process.stdout.write(
      "deploy/config.schema.json is stale: run `bun scripts/json-schema.ts` and commit it.\n",
    );
    return 1;
  }
  writeFileSync(SCHEMA_FILE, text);
  process.stdout.write("wrote deploy/config.schema.json\n");
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
