import * as v from "valibot";
import { isRecord } from "./json.ts";

/**
 * The building blocks of every configuration file's schema (valibot): the displays' parts
 * (display/), the agent's configuration (agent/config) and the profiles file (agent/store). What
 * they add to valibot:
 *
 * - One sentence per problem, in the same shape everywhere: `must be <rule> (found <value>)`,
 *   `is required (<rule>)`, `unknown field`; `formatIssues` puts the JSON path in front of each
 *   (`displays[1].address: must be …`).
 * - Unknown keys are errors, ALL of them: valibot's strictObject stops at the first one (`strict`).
 * - Defaults live in the schema (`v.optional(schema, default)`), so the output type has no holes
 *   and there is one place to read them.
 * - No regex flags: the JSON Schema generator (scripts/json-schema.ts) rejects them; write
 *   `[0-9a-fA-F]`.
 */

/** A value as the user wrote it, for messages: JSON where it has one. */
export function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** The message of a rule: "must be <rule> (found <value>)", or "is required (<rule>)" when absent. */
export function must(rule: string): (issue: v.BaseIssue<unknown>) => string {
  return (issue) =>
    issue.input === undefined ? `is required (${rule})` : `must be ${rule} (found ${show(issue.input)})`;
}

/** Names a path item: `type`, or `[2]`. */
function keyOf(item: v.IssuePathItem): string | number | undefined {
  const key: unknown = item.key;
  return typeof key === "string" || typeof key === "number" ? key : undefined;
}

/**
 * A strict object: every unknown key is an error ("unknown field"; in a hand-written file they
 * are almost always typos, which would otherwise leave a default silently in force), and a
 * missing required key says which rule its value follows (`required`).
 *
 * valibot reports only the first unknown key of an object; the others are added here, in the
 * order of the input, so that one edit fixes a whole file. (Its `~run` is the schema's own entry
 * point, the one `safeParse` calls.)
 */
export function strict<const E extends v.ObjectEntries>(
  entries: E,
  options: { readonly required?: Readonly<Partial<Record<keyof E, string>>>; readonly what?: string } = {},
): v.StrictObjectSchema<E, (issue: v.StrictObjectIssue) => string> {
  const message = (issue: v.StrictObjectIssue): string => {
    if (issue.expected === "never") return "unknown field";
    const key =
      issue.path === undefined ? undefined : keyOf(issue.path[issue.path.length - 1] as v.IssuePathItem);
    if (issue.input === undefined && typeof key === "string") {
      const rule = options.required?.[key as keyof E];
      return rule === undefined ? "is required" : `is required (${rule})`;
    }
    return `must be ${options.what ?? "an object"} (found ${show(issue.input)})`;
  };
  const schema = v.strictObject(entries, message);
  const run = schema["~run"];
  const strictRun: typeof run = (dataset, config) => {
    const input = dataset.value;
    if (Array.isArray(input)) {
      // valibot takes an array for an object; a JSON list is not one.
      const issue: v.StrictObjectIssue = {
        kind: "schema",
        type: "strict_object",
        input,
        expected: "Object",
        received: "Array",
        message: "",
      };
      return Object.assign(dataset, { typed: false, issues: [{ ...issue, message: message(issue) }] });
    }
    const result = run.call(schema, dataset, config);
    if (!isRecord(input) || config.abortEarly) return result;
    const unknown = Object.keys(input).filter((key) => !Object.hasOwn(entries, key));
    for (const key of unknown.slice(1)) {
      const issue: v.StrictObjectIssue = {
        kind: "schema",
        type: "strict_object",
        input: key,
        expected: "never",
        received: show(key),
        message: "unknown field",
        path: [{ type: "object", origin: "key", input, key, value: input[key] }],
      };
      if (result.issues) result.issues.push(issue);
      else Object.assign(result, { issues: [issue], typed: false });
    }
    return result;
  };
  // Replaced in place so that `~standard.validate`, which calls `schema["~run"]`, sees it too.
  return Object.assign(schema, { "~run": strictRun });
}

/** A whole number in [min, max]. */
export function integerIn(min: number, max: number, rule = `a whole number ${min}-${max}`) {
  const message = must(rule);
  return v.pipe(v.number(message), v.integer(message), v.minValue(min, message), v.maxValue(max, message));
}

export const boolean = v.boolean(must("true or false"));

/**
 * `displays[1].spi.speedHz`: the JSON path of an issue, starting at `at` (where the value checked
 * sits in its document, e.g. "expect"); "configuration" for a whole document.
 */
export function issuePath(issue: v.BaseIssue<unknown>, at = ""): string {
  let path = at;
  for (const item of issue.path ?? []) {
    const key = keyOf(item);
    if (typeof key === "number") path += `[${key}]`;
    else if (key !== undefined) path += path === "" ? key : `.${key}`;
  }
  return path === "" ? "configuration" : path;
}

/** One line per issue: `<path>: <message>` (paths starting at `at`, see issuePath). */
export function formatIssues(issues: readonly v.BaseIssue<unknown>[], at?: string): string[] {
  return issues.map((issue) => `${issuePath(issue, at)}: ${issue.message}`);
}

/** A path item for an issue added by hand (a rawCheck): the key of `value` in `input`. */
export function pathItem(input: unknown, key: string | number, value: unknown): v.IssuePathItem {
  return Array.isArray(input)
    ? { type: "array", origin: "value", input, key: key as number, value }
    : { type: "object", origin: "value", input: input as Record<string, unknown>, key: String(key), value };
}
