import { EntraToolError } from "../core/errors.ts";
import type { Output } from "../core/output.ts";
import { configFileOf } from "./agent.ts";
import { flag, type OptionSpec, outputFormat, parse, stringOption } from "./args.ts";
import type { CliContext } from "./context.ts";
import { type DisplayProbe, type DrawResult, runDoctor } from "./doctor/checks.ts";
import { type Machine, realMachine } from "./doctor/machine.ts";
import { formatText } from "./doctor/report.ts";

export const DOCTOR_HELP = `Usage: entratool doctor [--config FILE] [--draw [--step SECONDS]] [--output json]

Checks this board and prints a report to paste into a bug report: the board, kernel, OS and
whether they are 64-bit; the user's groups (gpio, i2c, spi, video) and the command that fixes a
missing one; the entratool-agent service (installed, enabled, running, its user and groups); the
configuration (found, valid, its profile; sink URLs without credentials); the I2C buses, SPI
devices, GPIO chips and framebuffers with their permissions; what 'display detect' finds.
Changes nothing, and never prints a token, a key or a password.

  --config FILE   the agent's configuration (default: config.json in the configuration directory,
                  else the service's /etc/entratool/config.json)
  --draw          also draw every screen, with a sample code, on the configured displays (as
                  'display test' does) and report each display ok or failed
  --step SECONDS  with --draw: how long each screen stays (default 1)
  --output json   the same report as one JSON object

Every finding is ok, warn (works, but something is missing or not as expected) or fail (something
entratool needs is broken). Exit status: 0 when nothing failed (warnings allowed), 1 when at least
one check failed, 2 for a bad command line.
`;

const OPTIONS: OptionSpec = {
  config: { type: "string" },
  draw: { type: "boolean" },
  step: { type: "string" },
  output: { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** Time on each screen with --draw: long enough to see each one, short enough for a quick report. */
const DRAW_STEP_SECONDS = 1;

/**
 * `entratool doctor`. `machine` is what it reads (the real one unless a test hands a scratch tree
 * laid out like a Pi); everything else comes from the context, the displays through the display
 * module as `display detect` and `display test` use them.
 */
export async function doctorCommand(
  ctx: CliContext,
  argv: readonly string[],
  machine: Machine = realMachine(),
): Promise<number> {
  const parsed = parse("doctor", argv, OPTIONS);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const format = outputFormat(parsed, ["text", "json"]);
  const draw = flag(parsed, "draw");
  const stepText = stringOption(parsed, "step");
  if (stepText !== undefined && !draw) {
    throw new EntraToolError("E_USAGE", { message: "--step goes with --draw." });
  }
  const step = Number(stepText ?? DRAW_STEP_SECONDS);
  if (!Number.isFinite(step) || step < 0) {
    throw new EntraToolError("E_USAGE", { message: "--step takes a number of seconds, 0 or more." });
  }
  const report = await runDoctor({
    machine,
    clock: ctx.clock,
    version: ctx.version,
    configFile: stringOption(parsed, "config"),
    defaultConfigFile: configFileOf(ctx, undefined).file,
    profiles: ctx.profiles,
    displays: displayProbe(ctx, step),
    draw,
  });
  ctx.io.stdout.write(format === "json" ? `${JSON.stringify(report, null, 2)}\n` : formatText(report));
  return report.summary.fail > 0 ? 1 : 0;
}

/** Collects what a display command prints, line by line. */
class Lines implements Output {
  readonly isTTY = false;
  #text = "";
  write(text: string): void {
    this.#text += text;
  }
  lines(): string[] {
    return this.#text.split("\n").filter((line) => line.trim() !== "");
  }
}

/**
 * `display detect` and `display test` of the display module, run as they are and read from what
 * they print: the doctor reports what those commands find, by the same code. The terminal display
 * draws into a buffer that is dropped, so the report stays readable.
 */
function displayProbe(ctx: CliContext, step: number): DisplayProbe {
  const run = async (argv: readonly string[]): Promise<string[]> => {
    const module = await ctx.loadDisplays();
    const stdout = new Lines();
    const sub: CliContext = {
      ...ctx,
      io: { stdout, stderr: new Lines(), interactive: false, ask: async () => undefined },
      // A display that fails is in the report with its sentence; the same error logged on stderr
      // would only repeat it, unless someone asked for the debug log.
      logger: ctx.logger.isLevelEnabled("debug") ? ctx.logger : ctx.logger.child({}, { level: "silent" }),
    };
    await module.displayCommand(sub, argv);
    return stdout.lines();
  };
  return {
    detect: () => run(["detect"]),
    draw: async (file) => drawResults(await run(["test", "--config", file, "--step", String(step)])),
  };
}

/** `display test` prints `Showing: <screen>` as it goes, then `<display>: ok` or `<display>: FAILED: <why>`. */
export function drawResults(lines: readonly string[]): DrawResult[] {
  const results: DrawResult[] = [];
  for (const line of lines) {
    if (line.startsWith("Showing: ")) continue;
    const failed = line.indexOf(": FAILED: ");
    if (failed !== -1) {
      results.push({
        name: line.slice(0, failed),
        ok: false,
        error: line.slice(failed + ": FAILED: ".length),
      });
    } else if (line.endsWith(": ok")) {
      results.push({ name: line.slice(0, -": ok".length), ok: true });
    }
  }
  return results;
}
