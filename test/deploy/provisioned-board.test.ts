/**
 * A provisioned board's first start, as systemd would run it: the boot partition's file is
 * provisioned into a scratch root, then the agent runs as an unprivileged service user with the
 * unit's directories (CONFIGURATION_DIRECTORY, STATE_DIRECTORY, RUNTIME_DIRECTORY) and the sealed
 * key handed over as systemd hands credentials (CREDENTIALS_DIRECTORY). It shows its code
 * (`entratool status --output json`, as the fleet playbook reads it), the code is approved at
 * the Entra emulator, the board is signed in, and SIGTERM stops it. systemd itself cannot run
 * here (no init), so this stands in for `systemctl start`: the same user, the same files, the
 * same environment.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stopAgent } from "../binary/agent-world.ts";
import { DEFAULT_TENANT_ID, DEMO_CLIENT_ID, emulatorPerFile } from "../binary/harness.ts";
import { BINARY, ROOT, Running, run, sandbox } from "../support/cli.ts";

const emulator = emulatorPerFile();

/** The service user and group (the package's are system ids; these stand in, numerically). */
const UID = 64_990;
const GID = 64_991;

function dir(path: string, mode: number, uid = 0, gid = 0): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  chownSync(path, uid, gid);
  return path;
}

describe("a provisioned board", () => {
  it("runs the agent as the service user with the unit's directories, shows its code and signs in", async () => {
    const emu = emulator();
    const box = sandbox();
    // Reachable by the service user: the sandbox is private to root.
    const base = join(box.home, "..");
    chmodSync(base, 0o755);
    const root = join(base, "root");
    dir(root, 0o755);
    for (const d of [
      "etc/systemd/system",
      "lib/systemd/system",
      "boot/firmware",
      "usr/bin",
      "var/lib",
      "run",
    ]) {
      dir(join(root, d), 0o755);
    }
    writeFileSync(join(root, "etc/group"), `root:x:0:\nentratool:x:${GID}:\n`);
    writeFileSync(
      join(root, "etc/passwd"),
      `root:x:0:0::/root:/bin/sh\nentratool:x:${UID}:${GID}::/var/lib/entratool:/usr/sbin/nologin\n`,
    );
    for (const unit of readdirSync(join(ROOT, "systemd")).filter((n) => n.endsWith(".service"))) {
      copyFileSync(join(ROOT, "systemd", unit), join(root, "lib/systemd/system", unit));
    }
    copyFileSync(BINARY, join(root, "usr/bin/entratool"));
    chmodSync(join(root, "usr/bin/entratool"), 0o755);
    copyFileSync(emu.caPath, join(root, "etc/emulator-ca.pem"));
    chmodSync(join(root, "etc/emulator-ca.pem"), 0o644);
    const secret = join(base, "credential.secret");
    writeFileSync(
      join(root, "boot/firmware/entratool.json"),
      JSON.stringify({
        profile: { tenantId: DEFAULT_TENANT_ID, clientId: DEMO_CLIENT_ID, authorityHost: emu.host },
        device: "board-{hostname}",
        sources: [],
      }),
    );
    const provisioned = await run(["provision", "--root", root], {
      home: "",
      binDir: "",
      env: { ...box.env, SYSTEMD_CREDENTIAL_SECRET: secret },
    });
    expect(provisioned.code, provisioned.stderr).toBe(0);

    // What systemd does at `systemctl start entratool-agent` on this board.
    const state = dir(join(root, "var/lib/entratool"), 0o700, UID, GID);
    const runtime = dir(join(root, "run/entratool"), 0o750, UID, GID);
    const credentials = dir(join(root, "run/credentials/entratool-agent.service"), 0o700, UID, GID);
    const decrypted = spawnSync(
      "systemd-creds",
      [
        "decrypt",
        "--name=entratool.key",
        join(root, "etc/credstore.encrypted/entratool.key"),
        join(credentials, "entratool.key"),
      ],
      { env: { ...process.env, SYSTEMD_CREDENTIAL_SECRET: secret }, encoding: "utf8" },
    );
    expect(decrypted.status, decrypted.stderr).toBe(0);
    chownSync(join(credentials, "entratool.key"), UID, GID);
    chmodSync(join(credentials, "entratool.key"), 0o400);
    chmodSync(credentials, 0o500);
    const unitEnv = {
      PATH: "/usr/bin:/bin",
      HOME: state,
      LANG: "C.UTF-8",
      CONFIGURATION_DIRECTORY: join(root, "etc/entratool"),
      STATE_DIRECTORY: state,
      RUNTIME_DIRECTORY: runtime,
      CREDENTIALS_DIRECTORY: credentials,
      ENTRATOOL_LOG_FORMAT: "json",
      NODE_EXTRA_CA_CERTS: join(root, "etc/emulator-ca.pem"),
    };
    const agent = new Running(
      "setpriv",
      [`--reuid=${UID}`, `--regid=${GID}`, "--clear-groups", "--", join(root, "usr/bin/entratool"), "agent"],
      unitEnv,
    );

    // The admin's (or the playbook's) view: root asks the agent over its socket.
    const status = async (): Promise<{ signIn: { state: string; code?: { userCode: string } } }> => {
      const result = await run(["status", "--output", "json"], {
        home: "",
        binDir: "",
        env: { ...box.env, RUNTIME_DIRECTORY: runtime },
      });
      return result.code === 0 ? JSON.parse(result.stdout) : { signIn: { state: `exit ${result.code}` } };
    };
    let shown: { signIn: { state: string; code?: { userCode: string } } } = { signIn: { state: "none" } };
    // Each poll is a run of the binary (tens of milliseconds): no sleep between them is needed.
    const poll = async (want: (s: typeof shown) => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        shown = await status();
        if (want(shown)) return;
        if (Date.now() > deadline)
          throw new Error(`${what}: last status ${JSON.stringify(shown)}\n${agent.stdout}`);
      }
    };
    await poll((s) => s.signIn.code !== undefined, "the agent shows a code");
    emu.emulator.approve({ userCode: shown.signIn.code?.userCode ?? "" });
    await poll((s) => s.signIn.state === "signed-in", "the agent signs in");
    await stopAgent(agent);

    // The sealed key was used (no key of its own in the state directory), and what the agent
    // wrote is the service user's and private.
    expect(existsSync(join(state, "store.key"))).toBe(false);
    for (const entry of readdirSync(state, { recursive: true, withFileTypes: true })) {
      const st = statSync(join(entry.parentPath, entry.name));
      expect(st.uid, entry.name).toBe(UID);
      expect(st.mode & 0o077, entry.name).toBe(0);
    }
    expect(agent.stdout).toContain('"device":"board-');
  });
});
