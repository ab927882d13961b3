/**
 * First-boot provisioning (`entratool provision`, run by entratool-provision.service) against a
 * scratch root laid out like a freshly flashed Raspberry Pi with the package installed: the
 * compiled binary, the real systemctl (--root: it enables offline) and the real systemd-creds (its
 * host secret pointed into the scratch root with SYSTEMD_CREDENTIAL_SECRET). Tests run as root in
 * CI, as chown to the group entratool needs.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { ROOT, removeSandboxes, run, sandbox } from "../support/cli.ts";

afterAll(removeSandboxes);

const GID = 998;
const TENANT = "11111111-2222-3333-4444-555555555555";
const CLIENT = "66666666-7777-8888-9999-000000000000";
const GOOD = `// written by the fleet's operator
{
  "profile": { "tenantId": "${TENANT}", "clientId": "${CLIENT}", "scopes": ["api://telemetry/.default"] },
  "device": "pi-{serial8}",
  "displays": [{ "type": "terminal" }],
  "sinks": [{ "type": "mqtt", "url": "mqtts://broker.example.com:8883", "auth": "token", "scopes": ["api://telemetry/.default"] }]
}
`;

interface Board {
  readonly root: string;
  readonly env: Record<string, string>;
  readonly bootFile: string;
}

/** A scratch root: /etc/passwd and /etc/group with entratool, the units, a serial number, /boot/firmware. */
function board(): Board {
  const box = sandbox();
  const root = join(box.home, "..", "root");
  for (const dir of [
    "etc/systemd/system",
    "lib/systemd/system",
    "boot/firmware",
    "proc/device-tree",
    "var/lib",
  ]) {
    mkdirSync(join(root, dir), { recursive: true });
  }
  writeFileSync(
    join(root, "etc/passwd"),
    `root:x:0:0:root:/root:/bin/sh\nentratool:x:${GID}:${GID}::/var/lib/entratool:/usr/sbin/nologin\n`,
  );
  writeFileSync(join(root, "etc/group"), `root:x:0:\nentratool:x:${GID}:\n`);
  for (const unit of readdirSync(join(ROOT, "systemd")).filter((n) => n.endsWith(".service"))) {
    copyFileSync(join(ROOT, "systemd", unit), join(root, "lib/systemd/system", unit));
  }
  // The device tree's string, NUL-terminated, as on a Pi 4.
  writeFileSync(join(root, "proc/device-tree/serial-number"), "100000009a3bc4de\0");
  return {
    root,
    env: {
      ...box.env,
      SYSTEMD_CREDENTIAL_SECRET: join(root, "..", "credential.secret"),
      ENTRATOOL_LOG_FORMAT: "json",
    },
    bootFile: join(root, "boot/firmware/entratool.json"),
  };
}

function provision(b: Board, ...args: string[]) {
  return run(["provision", "--root", b.root, ...args], { home: "", binDir: "", env: b.env });
}

/** Every file and link under the root, with its mode, owner and content hash: what a second run must not change. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const st = lstatSync(path);
    const what = st.isSymbolicLink()
      ? `-> ${readlinkSync(path)}`
      : st.isFile()
        ? createHash("sha256").update(readFileSync(path)).digest("hex")
        : "dir";
    out[relative(root, path)] = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs} ${what}`;
  }
  return out;
}

function decryptKey(b: Board): Buffer {
  const result = spawnSync(
    "systemd-creds",
    ["decrypt", "--name=entratool.key", join(b.root, "etc/credstore.encrypted/entratool.key"), "-"],
    { env: { ...process.env, SYSTEMD_CREDENTIAL_SECRET: b.env.SYSTEMD_CREDENTIAL_SECRET } },
  );
  expect(result.status, result.stderr.toString()).toBe(0);
  return result.stdout;
}

describe("entratool provision", () => {
  let b: Board;
  beforeEach(() => {
    b = board();
  });

  it("installs a good file, seals a key, enables the agent and leaves nothing on the boot partition", async () => {
    writeFileSync(b.bootFile, GOOD);
    const result = await provision(b);
    expect(result.stderr).not.toMatch(/"level":(50|60)/);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Provisioned device 'pi-9a3bc4de'");

    const config = join(b.root, "etc/entratool/config.json");
    const installed = readFileSync(config, "utf8");
    expect(installed).toContain('"device": "pi-9a3bc4de"');
    expect(installed).toContain(CLIENT);
    expect(statSync(config).mode & 0o777).toBe(0o640);
    expect(statSync(config).gid).toBe(GID);
    expect(statSync(join(b.root, "etc/entratool")).mode & 0o777).toBe(0o750);
    // The installed file is what the agent reads: check-config takes it as it is.
    const checked = await run(["check-config", "--config", config], { home: "", binDir: "", env: b.env });
    expect(checked.stderr).toBe("");
    expect(checked.stdout).toContain("profile 'default', device 'pi-9a3bc4de'");

    const credential = join(b.root, "etc/credstore.encrypted/entratool.key");
    expect(statSync(credential).mode & 0o777).toBe(0o600);
    expect(statSync(join(b.root, "etc/credstore.encrypted")).mode & 0o777).toBe(0o700);
    const key = decryptKey(b);
    expect(key).toHaveLength(32);
    expect(
      readFileSync(join(b.root, "etc/systemd/system/entratool-agent.service.d/credential.conf"), "utf8"),
    ).toContain("LoadCredentialEncrypted=entratool.key:/etc/credstore.encrypted/entratool.key");
    // The link names the unit as the booted system will see it (absolute, inside the root).
    expect(
      readlinkSync(join(b.root, "etc/systemd/system/multi-user.target.wants/entratool-agent.service")),
    ).toBe("/lib/systemd/system/entratool-agent.service");

    // Off the FAT partition, into a root-only place.
    expect(readdirSync(join(b.root, "boot/firmware"))).toEqual([]);
    const aside = join(b.root, "var/lib/entratool-provision");
    expect(statSync(aside).mode & 0o777).toBe(0o700);
    const [moved] = readdirSync(aside);
    expect(moved).toMatch(/^entratool-.*\.json$/);
    expect(statSync(join(aside, moved as string)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(aside, moved as string), "utf8")).toBe(GOOD);

    // No secret left behind: the store key is nowhere in the clear, in any form.
    const forms = [key.toString("hex"), key.toString("base64"), key.toString("latin1")];
    for (const entry of readdirSync(b.root, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const text = readFileSync(join(entry.parentPath, entry.name)).toString("latin1");
      for (const form of forms) expect(text.includes(form), join(entry.parentPath, entry.name)).toBe(false);
    }
    expect(result.stdout + result.stderr).not.toContain(key.toString("hex"));
  });

  it("the second boot does nothing, and provisioning again keeps the sealed key", async () => {
    writeFileSync(b.bootFile, GOOD);
    expect((await provision(b)).code).toBe(0);
    const key = decryptKey(b);
    const before = snapshot(b.root);
    const again = await provision(b);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      `Nothing to provision: no ${join(b.root, "boot/firmware/entratool.json")} or ${join(b.root, "boot/entratool.json")}.\n`,
    );
    expect(snapshot(b.root)).toEqual(before);

    // A new file later (another broker): installed, and the key (and so the saved tokens) kept.
    writeFileSync(
      join(b.root, "boot/entratool.json"),
      GOOD.replace("broker.example.com", "broker2.example.com"),
    );
    const third = await provision(b);
    expect(third.code).toBe(0);
    expect(third.stdout).toContain(`kept /etc/credstore.encrypted/entratool.key`);
    expect(readFileSync(join(b.root, "etc/entratool/config.json"), "utf8")).toContain("broker2.example.com");
    expect(decryptKey(b)).toEqual(key);
  });

  it("a bad file: every reason at once, beside the file, in the journal and on its displays; nothing installed", async () => {
    const screen = join(b.root, "screen.png");
    writeFileSync(
      b.bootFile,
      JSON.stringify({
        profile: { tenantId: TENANT, clientId: "not-a-guid", scopes: [] },
        device: "pi-{mac}",
        displays: [{ type: "png", file: screen, as: "hd44780" }],
        sinks: [{ type: "mqtt" }],
      }),
    );
    const result = await provision(b);
    expect(result.code).toBe(2);
    const sentence = result.stderr.trim().split("\n").at(-1) ?? "";
    expect(sentence).toMatch(/^The provisioning file .*entratool\.json has 3 errors: /);
    expect(sentence).toContain("device: {mac} is not a placeholder (use {serial}, {serial8} or {hostname})");
    expect(sentence).toContain("profile.clientId: must be the app registration's application (client) id");
    expect(sentence).toContain("sinks[0].url: is required");
    // The journal (JSON lines) has it with its code.
    expect(result.stderr).toMatch(/"code":"E_PROVISION_FILE"/);
    // Beside the file, for an operator with a card reader; the file itself stays to be fixed.
    const reason = readFileSync(join(b.root, "boot/firmware/entratool-error.txt"), "utf8");
    expect(reason).toContain("device: {mac} is not a placeholder");
    expect(existsSync(b.bootFile)).toBe(true);
    // On the display the file names.
    expect(readFileSync(screen).subarray(1, 4).toString("latin1")).toBe("PNG");
    // Unprovisioned.
    expect(existsSync(join(b.root, "etc/entratool/config.json"))).toBe(false);
    expect(existsSync(join(b.root, "etc/credstore.encrypted"))).toBe(false);
    expect(existsSync(join(b.root, "etc/systemd/system/multi-user.target.wants"))).toBe(false);

    // Fixed and rebooted: provisioned, and the old reason gone with the file.
    writeFileSync(b.bootFile, GOOD);
    expect((await provision(b)).code).toBe(0);
    expect(readdirSync(join(b.root, "boot/firmware"))).toEqual([]);
  });

  it("a file that is not JSON, or names no profile, is refused in one sentence", async () => {
    writeFileSync(b.bootFile, "{ this is not json");
    const notJson = await provision(b);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/has 1 error: it is not valid JSON \(/);
    writeFileSync(b.bootFile, JSON.stringify({ profile: "default", device: "{hostname}" }));
    const named = await provision(b);
    expect(named.code).toBe(2);
    expect(named.stderr).toContain("profile: must be the profile itself");
  });

  it("a sealed key that no longer decrypts (an empty file after a power cut) is set aside and made anew", async () => {
    mkdirSync(join(b.root, "etc/credstore.encrypted"), { recursive: true, mode: 0o700 });
    writeFileSync(join(b.root, "etc/credstore.encrypted/entratool.key"), "");
    writeFileSync(b.bootFile, GOOD);
    const result = await provision(b);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("set aside an unusable /etc/credstore.encrypted/entratool.key");
    expect(result.stdout).toContain("sealed a new store key into /etc/credstore.encrypted/entratool.key");
    expect(decryptKey(b)).toHaveLength(32);
    expect(readdirSync(join(b.root, "etc/credstore.encrypted")).sort()).toEqual([
      "entratool.key",
      expect.stringMatching(/^entratool\.key\.unusable-/),
    ]);
  });

  it("into an image (--root without a host secret named) no key is sealed: it would open on no board", async () => {
    const { SYSTEMD_CREDENTIAL_SECRET: _, ...env } = b.env;
    writeFileSync(b.bootFile, GOOD);
    const result = await run(["provision", "--root", b.root], { home: "", binDir: "", env });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("no sealed key: sealed here it would belong to this machine");
    expect(existsSync(join(b.root, "etc/credstore.encrypted/entratool.key"))).toBe(false);
    expect(existsSync(join(b.root, "etc/systemd/system/entratool-agent.service.d/credential.conf"))).toBe(
      false,
    );
    expect(existsSync(join(b.root, "etc/entratool/config.json"))).toBe(true);
  });

  it("a bad new file on a board whose agent runs is reported at once, not held on the displays", async () => {
    writeFileSync(b.bootFile, GOOD);
    expect((await provision(b)).code).toBe(0);
    const screen = join(b.root, "screen.png");
    writeFileSync(
      b.bootFile,
      JSON.stringify({
        profile: { tenantId: TENANT },
        displays: [{ type: "png", file: screen, as: "ssd1306" }],
      }),
    );
    // --hold 600 as the unit runs it: the agent's start waits for this command, so no hold.
    const result = await provision(b, "--hold", "600");
    expect(result.code).toBe(2);
    expect(existsSync(screen)).toBe(true);
    // The running configuration is untouched.
    expect(readFileSync(join(b.root, "etc/entratool/config.json"), "utf8")).toContain(CLIENT);
  });

  it("without the package's user the board is not provisioned (exit 14), and the file stays", async () => {
    writeFileSync(join(b.root, "etc/group"), "root:x:0:\n");
    writeFileSync(b.bootFile, GOOD);
    const result = await provision(b);
    expect(result.code).toBe(14);
    expect(result.stderr).toContain(
      "The group entratool does not exist on this system: install the entratool package",
    );
    expect(existsSync(b.bootFile)).toBe(true);
  });
});
