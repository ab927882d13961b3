import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { DISPLAY_TYPES } from "../../display/registry.ts";
import { configJsonSchema, SCHEMA_FILE } from "../../scripts/json-schema.ts";

interface JsonObject {
  readonly [key: string]: unknown;
}

describe("deploy/config.schema.json", () => {
  test("is what scripts/json-schema.ts makes of the configuration schema now (run it and commit when this fails)", () => {
    expect(readFileSync(SCHEMA_FILE, "utf8")).toBe(configJsonSchema());
  });

  test("draft 2020-12; every display type, strict, with its defaults; $schema allowed at the root", () => {
    const schema = JSON.parse(configJsonSchema()) as JsonObject & {
      properties: { displays: { items: { oneOf: JsonObject[] } }; $schema: JsonObject };
    };
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.$schema).toMatchObject({ type: "string" });
    const options = schema.properties.displays.items.oneOf as Array<{
      properties: { type: { const: string } } & Record<string, { default?: unknown }>;
      additionalProperties: boolean;
    }>;
    expect(options.map((option) => option.properties.type.const)).toEqual(DISPLAY_TYPES);
    expect(options.every((option) => option.additionalProperties === false)).toBe(true);
    const hd44780 = options.find((option) => option.properties.type.const === "hd44780");
    // Defaults as a person writes them: the address in hex.
    expect(hd44780?.properties.address?.default).toBe("0x27");
    expect(hd44780?.properties.columns?.default).toBe(16);
  });
});
