import { existsSync } from "node:fs";
import { chmod, chown, lstat, mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import * as v from "valibot";
import { DisplaysSchema } from "../../display/config.ts";
import { EntraToolError, errnoCode, toEntraToolError } from "../core/errors.ts";
import { join } from "../core/path.ts";
import {
  type CommandRunner,
  Provisioner,
  ProvisionFileError,
  type ProvisionFs,
} from "../provision/provision.ts";
import { flag, type OptionSpec, parse, stringOption } from "./args.ts";
import type { CliContext } from "./context.ts";

export const PROVISION_HELP = `Usage: entratool provision [--file FILE] [--root DIR] [--hold SECONDS]

Installs the configuration an operator wrote to the boot partition (entratool.json in
/boot/firmware or /boot): checks it (every error at once), installs it as
/etc/entratool/config.json, seals a store key to this machine (systemd-creds, TPM2 where present),
enables and starts entratool-agent, and moves the file off the boot partition. Run at boot by
entratool-provision.service (enable it once in the image: systemctl enable entratool-provision).
A bad file is left in place, with the reason beside it (entratool-error.txt), in the journal and on
the displays the file names. Without a file it does nothing (exit 0).

  --file FILE       the file (default: the first of /boot/firmware/entratool.json, /boot/entratool.json)
  --root DIR        change the system below DIR instead of / (image builds): nothing is started
  --hold SECONDS    how long a bad file's reason stays on its displays (default 0; the unit: 600)
`;

/** Where `systemctl enable entratool-agent` puts its link: the board was provisioned before. */
const AGENT_WANTS_LINK = "etc/systemd/system/multi-user.target.wants/entratool-agent.service";

const OPTIONS: OptionSpec = {
  file: { type: "string" },
  root: { type: "string" },
  hold: { type: "string" },
  help: { type: "boolean", short: "h" },
};

export async function provisionCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("provision", argv, OPTIONS);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(PROVISION_HELP);
    return 0;
  }
  const root = stringOption(parsed, "root") ?? "/";
  const holdText = stringOption(parsed, "hold") ?? "0";
  if (!/^\d{1,5}$/.test(holdText)) {
    throw new EntraToolError("E_USAGE", {
      message: `--hold must be a whole number of seconds (found '${holdText}').`,
    });
  }
  if (root !== "/" && !existsSync(root)) {
    throw new EntraToolError("E_USAGE", {
      message: `--root ${root} does not exist: name the root of the system to change.`,
    });
  }
  const provisioner = new Provisioner({
    root,
    // Into an image only when told which host secret to seal with (SYSTEMD_CREDENTIAL_SECRET):
    // a key sealed with this machine's would open on no board.
    sealKey: root === "/" || ctx.env.SYSTEMD_CREDENTIAL_SECRET !== undefined,
    run: runCommand,
    systemdRunning: root === "/" && existsSync("/run/systemd/system"),
    hostname: () => hostname(),
    randomBytes: (size) => crypto.getRandomValues(new Uint8Array(size)),
    clock: ctx.clock,
    logger: ctx.logger,
    fs: nodeFs,
  });
  try {
    const result = await provisioner.provision(stringOption(parsed, "file"));
    if (result.kind === "nothing") {
      ctx.io.stdout.write(`Nothing to provision: no ${result.looked.join(" or ")}.\n`);
      return 0;
    }
    ctx.io.stdout.write(
      `Provisioned device '${result.device}' from ${result.file}:\n${result.steps.map((s) => `  ${s}\n`).join("")}`,
    );
    return 0;
  } catch (thrown) {
    if (thrown instanceof ProvisionFileError) {
      ctx.logger.error({ code: thrown.code, errors: thrown.errors }, thrown.message);
      // A board whose agent already runs (provisioned before) keeps it: the reason is shown, not
      // held, since the agent's start waits for this command.
      const agentEnabled = await lstat(join(root, AGENT_WANTS_LINK)).then(
        () => true,
        () => false,
      );
      await showOnDisplays(ctx, thrown, agentEnabled ? 0 : Number(holdText) * 1000);
    }
    throw thrown;
  }
}

/**
 * The reason on the displays the refused file names, when that part of it is itself valid (a
 * board with only an LCD has no other way to say it). Held for `holdMs`: the LEDs and some panels
 * go dark when released, while e-ink keeps its picture.
 */
async function showOnDisplays(ctx: CliContext, error: ProvisionFileError, holdMs: number): Promise<void> {
  const displays = v.safeParse(DisplaysSchema, error.displays);
  if (!displays.success || displays.output.length === 0) return;
  try {
    const module = await ctx.loadDisplays();
    const set = await module.openSignInDisplays({
      clock: ctx.clock,
      logger: ctx.logger,
      env: ctx.env,
      io: { stderr: ctx.io.stderr },
      displays: displays.output,
      terminal: false,
    });
    const shown = new EntraToolError("E_PROVISION_FILE", {
      message: `entratool.json: ${error.errors[0] ?? "invalid"}${error.errors.length > 1 ? ` (+${error.errors.length - 1} more)` : ""}`,
    });
    set.onState({ kind: "error", profile: "provision", error: shown });
    if (holdMs > 0) await ctx.clock.sleep(holdMs, ctx.signal).catch(() => undefined);
    await set.close();
  } catch (displayError) {
    ctx.logger.warn({ err: toEntraToolError(displayError) }, "the reason could not be shown on the displays");
  }
}

const runCommand: CommandRunner = async (argv, options = {}) => {
  const proc = Bun.spawn([...argv], {
    stdin: options.stdin ?? "ignore",
    stdout: options.discardStdout ? "ignore" : "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    proc.stdout ? new Response(proc.stdout).text() : "",
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
};

const nodeFs: ProvisionFs = {
  async readFile(path) {
    try {
      return await readFile(path);
    } catch (error) {
      if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") return undefined;
      throw error;
    }
  },
  async exists(path) {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },
  async mkdir(path, mode, owner) {
    await mkdir(path, { recursive: true, mode });
    await chmod(path, mode);
    if (owner) await chown(path, owner.uid, owner.gid);
  },
  chown: (path, uid, gid) => chown(path, uid, gid),
  chmod: (path, mode) => chmod(path, mode),
  rename: (from, to) => rename(from, to),
  async fsync(path) {
    const handle = await open(path, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async unlink(path) {
    await unlink(path).catch((error: unknown) => {
      if (errnoCode(error) !== "ENOENT") throw error;
    });
  },
};
