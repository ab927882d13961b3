/**
 * The fleet's Ansible (deploy/ansible) as an admin runs it, with the Debian ansible-core and
 * ansible-lint: every playbook parses, the lint is clean, site.yml installs the package into a
 * scratch root (its own dpkg database, /etc/passwd and /etc/group; this machine does not run
 * systemd, so the role enables the agent offline and starts nothing) and a second run changes
 * nothing, and signin.yml shows a running agent's code in the fleet's table, sees it signed in
 * once the code is approved at the emulator, and names a board whose agent does not run.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import pkg from "../../package.json" with { type: "json" };
import { boxFor, CODE, createProfile, removeTlsDir, startEmulator } from "../binary/harness.ts";
import { BINARY, ROOT, Running, removeSandboxes, run, sandbox } from "../support/cli.ts";

const ANSIBLE = join(ROOT, "deploy", "ansible");
const PLAYBOOKS = ["site.yml", "signin.yml"];
const VERSION = pkg.version;
/** dpkg's name for this machine's architecture. */
const DEB_ARCH = spawnSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).stdout.trim();

const base = mkdtempSync(join(tmpdir(), "entratool-ansible-"));
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
  removeSandboxes();
  removeTlsDir();
});

/** Ansible with its own home and temp directories, no colours, and no retry files. */
function ansibleEnv(extra: Record<string, string> = {}): Record<string, string> {
  const home = join(base, "ansible-home");
  mkdirSync(home, { recursive: true, mode: 0o700 });
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    LANG: "C.UTF-8",
    ANSIBLE_HOME: join(home, ".ansible"),
    ANSIBLE_LOCAL_TEMP: join(home, "local-tmp"),
    ANSIBLE_REMOTE_TEMP: join(home, "remote-tmp"),
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_FORCE_COLOR: "0",
    ANSIBLE_RETRY_FILES_ENABLED: "0",
    ANSIBLE_PYTHON_INTERPRETER: "/usr/bin/python3",
    ...extra,
  };
}

interface Done {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command to its end, without blocking the event loop (the tests of this file run side by side). */
function spawnDone(
  command: string,
  args: readonly string[],
  cwd: string,
  env: Record<string, string>,
): Promise<Done> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function ansible(
  command: string,
  args: readonly string[],
  extra: Record<string, string> = {},
): Promise<Done> {
  // cwd: the playbooks' directory, as an admin runs them (and no stray ansible.cfg is read).
  return spawnDone(command, args, ANSIBLE, ansibleEnv(extra));
}

function writeJson(path: string, value: unknown): string {
  writeFileSync(path, JSON.stringify(value, null, 2));
  return path;
}

// ---- site.yml into a scratch root -----------------------------------------------------------

/** The package under test: dist/…deb as `npm run package` makes it, written to a directory of the test's. */
async function packageUnderTest(): Promise<string> {
  const dir = join(base, "dist");
  const made = await spawnDone(
    process.execPath,
    [join(ROOT, "scripts", "package.ts"), "--out", dir, "--fast"],
    ROOT,
    process.env as Record<string, string>,
  );
  expect(made.code, made.stderr).toBe(0);
  expect(existsSync(join(dir, `entratool_${VERSION}_${DEB_ARCH}.deb`))).toBe(true);
  return dir;
}

/**
 * A target system in a directory: a dpkg database holding what the package depends on (this
 * machine's own libc6 and systemd entries), a passwd and group of its own (gpio and i2c exist, as
 * on Raspberry Pi OS), and systemd's state directory for its host key.
 */
function scratchRoot(): string {
  const root = join(base, "root");
  for (const dir of ["etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/systemd"])
    mkdirSync(join(root, dir), { recursive: true });
  const status = spawnSync("dpkg-query", ["--status", `libc6:${DEB_ARCH}`, "systemd"], { encoding: "utf8" });
  expect(status.status, status.stderr).toBe(0);
  writeFileSync(join(root, "var/lib/dpkg/status"), status.stdout);
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\ngpio:x:997:\ni2c:x:998:\n");
  return root;
}

interface PlaybookStats {
  readonly ok: number;
  readonly changed: number;
  readonly failures: number;
  readonly unreachable: number;
}

interface TaskResult {
  readonly name: string;
  readonly changed: boolean;
  readonly skipped: boolean;
}

interface JsonRun {
  readonly stats: PlaybookStats;
  readonly tasks: TaskResult[];
  readonly output: string;
}

/** One site.yml run with the json callback: the host's counts and every task's result. */
async function site(inventory: string, extra: Record<string, unknown>): Promise<JsonRun> {
  const vars = writeJson(join(base, `vars-${Date.now()}.json`), extra);
  const result = await ansible("ansible-playbook", ["-i", inventory, "-e", `@${vars}`, "site.yml"], {
    ANSIBLE_STDOUT_CALLBACK: "json",
  });
  const output = `${result.stdout}\n${result.stderr}`;
  expect(result.code, output.slice(-4000)).toBe(0);
  const report = JSON.parse(result.stdout) as {
    stats: Record<string, PlaybookStats>;
    plays: Array<{
      tasks: Array<{
        task: { name: string };
        hosts: Record<string, { changed?: boolean; skipped?: boolean }>;
      }>;
    }>;
  };
  const stats = report.stats.board;
  if (!stats) throw new Error(`no stats for the host in ${result.stdout.slice(-2000)}`);
  const tasks = report.plays.flatMap((play) =>
    play.tasks.map((task) => ({
      // Role tasks are named "entratool : <name>".
      name: task.task.name.replace(/^entratool : /, ""),
      changed: task.hosts.board?.changed === true,
      skipped: task.hosts.board?.skipped === true,
    })),
  );
  return { stats, tasks, output };
}

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * site.yml four times into one scratch root: a first install, the same again (nothing changes),
 * a new sink (the file alone: a reload), another tenant (a restart).
 */
async function siteScenario(): Promise<void> {
  expect(spawnSync("systemctl", ["is-system-running"], { encoding: "utf8" }).stdout.trim()).not.toBe(
    "running",
  );
  const dist = await packageUnderTest();
  const root = scratchRoot();
  const inventory = writeJson(join(base, "site-inventory.json"), {
    entratool: {
      hosts: { board: { ansible_connection: "local", entratool_device: "pi-kitchen" } },
      vars: {
        entratool_tenant_id: "contoso.onmicrosoft.com",
        entratool_client_id: "11111111-2222-3333-4444-555555555555",
        entratool_scopes: ["api://telemetry-broker/.default"],
        entratool_sinks: [{ type: "http", url: "https://ingest.example.com/telemetry" }],
      },
    },
  });
  const vars = {
    entratool_root: root,
    entratool_dist_dir: dist,
    entratool_version: VERSION,
    entratool_become: false,
    // Off by default into an image (the key would be sealed to this machine); on here, where the
    // scratch root stands in for a board, to exercise the tasks.
    entratool_store_credential: true,
  };

  // First run: everything changes; the handlers that start or reload the agent are skipped.
  const first = await site(inventory, vars);
  expect(first.stats.failures).toBe(0);
  expect(first.stats.changed).toBeGreaterThan(0);
  const changed = first.tasks.filter((task) => task.changed).map((task) => task.name);
  expect(changed).toEqual(
    expect.arrayContaining([
      "Install the package with dpkg",
      "Write the configuration",
      "Create the sealed key, once",
      "Hand the sealed key to the agent",
      "Enable the agent at boot",
    ]),
  );
  const restart = first.tasks.find((task) => task.name === "Restart the entratool agent");
  expect(restart?.skipped).toBe(true);
  expect(first.tasks.find((task) => task.name === "Start the agent")?.skipped).toBe(true);

  // The package, as dpkg knows it, and its scripts' work in the root: the user and group.
  const format = `${"$"}{Status} ${"$"}{Version}`; // dpkg-query's own field syntax
  const status = spawnSync(
    "dpkg-query",
    [`--root=${root}`, "--show", `--showformat=${format}`, "entratool"],
    {
      encoding: "utf8",
    },
  );
  expect(status.stdout).toBe(`install ok installed ${VERSION}`);
  expect(mode(join(root, "usr/bin/entratool"))).toBe("0755");
  const group = readFileSync(join(root, "etc/group"), "utf8");
  const gid = Number(/^entratool:[^:]*:(\d+):/m.exec(group)?.[1]);
  expect(gid).toBeGreaterThan(0);
  expect(group).toMatch(/^gpio:x:997:entratool$/m);

  // The configuration: the inventory's values, 0640 root:entratool, and valid for the agent.
  const configPath = join(root, "etc/entratool/config.json");
  expect(JSON.parse(readFileSync(configPath, "utf8"))).toEqual({
    version: 1,
    profile: {
      name: "default",
      tenantId: "contoso.onmicrosoft.com",
      clientId: "11111111-2222-3333-4444-555555555555",
      scopes: ["api://telemetry-broker/.default"],
    },
    device: "pi-kitchen",
    displays: [{ type: "terminal" }],
    sources: [{ type: "system", intervalSeconds: 60 }],
    sinks: [{ type: "http", url: "https://ingest.example.com/telemetry" }],
  });
  expect(mode(configPath)).toBe("0640");
  expect(statSync(configPath).uid).toBe(0);
  expect(statSync(configPath).gid).toBe(gid);
  expect(mode(join(root, "etc/entratool"))).toBe("0750");

  // The sealed key: 0600 in a 0700 store, and it opens with the root's host key to 32 bytes.
  const keyPath = join(root, "etc/credstore.encrypted/entratool.key");
  expect(mode(keyPath)).toBe("0600");
  expect(mode(join(root, "etc/credstore.encrypted"))).toBe("0700");
  const key = readFileSync(keyPath);
  const opened = spawnSync("systemd-creds", ["decrypt", "--name=entratool.key", keyPath, "-"], {
    env: { ...process.env, SYSTEMD_CREDENTIAL_SECRET: join(root, "var/lib/systemd/credential.secret") },
  });
  expect(opened.status, opened.stderr.toString()).toBe(0);
  expect(opened.stdout.length).toBe(32);
  expect(
    readFileSync(join(root, "etc/systemd/system/entratool-agent.service.d/credential.conf"), "utf8"),
  ).toContain("\nLoadCredentialEncrypted=entratool.key:/etc/credstore.encrypted/entratool.key\n");
  const wants = join(root, "etc/systemd/system/multi-user.target.wants/entratool-agent.service");
  expect(lstatSync(wants).isSymbolicLink()).toBe(true);
  expect(readlinkSync(wants)).toBe("/lib/systemd/system/entratool-agent.service");

  // Second run: nothing changes.
  const second = await site(inventory, vars);
  expect(second.stats.failures).toBe(0);
  expect(
    second.stats.changed,
    second.tasks
      .filter((task) => task.changed)
      .map((task) => task.name)
      .join(", "),
  ).toBe(0);

  // A new sink: the configuration alone changes, which is a reload (skipped here), not a
  // restart; the sealed key is kept as it was.
  const third = await site(inventory, {
    ...vars,
    entratool_sinks: [
      { type: "http", url: "https://ingest.example.com/telemetry" },
      { type: "eventhubs", namespace: "contoso-telemetry", hub: "boards" },
    ],
  });
  expect(third.tasks.filter((task) => task.changed).map((task) => task.name)).toEqual([
    "Write the configuration",
  ]);
  expect(third.tasks.find((task) => task.name === "Reload the entratool agent")?.skipped).toBe(true);
  expect(third.tasks.some((task) => task.name === "Restart the entratool agent")).toBe(false);
  expect(readFileSync(keyPath).equals(key)).toBe(true);
  expect((JSON.parse(readFileSync(configPath, "utf8")) as { sinks: unknown[] }).sinks).toHaveLength(2);
  expect(existsSync(join(root, "etc/credstore.encrypted/entratool.key.new"))).toBe(false);

  // Another tenant: the agent keeps its sign-in across a reload, so this is a restart.
  const fourth = await site(inventory, { ...vars, entratool_tenant_id: "fabrikam.onmicrosoft.com" });
  expect(fourth.tasks.filter((task) => task.changed).map((task) => task.name)).toEqual([
    "Write the configuration",
    "Restart the agent for its new profile",
  ]);
  expect(fourth.tasks.find((task) => task.name === "Restart the entratool agent")?.skipped).toBe(true);
  expect(fourth.tasks.find((task) => task.name === "Reload the entratool agent")?.skipped).toBe(true);
}

describe("the playbooks, and site.yml into a scratch root", () => {
  it("ansible-playbook --syntax-check passes for every playbook", async () => {
    const result = await ansible("ansible-playbook", [
      "-i",
      "inventory.example.yml",
      "--syntax-check",
      ...PLAYBOOKS,
    ]);
    expect(result.stderr).toBe("");
    for (const playbook of PLAYBOOKS) expect(result.stdout).toContain(`playbook: ${playbook}`);
    expect(result.code).toBe(0);
  });

  it("ansible-lint passes offline, at its strictest profile", async () => {
    const result = await ansible(
      "ansible-lint",
      ["--offline", "--nocolor", ...PLAYBOOKS, "roles/entratool", "tasks"],
      { XDG_CACHE_HOME: join(base, "lint-cache") },
    );
    expect(result.stdout + result.stderr).toMatch(
      /Passed with production profile: 0 failure\(s\), 0 warning\(s\)/,
    );
    expect(result.code).toBe(0);
  }, 60_000);

  it("site.yml installs, configures, seals the key and enables the agent; a second run changes nothing; a new sink is a reload, a new tenant a restart", async () => {
    await siteScenario();
  }, 120_000);
});

// ---- signin.yml against a running agent -------------------------------------------------------

describe("signin.yml", () => {
  it("shows the fleet's codes in one table, reports the board signed in once approved, and names a board whose agent does not run", async () => {
    const emu = await startEmulator();
    const agentBox = boxFor(emu, { logLevel: "info" });
    await createProfile(agentBox, "default");
    const configFile = writeJson(join(base, "agent-config.json"), {
      profile: "default",
      device: "board-a",
      displays: [{ type: "terminal" }],
    });
    const agent = new Running(BINARY, ["agent", "--config", configFile], agentBox.env);
    let playbook: Running | undefined;
    try {
      const shown = await agent.waitFor(CODE);
      const userCode = shown[1] ?? "";
      // A second board with no agent: `entratool status` exits 13 there.
      const idle = sandbox();
      const inventory = writeJson(join(base, "signin-inventory.json"), {
        entratool: {
          hosts: {
            "board-a": {
              ansible_connection: "local",
              entratool_environment: { ENTRATOOL_HOME: agentBox.home },
            },
            "board-b": { ansible_connection: "local", entratool_environment: { ENTRATOOL_HOME: idle.home } },
          },
        },
      });
      const vars = writeJson(join(base, "signin-vars.json"), {
        entratool_command: BINARY,
        entratool_become: false,
        entratool_signin_poll_seconds: 1,
        entratool_signin_timeout_seconds: 60,
      });
      playbook = new Running(
        "ansible-playbook",
        ["-i", inventory, "-e", `@${vars}`, join(ANSIBLE, "signin.yml")],
        ansibleEnv(),
      );
      // The table's line for board-a: its code, the URL and the expiry; approved once shown.
      const line = await playbook.waitFor(
        new RegExp(`"board-a +(?:code-issued|waiting) +${userCode} +(\\S+) +(\\d\\d:\\d\\d)"`),
        "stdout",
      );
      // The URL and the expiry (UTC, to the minute) the agent itself reports.
      const before = await run(["status", "--output", "json"], agentBox);
      const code = (
        JSON.parse(before.stdout) as { signIn: { code: { verificationUri: string; expiresAt: string } } }
      ).signIn.code;
      expect(line[1]).toBe(code.verificationUri);
      expect(line[2]).toBe(code.expiresAt.slice(11, 16));
      expect(playbook.stdout).toMatch(/"board-b +not-running +- +- +-"/);
      emu.emulator.approve({ userCode });
      const done = await playbook.done;
      expect(done.stdout).toMatch(/"board-a +signed-in +- +- +-"/);
      expect(done.stdout).toContain('"msg": "1 of 2 signed in; needs attention: board-b."');
      expect(done.stdout).toContain(
        "board-b is not signed in: no agent runs (entratool status exit 13): start it with systemctl start entratool-agent (site.yml enables it).",
      );
      expect(done.stdout).toMatch(/board-a +: ok=\d+ +changed=0 +unreachable=0 +failed=0/);
      expect(done.stdout).toMatch(/board-b +: ok=\d+ +changed=0 +unreachable=0 +failed=1/);
      // Failing the boards that need attention: a script sees it in the exit code.
      expect(done.code).toBe(2);
      const status = await run(["status", "--output", "json"], agentBox);
      expect((JSON.parse(status.stdout) as { signIn: { state: string } }).signIn.state).toBe("signed-in");
    } finally {
      // A playbook a failed assertion left polling must not outlive the test.
      if (playbook && playbook.child.exitCode === null && playbook.child.signalCode === null)
        playbook.child.kill("SIGKILL");
      agent.child.kill("SIGTERM");
      await agent.done;
      await emu.stop();
    }
  }, 60_000);
});
