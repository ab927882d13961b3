import { EntraToolError } from "../core/errors.ts";

/**
 * The options a command takes, in the shape of node:util's parseArgs. We parse them ourselves:
 * loading node:util costs a cached `get-token` about a tenth of its start-up time, and the
 * grammar we need is small.
 */
export type OptionSpec = Readonly<
  Record<
    string,
    { readonly type: "string" | "boolean"; readonly multiple?: boolean; readonly short?: string }
  >
>;

export interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  /** Arguments that are not options, in order (at most the number the command allows). */
  readonly positionals: readonly string[];
}

/**
 * Strict parsing, GNU style: `--name value`, `--name=value`, `-h`, and `--` ends the options.
 * An unknown flag, a missing value, a value given to a boolean, a repeated single-valued flag or a
 * positional argument beyond `maxPositionals` (default none) is a usage error that names what is
 * wrong. After `--` everything is positional (`send --topic t -- -5`).
 */
export function parse(
  command: string,
  argv: readonly string[],
  options: OptionSpec,
  maxPositionals = 0,
): Parsed {
  const fail = (detail: string): never => {
    throw new EntraToolError("E_USAGE", {
      message: `${detail}. Run 'entratool ${command} --help' for usage.`,
    });
  };
  const byShort = new Map(
    Object.entries(options).flatMap(([name, spec]) => (spec.short ? [[spec.short, name] as const] : [])),
  );
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  const positional = (arg: string): void => {
    if (positionals.length >= maxPositionals) fail(`Unexpected argument '${arg}'`);
    positionals.push(arg);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      for (const rest of argv.slice(i + 1)) positional(rest);
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
    } else if (/^-[^-]$/.test(arg)) {
      name = byShort.get(arg.slice(1));
      if (name === undefined) fail(`Unknown option '${arg}'`);
    } else {
      positional(arg);
      continue;
    }
    const spec = name === undefined ? undefined : options[name];
    if (name === undefined || spec === undefined) return fail(`Unknown option '${arg}'`);
    if (spec.type === "boolean") {
      if (inline !== undefined) fail(`Option '--${name}' does not take a value`);
      values[name] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("-") && next.length > 1))
        fail(`Option '--${name}' needs a value`);
      value = next as string;
      i += 1;
    }
    if (spec.multiple) {
      const list = values[name];
      values[name] = Array.isArray(list) ? [...list, value] : [value];
    } else {
      if (values[name] !== undefined) fail(`Option '--${name}' was given more than once`);
      values[name] = value;
    }
  }
  return { values, positionals };
}

export function stringOption(parsed: Parsed, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === "string" ? value : undefined;
}

export function stringsOption(parsed: Parsed, name: string): string[] {
  const value = parsed.values[name];
  if (value === undefined) return [];
  // `--scope "a b"` is accepted as two scopes, as OAuth writes them space-separated.
  return (Array.isArray(value) ? value : [value])
    .filter((v): v is string => typeof v === "string")
    .flatMap((v) => v.split(/\s+/))
    .filter((v) => v.length > 0);
}

export function flag(parsed: Parsed, name: string): boolean {
  return parsed.values[name] === true;
}

export type OutputFormat = "text" | "json" | "raw";

export function outputFormat(parsed: Parsed, allowed: readonly OutputFormat[]): OutputFormat {
  const value = stringOption(parsed, "output") ?? "text";
  if (!(allowed as readonly string[]).includes(value)) {
    throw new EntraToolError("E_USAGE", {
      message: `--output must be one of ${allowed.filter((f) => f !== "text").join(", ")} (got '${value}').`,
    });
  }
  return value as OutputFormat;
}
