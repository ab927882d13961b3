/**
 * Shared pieces of the binary tests: the emulator on real time, sandboxes pointed at it, the seed
 * page's examples, and checks on what the user sees (stderr lines, files under ENTRATOOL_HOME).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import {
  DEFAULT_TENANT_ID,
  DEMO_CLIENT_ID,
  type EmulatorSettings,
  EntraEmulator,
} from "../../scripts/emulator/server.ts";
import {
  ROOT,
  Running,
  type RunResult,
  removeSandboxes,
  type Sandbox,
  sandbox,
  start,
} from "../support/cli.ts";

export { DEFAULT_TENANT_ID, DEMO_CLIENT_ID };

export const ESC = "\x1b";
/** The user code in the prompt box; on a terminal it is bold (ESC[1m). */
export const CODE = new RegExp(`Enter code: (?:${ESC}\\[1m)?([A-Z0-9]+-[A-Z0-9]+)`);
export const SPINNER_CHARS = /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/;

export interface Emulator {
  readonly emulator: EntraEmulator;
  readonly host: string;
  readonly caPath: string;
  stop(): Promise<void>;
}

let tlsDir: string | undefined;

/**
 * An emulator on real time (the binary runs on real time too) with 1 s polls, so a sign-in takes
 * about a second. The CA lives in one directory per test file.
 */
export async function startEmulator(defaults: Partial<EmulatorSettings> = {}): Promise<Emulator> {
  tlsDir ??= mkdtempSync(join(tmpdir(), "entratool-binary-tls-"));
  const emulator = new EntraEmulator({ tlsDir, defaults: { interval: 1, ...defaults } });
  const started = await emulator.start();
  return {
    emulator,
    host: started.authorityHost,
    caPath: started.caPath,
    stop: () => emulator.stop(),
  };
}

/**
 * The hooks every binary test file needs: one emulator for the file, stopped afterwards with the
 * file's sandboxes and CA directory removed. `beforeStop` runs first (a last assertion over the
 * emulator's log, say). Returns a getter for the emulator.
 */
export function emulatorPerFile(beforeStop?: (emu: Emulator) => void): () => Emulator {
  let emu: Emulator | undefined;
  beforeAll(async () => {
    emu = await startEmulator();
  });
  afterAll(async () => {
    if (emu) {
      beforeStop?.(emu);
      await emu.stop();
    }
    removeSandboxes();
    removeTlsDir();
  });
  return () => {
    if (!emu) throw new Error("the emulator starts in beforeAll");
    return emu;
  };
}

export function removeTlsDir(): void {
  if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
  tlsDir = undefined;
}

/**
 * A sandbox that trusts the emulator's CA and whose new profiles point at it. `logLevel`
 * undefined leaves ENTRATOOL_LOG_LEVEL unset: the default level, what a user sees.
 */
export function boxFor(emu: Emulator, options: { logLevel?: string; env?: Record<string, string> } = {}) {
  const box = sandbox({
    NODE_EXTRA_CA_CERTS: emu.caPath,
    ENTRATOOL_AUTHORITY_HOST: emu.host,
    ...options.env,
  });
  if (options.logLevel === undefined) delete box.env.ENTRATOOL_LOG_LEVEL;
  else box.env.ENTRATOOL_LOG_LEVEL = options.logLevel;
  return box;
}

/**
 * How a test starts the binary: undefined for dist/entratool, or a command line that the binary's
 * arguments follow, e.g. `qemuArm64("cortex-a53")`: the Raspberry Pi build under qemu-user.
 */
export type Launcher = readonly [string, ...string[]];

/** Starts the binary (through `launcher` when given) with the sandbox's environment. */
export function launch(
  launcher: Launcher | undefined,
  args: readonly string[],
  box: Sandbox,
  input?: string,
): Running {
  if (launcher === undefined) return start(args, box, input);
  const [command, ...prefix] = launcher;
  return new Running(command, [...prefix, ...args], box.env, input);
}

export const ARM64_BINARY = join(ROOT, "dist", "entratool-linux-arm64");
export const QEMU = "qemu-aarch64-static";

/**
 * dist/entratool-linux-arm64 under qemu-user emulating `cpu` (cortex-a53: Pi 3 and Zero 2 W;
 * cortex-a72: Pi 4; qemu's default "max" has every optional feature, which no Pi has).
 */
export function qemuArm64(cpu: string): Launcher {
  return [QEMU, "-cpu", cpu, ARM64_BINARY];
}

/** Fails with the install command when qemu-user cannot run the arm64 binary here. */
export function requireQemu(): void {
  if (!has(QEMU)) {
    throw new Error(
      `${QEMU} is not installed: the linux-arm64 binary cannot run on this machine. Install qemu-user-static and libc6:arm64 (as root: dpkg --add-architecture arm64 && apt-get update && apt-get install -y qemu-user-static libc6:arm64; .ci/run does this).`,
    );
  }
}

/** `create-profile` with every flag; the authority host comes from ENTRATOOL_AUTHORITY_HOST. */
export async function createProfile(
  box: Sandbox,
  name: string,
  options: { clientId?: string; tenantId?: string; extra?: readonly string[]; launcher?: Launcher } = {},
): Promise<void> {
  const result = await launch(
    options.launcher,
    [
      "create-profile",
      "--name",
      name,
      "--tenant-id",
      options.tenantId ?? DEFAULT_TENANT_ID,
      "--client-id",
      options.clientId ?? DEMO_CLIENT_ID,
      ...(options.extra ?? []),
    ],
    box,
  ).done;
  // Nothing but log records (a sandbox may log at debug or trace).
  expect(result.stderr.split("\n").filter((line) => line !== "" && !line.startsWith("{"))).toEqual([]);
  expect(result.stdout).toBe(`Profile '${name}' created.\n`);
  expect(result.code).toBe(0);
}

/** Reads the `nth` user code the child shows (stderr, or stdout for a terminal) and approves it. */
export async function approveShown(
  emu: Emulator,
  child: Running,
  options: {
    nth?: number;
    stream?: "stdout" | "stderr";
    username?: string;
    outcome?: "ok" | "policy_blocked" | "consent_required" | "not_public_client";
  } = {},
): Promise<string> {
  const match = await child.waitFor(CODE, options.stream ?? "stderr", options.nth ?? 1);
  const userCode = match[1] ?? "";
  emu.emulator.approve({
    userCode,
    ...(options.username === undefined ? {} : { username: options.username }),
    ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
  });
  return userCode;
}

/** `get-token` with a device code that is approved as soon as it is shown. */
export async function signIn(
  emu: Emulator,
  box: Sandbox,
  args: readonly string[] = [],
  username?: string,
): Promise<RunResult> {
  const child = start(["get-token", "--flow", "device-code", ...args], box);
  await approveShown(emu, child, username === undefined ? {} : { username });
  const result = await child.done;
  expect(result.stderr).toMatch(CODE);
  expect(result.code, result.stderr).toBe(0);
  return result;
}

/** Approves the next code issued to `clientId`, for children whose stderr a script captures. */
export async function approveNextCodeFor(emu: Emulator, clientId: string): Promise<string> {
  for (;;) {
    const pending = emu.emulator.pendingCodes().find((code) => code.clientId === clientId);
    if (pending) {
      emu.emulator.approve({ userCode: pending.userCode });
      return pending.userCode;
    }
    await emu.emulator.waitForRequest((entry) => entry.path.endsWith("/devicecode"), "answered");
  }
}

export interface TokenJson {
  access_token: string;
  token_type: string;
  expires_at: string;
  expires_in: number;
  scopes: string[];
  profile: string;
  account: { username: string; tenant_id: string };
  from_cache: boolean;
}

export function tokenJson(stdout: string): TokenJson {
  return JSON.parse(stdout) as TokenJson;
}

/** The prompt on stderr: the server's message and the box. */
function isPromptLine(line: string): boolean {
  return /^To sign in, use a web browser to open the page /.test(line) || /^[┌│├└]/.test(line);
}

/** stderr without the device code prompt, as lines. */
export function linesBesidesPrompt(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.length > 0 && !isPromptLine(line));
}

/** A failure as the user sees it: exactly one sentence besides the prompt, and no stack trace. */
export function expectOneSentence(stderr: string, sentence: string): void {
  expect(linesBesidesPrompt(stderr)).toEqual([sentence]);
  expect(stderr).not.toContain("    at ");
}

/** Log records (JSON lines on a non-terminal stderr) whose `msg` matches. */
export function logRecords(stderr: string, msg?: RegExp): Array<Record<string, unknown>> {
  const records: Array<Record<string, unknown>> = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (msg === undefined || msg.test(String(record.msg))) records.push(record);
    } catch {
      // not a log record
    }
  }
  return records;
}

export interface Entry {
  readonly path: string;
  readonly isDirectory: boolean;
  readonly mode: number;
}

/** Every file and directory under `root`, `root` included. */
export function walk(root: string): Entry[] {
  const entries: Entry[] = [];
  const visit = (path: string): void => {
    const info = statSync(path);
    entries.push({ path, isDirectory: info.isDirectory(), mode: info.mode & 0o777 });
    if (info.isDirectory()) for (const name of readdirSync(path).sort()) visit(join(path, name));
  };
  visit(root);
  return entries;
}

/** Every file under ENTRATOOL_HOME is 0600 and every directory 0700. */
export function expectPrivateTree(home: string): void {
  const entries = walk(home);
  expect(entries.filter((entry) => !entry.isDirectory).length).toBeGreaterThan(0);
  const modes = entries.map((entry) => `${entry.mode.toString(8)} ${entry.path}`);
  const expected = entries.map((entry) => `${entry.isDirectory ? "700" : "600"} ${entry.path}`);
  expect(modes).toEqual(expected);
}

/** The cache file of a profile. */
export function cacheFile(box: Sandbox, profile = "default"): string {
  return join(box.home, "state", "tokens", `${profile}.cache`);
}

export function filesIn(dir: string): string[] {
  return readdirSync(dir).sort();
}

export function readText(path: string): string {
  return readFileSync(path, "latin1");
}

export { closedPort } from "../../scripts/net.ts";

/** Whether an executable is on PATH. */
export function has(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).status === 0;
}

// ---- the seed page ------------------------------------------------------------------------------

const SEED = readFileSync(join(import.meta.dirname, "fixtures", "device-code-flow.md"), "utf8");

/**
 * The `index`th fenced code block under the heading `heading` of the seed page
 * (test/binary/fixtures/device-code-flow.md, a verbatim copy of the original tool's page).
 */
export function seedBlock(heading: string, index = 0): string {
  const lines = SEED.split("\n");
  const at = lines.findIndex((line) => /^#{2,4} /.test(line) && line.replace(/^#+ /, "") === heading);
  if (at < 0) throw new Error(`no heading '${heading}' in the seed page`);
  const blocks: string[] = [];
  let current: string[] | undefined;
  for (const line of lines.slice(at + 1)) {
    if (current === undefined && /^#{2,4} /.test(line)) break;
    if (line.startsWith("```")) {
      if (current === undefined) current = [];
      else {
        blocks.push(`${current.join("\n")}\n`);
        current = undefined;
      }
    } else if (current !== undefined) {
      current.push(line);
    }
  }
  const block = blocks[index];
  if (block === undefined) throw new Error(`no code block ${index} under '${heading}'`);
  return block;
}

/** `text` with `from` replaced by `to`, failing if `from` is not there (the seed changed). */
export function replaceOnce(text: string, from: string, to: string): string {
  expect(text).toContain(from);
  return text.replace(from, to);
}

/** The warning logged when an unusable token file is moved aside. */
export const SET_ASIDE = /^Unusable token store file set aside/;
/** A token file moved aside: `<profile>.cache.corrupt-<ISO time with '-' for ':'>`. */
export const CORRUPT_FILE = /^default\.cache\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z$/;

/**
 * `get-token --output json` when the profile's token file is unusable: it is set aside with one
 * warning whose reason matches `reason`, and a new sign-in (approved here) gives a fresh token.
 */
export async function signInAgainAfterSetAside(
  emu: Emulator,
  box: Sandbox,
  reason: RegExp,
): Promise<RunResult> {
  const child = start(["get-token", "--output", "json"], box);
  await approveShown(emu, child);
  const result = await child.done;
  expect(result.code, result.stderr).toBe(0);
  expect(tokenJson(result.stdout).from_cache).toBe(false);
  const warnings = logRecords(result.stderr, SET_ASIDE);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ level: "warn" });
  expect(String(warnings[0]?.reason)).toMatch(reason);
  return result;
}

/** The generated key file of a sandbox (ENTRATOOL_HOME). */
export function keyFile(box: Sandbox): string {
  return join(box.home, "state", "store.key");
}

/** The one warning logged when a damaged key file is replaced (see FileKeyProvider). */
export const KEY_REPLACED =
  /^The token store key .+ was damaged \(\d+ bytes instead of 32\); it was set aside as /;
