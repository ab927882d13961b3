import { describe, expect, test } from "vitest";
import { type OptionSpec, outputFormat, parse, stringsOption } from "../../agent/cli/args.ts";
import { EntraToolError } from "../../agent/core/errors.ts";

const OPTIONS: OptionSpec = {
  profile: { type: "string" },
  scope: { type: "string", multiple: true },
  output: { type: "string" },
  "force-refresh": { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

function usageError(argv: string[]): EntraToolError {
  try {
    parse("get-token", argv, OPTIONS);
  } catch (error) {
    if (error instanceof EntraToolError) return error;
    throw error;
  }
  throw new Error(`no error for ${argv.join(" ")}`);
}

describe("command line parsing", () => {
  test("values, inline values, booleans, short flags and repeated options", () => {
    const { values } = parse(
      "get-token",
      [
        "--profile",
        "p1",
        "--scope=User.Read",
        "--scope",
        "Mail.Read",
        "--force-refresh",
        "-h",
        "--output=json",
      ],
      OPTIONS,
    );
    expect(values).toEqual({
      profile: "p1",
      scope: ["User.Read", "Mail.Read"],
      "force-refresh": true,
      help: true,
      output: "json",
    });
  });

  test("an empty command line gives no values, and `--` ends the options", () => {
    expect(parse("get-token", [], OPTIONS).values).toEqual({});
    expect(parse("get-token", ["--profile", "p", "--"], OPTIONS).values).toEqual({ profile: "p" });
  });

  test("an inline value may contain '=' and may be empty", () => {
    expect(parse("get-token", ["--scope=api://x/.default?a=b", "--profile="], OPTIONS).values).toEqual({
      scope: ["api://x/.default?a=b"],
      profile: "",
    });
  });

  test.each([
    [["--bogus"], "Unknown option '--bogus'"],
    [["-x"], "Unknown option '-x'"],
    [["--profile"], "Option '--profile' needs a value"],
    [["--profile", "--output", "json"], "Option '--profile' needs a value"],
    [["--force-refresh=yes"], "Option '--force-refresh' does not take a value"],
    [["--profile", "a", "--profile", "b"], "Option '--profile' was given more than once"],
    [["stray"], "Unexpected argument 'stray'"],
    [["--", "stray"], "Unexpected argument 'stray'"],
  ])("%j is a usage error: %s", (argv, detail) => {
    const error = usageError(argv);
    expect(error.code).toBe("E_USAGE");
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe(`${detail}. Run 'entratool get-token --help' for usage.`);
  });

  test("scopes may be given space-separated, as OAuth writes them", () => {
    const parsed = parse(
      "get-token",
      ["--scope", "User.Read  Mail.Read", "--scope", "offline_access"],
      OPTIONS,
    );
    expect(stringsOption(parsed, "scope")).toEqual(["User.Read", "Mail.Read", "offline_access"]);
  });

  test("--output accepts only the formats the command offers", () => {
    expect(outputFormat(parse("x", ["--output", "raw"], OPTIONS), ["text", "json", "raw"])).toBe("raw");
    expect(outputFormat(parse("x", [], OPTIONS), ["text", "json"])).toBe("text");
    expect(() => outputFormat(parse("x", ["--output", "raw"], OPTIONS), ["text", "json"])).toThrow(
      "--output must be one of json (got 'raw').",
    );
  });
});
