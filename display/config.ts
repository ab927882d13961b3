import * as v from "valibot";
import { issuePath, pathItem, show } from "../agent/core/schema.ts";
import { DISPLAY_TYPES, type DisplayConfig, entryOf, REGISTRY } from "./registry.ts";

/**
 * The `displays` list of the configuration file: each entry is one of the registered types, checked
 * against that type's schema (display/drivers/<type>/config.ts), and no two may claim the same
 * resource (a GPIO line, an I2C address on a bus, an SPI device, a framebuffer, a file, the
 * terminal). The top-level schema is agent/config's.
 *
 * Example:
 *   [ { "type": "hd44780", "bus": 1, "address": "0x27", "columns": 16, "rows": 2 },
 *     { "type": "leds", "pins": { "status": "GPIO23", "error": "GPIO22" }, "buzzer": "GPIO18" } ]
 */

export type { DisplayConfig, DisplayType } from "./registry.ts";

const TYPES_RULE = `one of ${DISPLAY_TYPES.join(", ")}`;

/** One display: a known `type`, then that type's fields. */
export const DisplaySchema = v.variant(
  "type",
  REGISTRY.map((entry) => entry.schema),
  (issue) => {
    const at = issue.path?.[issue.path.length - 1];
    // Without a known type the other fields mean nothing: only the type is reported.
    if (at?.key === "type") {
      return issue.input === undefined
        ? `is required (${TYPES_RULE})`
        : `must be ${TYPES_RULE} (found ${show(issue.input)})`;
    }
    return `must be an object with a "type" (found ${show(issue.input)})`;
  },
);

/**
 * The resources every display that is valid on its own claims; the second claim of one resource is
 * an error at the field that names it ("displays[1].pins.status: GPIO17 is already used by
 * displays[0].pins.rst"). Displays with errors of their own are left out: their fields mean nothing yet.
 */
const claimsOnce = v.rawCheck<DisplayConfig[]>(({ dataset, addIssue }) => {
  const list = dataset.value;
  if (!Array.isArray(list)) return;
  const broken = new Set(dataset.issues?.map((issue) => issue.path?.[0]?.key));
  const owners = new Map<string, string>();
  list.forEach((config: DisplayConfig, index) => {
    if (broken.has(index)) return;
    for (const { resource, field } of entryOf(config).claims(config)) {
      const path: [v.IssuePathItem, ...v.IssuePathItem[]] = [pathItem(list, index, config)];
      let value: unknown = config;
      for (const key of field) {
        const next = (value as Record<string, unknown>)[key];
        path.push(pathItem(value, key, next));
        value = next;
      }
      const at = issuePath({ path } as v.BaseIssue<unknown>);
      const owner = owners.get(resource);
      if (owner === undefined) owners.set(resource, at.replace(/^\[/, "displays["));
      else addIssue({ message: `${resource} is already used by ${owner}`, path });
    }
  });
});

/** The `displays` list; absent: none. */
export const DisplaysSchema = v.optional(
  v.pipe(
    v.array(DisplaySchema, (issue) => `must be a list of displays (found ${show(issue.input)})`),
    claimsOnce,
    v.description("The displays that show the sign-in code, each with its wiring."),
  ),
  [],
);

/** `displays[2] hd44780 on I2C bus 1 at 0x27`: enough to find the entry and the wire. */
export function displayName(config: DisplayConfig, index: number): string {
  return `displays[${index}] ${config.type}${entryOf(config).where(config)}`;
}
