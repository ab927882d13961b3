import { EntraToolError, errnoCode, toEntraToolError } from "../core/errors.ts";
import type { CliContext } from "./context.ts";
import { getTokenCommand } from "./get-token.ts";
import {
  createProfileCommand,
  deleteProfileCommand,
  listProfilesCommand,
  logoutCommand,
} from "./profiles.ts";
import { sendCommand } from "./send.ts";
import { statusCommand } from "./status.ts";

export const USAGE = `entratool: sign in to Microsoft Entra ID from devices without a browser.

Usage: entratool <command> [options]

Commands:
  get-token       print an access token (signs in with a device code when needed)
  create-profile  save an app registration and tenant under a name
  list-profiles   list profile names
  delete-profile  delete a profile and its tokens
  logout          remove a profile's saved tokens
  display         test, preview or detect the displays that show the code (LCD, OLED, e-ink, HDMI, LEDs)
  agent           run the agent: stay signed in, collect telemetry, deliver it to MQTT and HTTP sinks
  check-config    check the agent's configuration file (every error at once)
  send            hand telemetry to the running agent (JSON or NDJSON)
  status          show the running agent's sign-in, outbox and sinks
  doctor          check this board (model, 64-bit, groups, buses, displays) and print a report
  provision       install a configuration from the boot partition (entratool.json) at first boot

Run 'entratool <command> --help' for a command's options.
Environment: ENTRATOOL_HOME (config and state), ENTRATOOL_LOG_LEVEL (default warn),
ENTRATOOL_AUTHORITY_HOST (default for new profiles), HTTPS_PROXY / NO_PROXY, NODE_EXTRA_CA_CERTS.
`;

type Command = (ctx: CliContext, argv: readonly string[]) => Promise<number>;

const COMMANDS: Readonly<Record<string, Command>> = {
  "get-token": getTokenCommand,
  "create-profile": createProfileCommand,
  "list-profiles": listProfilesCommand,
  "delete-profile": deleteProfileCommand,
  logout: logoutCommand,
  display: async (ctx, argv) => (await ctx.loadDisplays()).displayCommand(ctx, argv),
  agent: async (ctx, argv) => (await ctx.loadAgent()).agentCommand(ctx, argv),
  "check-config": async (ctx, argv) => (await ctx.loadAgent()).checkConfigCommand(ctx, argv),
  doctor: async (ctx, argv) => (await ctx.loadAgent()).doctorCommand(ctx, argv),
  provision: async (ctx, argv) => (await ctx.loadAgent()).provisionCommand(ctx, argv),
  send: sendCommand,
  status: statusCommand,
};

/**
 * Runs one command and returns the exit code. A failure is one sentence on stderr (the stable
 * code goes to the log, the stack trace only to a debug log); never a stack trace on screen.
 */
export async function runCli(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // No command is a usage error: the usage goes where errors go.
    ctx.io.stderr.write(USAGE);
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    ctx.io.stdout.write(USAGE);
    await ctx.io.flush?.();
    return 0;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    ctx.io.stdout.write(`entratool ${ctx.version}\n`);
    await ctx.io.flush?.();
    return 0;
  }
  const command = COMMANDS[name];
  try {
    if (!command) {
      throw new EntraToolError("E_USAGE", {
        message: `Unknown command '${name}'. Run 'entratool --help' for the list of commands.`,
      });
    }
    const code = await command(ctx, rest);
    // A write that failed fails the command (the outputs write asynchronously; see CliIO.flush).
    await ctx.io.flush?.().catch((error: unknown) => {
      throw new EntraToolError("E_OUTPUT", {
        message: `Cannot write the output (${errnoCode(error) ?? "error"}): check where stdout goes (a full disk, a closed file).`,
        cause: error,
      });
    });
    return code;
  } catch (thrown) {
    const error = toEntraToolError(thrown);
    const level = error.code === "E_INTERNAL" ? "error" : "debug";
    ctx.logger[level](
      { code: error.code, err: error.cause ?? error, details: error.details },
      "command failed",
    );
    ctx.io.stderr.write(`${error.message}\n`);
    return error.exitCode;
  }
}
