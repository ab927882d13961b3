import { validateConfig } from "../config/load.ts";
import { fsyncDir, writeFileAtomic } from "../core/atomic.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, errnoCode } from "../core/errors.ts";
import { readFileCapped } from "../core/files.ts";
import { parseJsonWithComments } from "../core/jsonc.ts";
import type { Logger } from "../core/log.ts";
import { dirname, join } from "../core/path.ts";
import { parseGroupFile } from "../linux/peer.ts";

/**
 * First-boot provisioning: the operator writes `entratool.json` (the agent's configuration with
 * its profile written in, the device id as a pattern) to the SD card's FAT boot partition. At
 * boot, entratool-provision.service runs `entratool provision`, which
 *   1. validates the file (every error at once; a bad file is left where it is, with the reason
 *      beside it in entratool-error.txt and in the journal, and the board stays unprovisioned),
 *   2. installs it as /etc/entratool/config.json (0640 root:entratool),
 *   3. seals a store key to the machine once (`systemd-creds encrypt`, TPM2 where present) and
 *      writes the agent's drop-in that loads it,
 *   4. enables the agent (and starts it when systemd runs),
 *   5. moves the file off the FAT partition (root-only, under /var/lib/entratool-provision), so
 *      that nothing of it stays where any computer with a card reader can read it.
 * Every step is idempotent: a power cut half-way repeats the run at the next boot with the same
 * result, and a board without the file does nothing.
 */

/** Where the operator's file may be, in order: Raspberry Pi OS from Bookworm on, then before it. */
export const BOOT_FILES = ["boot/firmware/entratool.json", "boot/entratool.json"] as const;
export const CONFIG_FILE = "etc/entratool/config.json";
export const CREDENTIAL_FILE = "etc/credstore.encrypted/entratool.key";
export const DROP_IN_FILE = "etc/systemd/system/entratool-agent.service.d/credential.conf";
export const ASIDE_DIR = "var/lib/entratool-provision";
/** Beside the boot file: the reason a file was refused, readable from any computer. */
export const ERROR_FILE_NAME = "entratool-error.txt";
const AGENT_UNIT = "entratool-agent.service";
const SERVICE_GROUP = "entratool";

export const DROP_IN = `# Written by 'entratool provision': the token store's key, sealed to this machine.
[Service]
LoadCredentialEncrypted=entratool.key:/${CREDENTIAL_FILE}
`;

/** A program the provisioning runs (systemctl, systemd-creds). */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}
export type CommandRunner = (
  argv: readonly string[],
  options?: { readonly stdin?: Uint8Array; readonly discardStdout?: boolean },
) => Promise<CommandResult>;

/** The machine the provisioning changes, injected so that a test (or an image build) names a scratch root. */
export interface ProvisionHost {
  /** "/" on a board; a scratch root for tests and image builds (every path below it, systemctl --root). */
  readonly root: string;
  readonly run: CommandRunner;
  /** Whether systemd is the running init (/run/systemd/system exists): only then is the agent started. */
  readonly systemdRunning: boolean;
  /** The board's host name (the `{hostname}` of the device pattern). */
  readonly hostname: () => string;
  readonly randomBytes: (size: number) => Uint8Array;
  readonly clock: Clock;
  readonly logger: Logger;
  /** File system operations that need privileges or Node (ownership, moves), injected for the same reason. */
  readonly fs: ProvisionFs;
  /**
   * Whether to seal the store key with systemd-creds. On a board, yes; into an image (--root)
   * no, since the key would be sealed to the machine building it (its TPM, or its host secret,
   * which systemd binds to that machine's id) and no board could open it.
   */
  readonly sealKey: boolean;
}

export interface ProvisionFs {
  readFile(path: string): Promise<Uint8Array | undefined>;
  exists(path: string): Promise<boolean>;
  mkdir(path: string, mode: number, owner?: { uid: number; gid: number }): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Writes the file's data to the disk (fsync). */
  fsync(path: string): Promise<void>;
}

export type ProvisionResult =
  | { readonly kind: "nothing"; readonly looked: readonly string[] }
  | {
      readonly kind: "provisioned";
      readonly file: string;
      readonly device: string;
      readonly steps: readonly string[];
      readonly movedTo: string;
    };

/** A refused file: what is wrong, and the displays the file names (to show the reason on). */
export class ProvisionFileError extends EntraToolError {
  readonly displays: unknown;
  readonly errors: readonly string[];
  constructor(file: string, errors: readonly string[], displays: unknown) {
    const count = errors.length;
    super("E_PROVISION_FILE", {
      message: `The provisioning file ${file} has ${count} ${count === 1 ? "error" : "errors"}: ${errors.join("; ")}. The board stays unprovisioned: fix the file (the reason is also in ${ERROR_FILE_NAME} beside it) and reboot.`,
      details: { file, errors },
    });
    this.displays = displays;
    this.errors = errors;
  }
}

const PLACEHOLDERS = "{serial}, {serial8} or {hostname}";

/**
 * The device id from its pattern: `{serial}` is the board's serial number (lower-case hex, no
 * leading zeros), `{serial8}` its last 8 digits (what Raspberry Pi OS shows), `{hostname}` the
 * host name's first label. Returns the id, or the sentence that says why it cannot be made.
 */
export function expandDevice(
  pattern: string,
  board: { readonly serial: string | undefined; readonly hostname: string },
): { readonly device: string } | { readonly error: string } {
  const unknown = [...pattern.matchAll(/\{([^}]*)\}/g)]
    .map((m) => m[1])
    .filter((name) => name !== "serial" && name !== "serial8" && name !== "hostname");
  if (unknown.length > 0) {
    return { error: `device: {${unknown[0]}} is not a placeholder (use ${PLACEHOLDERS})` };
  }
  if (/\{serial8?\}/.test(pattern) && board.serial === undefined) {
    return { error: "device: this board has no serial number to put into {serial}: use {hostname}" };
  }
  const serial = board.serial ?? "";
  const device = pattern
    .replaceAll("{serial}", serial)
    .replaceAll("{serial8}", serial.slice(-8).padStart(8, "0"))
    .replaceAll("{hostname}", board.hostname.split(".")[0] ?? "");
  return { device };
}

/** The board's serial number: the device tree's, else /proc/cpuinfo's `Serial`; lower-case hex without leading zeros. */
export async function boardSerial(fs: ProvisionFs, root: string): Promise<string | undefined> {
  const decode = (bytes: Uint8Array | undefined): string | undefined => {
    if (!bytes) return undefined;
    // The device tree's strings end in a NUL.
    const text = new TextDecoder().decode(bytes).replace(/\0/g, "").trim().toLowerCase();
    const hex = text.replace(/^0+(?=.)/, "");
    return /^[0-9a-f]{1,32}$/.test(hex) && !/^0+$/.test(text) ? hex : undefined;
  };
  for (const file of ["proc/device-tree/serial-number", "sys/firmware/devicetree/base/serial-number"]) {
    const serial = decode(await fs.readFile(join(root, file)));
    if (serial) return serial;
  }
  const cpuinfo = await fs.readFile(join(root, "proc/cpuinfo"));
  const line = cpuinfo && /^Serial\s*:\s*([0-9a-fA-F]+)\s*$/m.exec(new TextDecoder().decode(cpuinfo));
  return line ? decode(new TextEncoder().encode(line[1])) : undefined;
}

/** The gid of `name` in the root's /etc/group. */
async function groupId(fs: ProvisionFs, root: string, name: string): Promise<number | undefined> {
  const bytes = await fs.readFile(join(root, "etc/group"));
  return parseGroupFile(new TextDecoder().decode(bytes ?? new Uint8Array())).find(
    (group) => group.name === name,
  )?.gid;
}

/**
 * Checks the operator's file: the agent's configuration (the same schema, every error at once),
 * with the profile written in (a new board has no profiles.json) and the device id expanded.
 * Returns the configuration as it will be installed, or throws ProvisionFileError.
 */
export function checkProvisionFile(
  file: string,
  text: string,
  board: { readonly serial: string | undefined; readonly hostname: string },
): { readonly config: Record<string, unknown>; readonly device: string } {
  let parsed: unknown;
  try {
    parsed = parseJsonWithComments(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new ProvisionFileError(file, [`it is not valid JSON (${(error as Error).message})`], undefined);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ProvisionFileError(
      file,
      ['it must be a JSON object { "profile": …, "displays": [...], … }'],
      undefined,
    );
  }
  const config = { ...(parsed as Record<string, unknown>) };
  const errors: string[] = [];
  // A pattern that cannot be expanded is reported once, as such, not again by the schema.
  let patternFailed = false;
  if (typeof config.device === "string") {
    const expanded = expandDevice(config.device, board);
    if ("error" in expanded) {
      errors.push(expanded.error);
      patternFailed = true;
    } else {
      config.device = expanded.device;
    }
  }
  if (config.profile === undefined || typeof config.profile === "string") {
    errors.push(
      'profile: must be the profile itself, { "tenantId": …, "clientId": …, "scopes": [...] } (a new board has no saved profiles)',
    );
  }
  const checked = validateConfig(config);
  if (!checked.ok) {
    errors.push(...checked.errors.filter((e) => !(patternFailed && e.startsWith("device:"))));
  }
  if (errors.length > 0) throw new ProvisionFileError(file, errors, config.displays);
  // Without a device id the agent takes the host name's first label, as here.
  const device = typeof config.device === "string" ? config.device : (board.hostname.split(".")[0] ?? "");
  return { config, device };
}

export class Provisioner {
  readonly #host: ProvisionHost;

  constructor(host: ProvisionHost) {
    this.#host = host;
  }

  #at(path: string): string {
    return join(this.#host.root, path);
  }

  /** The operator's file: `named` (relative to the root's /), else the first of BOOT_FILES that exists. */
  async find(named?: string): Promise<string | undefined> {
    if (named !== undefined) return named;
    for (const candidate of BOOT_FILES) {
      if (await this.#host.fs.exists(this.#at(candidate))) return this.#at(candidate);
    }
    return undefined;
  }

  async provision(named?: string): Promise<ProvisionResult> {
    const { fs, logger } = this.#host;
    const file = await this.find(named);
    if (file === undefined) return { kind: "nothing", looked: BOOT_FILES.map((f) => this.#at(f)) };
    let text: string;
    try {
      text = (await readFileCapped(file)).toString("utf8");
    } catch (error) {
      throw new EntraToolError("E_PROVISION_FILE", {
        message: `The provisioning file ${file} cannot be read (${errnoCode(error) ?? "error"}): write it again to the boot partition.`,
        cause: error,
      });
    }
    const board = {
      serial: await boardSerial(fs, this.#host.root),
      hostname: this.#host.hostname(),
    };
    let checked: ReturnType<typeof checkProvisionFile>;
    try {
      checked = checkProvisionFile(file, text, board);
    } catch (error) {
      if (error instanceof ProvisionFileError) await this.#writeErrorFile(file, error);
      throw error;
    }
    const gid = await groupId(fs, this.#host.root, SERVICE_GROUP);
    if (gid === undefined) {
      throw new EntraToolError("E_PROVISION", {
        message: `The group ${SERVICE_GROUP} does not exist on this system: install the entratool package (or run install.sh) first, then reboot.`,
      });
    }
    const steps: string[] = [];
    steps.push(await this.#installConfig(checked.config, file, gid));
    steps.push(...(await this.#sealKey()));
    steps.push(...(await this.#enableAgent()));
    const movedTo = await this.#moveAside(file, text);
    steps.push(`moved ${file} to ${movedTo}`);
    logger.info({ device: checked.device, file, movedTo }, "board provisioned");
    return { kind: "provisioned", file, device: checked.device, steps, movedTo };
  }

  /** The reason beside the refused file, for an operator who has only a card reader. */
  async #writeErrorFile(file: string, error: ProvisionFileError): Promise<void> {
    const at = new Date(this.#host.clock.now()).toISOString();
    const text = [
      `entratool could not use ${file.split("/").pop()} (${at}):`,
      ...error.errors.map((e) => `  - ${e}`),
      "Fix the file and reboot; the board stays unprovisioned until then.",
      "",
    ].join("\r\n");
    try {
      await writeFileAtomic(join(dirname(file), ERROR_FILE_NAME), text, 0o644);
    } catch (writeError) {
      // A read-only boot partition: the journal and the displays still say it.
      this.#host.logger.warn({ err: writeError }, `cannot write ${ERROR_FILE_NAME} beside ${file}`);
    }
  }

  async #installConfig(config: Record<string, unknown>, from: string, gid: number): Promise<string> {
    const { fs } = this.#host;
    const target = this.#at(CONFIG_FILE);
    await fs.mkdir(dirname(target), 0o750, { uid: 0, gid });
    const stamp = new Date(this.#host.clock.now()).toISOString();
    const text = `// Installed by 'entratool provision' from ${from.split("/").pop()} (${stamp}).\n${JSON.stringify(config, null, 2)}\n`;
    const before = await fs.readFile(target);
    const same = before !== undefined && stripHeader(new TextDecoder().decode(before)) === stripHeader(text);
    if (!same) await writeFileAtomic(target, text, 0o640);
    await fs.chown(target, 0, gid);
    await fs.chmod(target, 0o640);
    return same ? `kept /${CONFIG_FILE} (unchanged)` : `installed /${CONFIG_FILE}`;
  }

  /**
   * A store key sealed to this machine, made once: a new key would make the saved tokens
   * unreadable. One that is there is kept only when it still decrypts (a power cut can leave an
   * empty file, a cloned card another machine's key); else it is set aside and a new one made.
   */
  async #sealKey(): Promise<string[]> {
    const { fs, run, logger } = this.#host;
    if (!this.#host.sealKey) {
      return [
        "no sealed key: sealed here it would belong to this machine, not the board (the agent keeps its own key)",
      ];
    }
    const credential = this.#at(CREDENTIAL_FILE);
    const steps: string[] = [];
    const usable = async (): Promise<boolean> => {
      // Decrypted to nowhere: only whether it can be is wanted, never the key.
      const decrypted = await run(["systemd-creds", "decrypt", "--name=entratool.key", credential, "-"], {
        discardStdout: true,
      }).catch(() => undefined);
      return decrypted?.code === 0;
    };
    const present = await fs.exists(credential);
    if (present && (await usable())) {
      steps.push(`kept /${CREDENTIAL_FILE}`);
    } else {
      if (present) {
        const aside = `${credential}.unusable-${new Date(this.#host.clock.now()).toISOString().replace(/[:.]/g, "-")}`;
        await fs.rename(credential, aside);
        logger.warn(
          { file: credential, aside },
          "the sealed store key does not decrypt on this machine: set aside, a new one is made",
        );
        steps.push(`set aside an unusable /${CREDENTIAL_FILE}`);
      }
      await fs.mkdir(dirname(credential), 0o700);
      const key = this.#host.randomBytes(32);
      // systemd-creds writes without fsync: into a temporary name, synced and renamed here.
      const temp = `${credential}.new`;
      let result: CommandResult;
      try {
        result = await run(["systemd-creds", "encrypt", "--name=entratool.key", "-", temp], {
          stdin: key,
        });
      } catch (error) {
        result = { code: 127, stdout: "", stderr: (error as Error).message };
      } finally {
        key.fill(0);
      }
      if (result.code !== 0) {
        await fs.unlink(temp);
        // Not fatal: without the credential the agent makes its own key in its state directory.
        logger.warn(
          { code: result.code, stderr: result.stderr.trim().slice(0, 500) },
          "systemd-creds could not seal a store key to this machine: the agent keeps its key in /var/lib/entratool/store.key",
        );
        return [`no sealed key (systemd-creds failed: ${firstLine(result.stderr)})`];
      }
      await fs.chmod(temp, 0o600);
      await fs.fsync(temp);
      await fs.rename(temp, credential);
      await fsyncDir(dirname(credential));
      steps.push(`sealed a new store key into /${CREDENTIAL_FILE}`);
    }
    const dropIn = this.#at(DROP_IN_FILE);
    const current = await fs.readFile(dropIn);
    if (current !== undefined && new TextDecoder().decode(current) === DROP_IN) {
      steps.push(`kept /${DROP_IN_FILE}`);
    } else {
      await fs.mkdir(dirname(dropIn), 0o755);
      await writeFileAtomic(dropIn, DROP_IN, 0o644);
      steps.push(`wrote /${DROP_IN_FILE}`);
    }
    return steps;
  }

  async #enableAgent(): Promise<string[]> {
    const { root, run, systemdRunning } = this.#host;
    const offline = root !== "/";
    const systemctl = (...args: string[]): Promise<CommandResult> =>
      run(["systemctl", ...(offline ? [`--root=${root}`] : []), ...args]);
    const enabled = await systemctl("enable", AGENT_UNIT);
    if (enabled.code !== 0) {
      throw new EntraToolError("E_PROVISION", {
        message: `systemctl could not enable ${AGENT_UNIT} (${firstLine(enabled.stderr)}): is the entratool package installed?`,
      });
    }
    const steps = [`enabled ${AGENT_UNIT}`];
    if (!offline && systemdRunning) {
      // Queued, not waited for: this runs during boot, ordered before the agent. A running agent
      // (provisioned again) restarts with the new profile.
      const started = await systemctl("daemon-reload");
      const restarted = started.code === 0 ? await systemctl("restart", "--no-block", AGENT_UNIT) : started;
      if (restarted.code !== 0) {
        throw new EntraToolError("E_PROVISION", {
          message: `systemctl could not start ${AGENT_UNIT} (${firstLine(restarted.stderr)}): see 'journalctl -u ${AGENT_UNIT}'.`,
        });
      }
      steps.push(`started ${AGENT_UNIT}`);
    }
    return steps;
  }

  /**
   * Off the FAT partition: a root-only copy first (written and synced), then the file and any
   * old error file are removed and the boot directory synced, so a power cut leaves one or the other.
   */
  async #moveAside(file: string, text: string): Promise<string> {
    const { fs } = this.#host;
    const dir = this.#at(ASIDE_DIR);
    await fs.mkdir(dir, 0o700);
    const stamp = new Date(this.#host.clock.now()).toISOString().replace(/[:.]/g, "-");
    const aside = join(dir, `entratool-${stamp}.json`);
    await writeFileAtomic(aside, text, 0o600);
    await fs.unlink(file);
    await fs.unlink(join(dirname(file), ERROR_FILE_NAME));
    await fsyncDir(dirname(file));
    return aside;
  }
}

function stripHeader(text: string): string {
  return text.replace(/^\/\/ Installed by 'entratool provision'[^\n]*\n/, "");
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.slice(0, 200) || "no message";
}
