import { loadConfig } from "../config/load.ts";
import { configFileOf, profileOf, resolveConfig } from "./agent.ts";
import { flag, type OptionSpec, outputFormat, parse, stringOption } from "./args.ts";
import type { CliContext } from "./context.ts";

export const CHECK_CONFIG_HELP = `Usage: entratool check-config [--config FILE] [--output json]

Checks the agent's configuration file as 'entratool agent' would read it: every error at once,
each with the path of its field (exit 2), and that its profile exists. Changes nothing.

  --config FILE   the file (default: config.json in the configuration directory)
  --output json   print the configuration with every default filled in
`;

const OPTIONS: OptionSpec = {
  config: { type: "string" },
  output: { type: "string" },
  help: { type: "boolean", short: "h" },
};

export async function checkConfigCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("check-config", argv, OPTIONS);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(CHECK_CONFIG_HELP);
    return 0;
  }
  const format = outputFormat(parsed, ["text", "json"]);
  const { file, isDefault } = configFileOf(ctx, stringOption(parsed, "config"));
  const config = resolveConfig(await loadConfig(file, { isDefault }));
  await profileOf(ctx, config, file);
  if (format === "json") {
    ctx.io.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    return 0;
  }
  const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`;
  ctx.io.stdout.write(
    `${file} is valid: profile '${config.profile}', device '${config.device}', ` +
      `${count(config.displays.length, "display")}, ${count(config.sources.length, "source")}, ` +
      `${count(config.sinks.length, "sink")}.\n`,
  );
  return 0;
}
