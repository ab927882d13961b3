import { type ParseArgsConfig, parseArgs } from "node:util";
import { EntraToolError } from "../errors.ts";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
}

/** Strict parsing: an unknown flag or a missing value is a usage error that names the flag. */
export function parse(command: string, argv: readonly string[], options: OptionSpec): Parsed {
  try {
    const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    return { values };
  } catch (error) {
    const detail = error instanceof Error ? error.message.replace(/\.$/, "") : String(error);
    throw new EntraToolError("E_USAGE", {
      message: `${detail}. Run 'entratool ${command} --help' for usage.`,
    });
  }
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
