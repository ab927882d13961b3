/**
 * The release artefacts of `npm run package` (scripts/package.ts), checked with Debian's own tools:
 * SHA256SUMS verifies with `sha256sum -c`; the tarballs hold the contract's files, root-owned,
 * sorted, with one fixed time; the two .debs' files, modes, control fields, conffiles and
 * maintainer scripts (`dpkg-deb`), and lintian finds no error or warning in either. This machine's
 * .deb is installed for real with `dpkg --root` into a scratch root (its own dpkg database,
 * /etc/passwd and /etc/group; the maintainer scripts run outside a chroot with DPKG_ROOT, as in
 * an image build): the user, its device groups, the modes; reinstalling changes nothing; remove
 * keeps the configuration and state, purge leaves nothing of ours but the user (Debian keeps
 * system users). The postinst also runs where systemd-sysusers and systemd-tmpfiles are missing.
 * Needs root (dpkg --root sets owners), as CI runs the tests.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pkg from "../../package.json" with { type: "json" };
import { ROOT } from "../support/cli.ts";

const VERSION = pkg.version;
/** A fixed SOURCE_DATE_EPOCH (2026-01-01 00:00 UTC): every time in the archives must be this one. */
const EPOCH = 1767225600;
const EPOCH_DATE = "2026-01-01 00:00";
/** dpkg's name for this machine's architecture: its .deb is the one installed. */
const DEB_ARCH = spawnSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).stdout.trim();
const DEBS = { arm64: `entratool_${VERSION}_arm64.deb`, amd64: `entratool_${VERSION}_amd64.deb` } as const;
const TARBALLS = ["linux-arm64", "linux-x64"].map((arch) => `entratool-${VERSION}-${arch}.tar.gz`);
const BINARIES = ["entratool", "entratool-linux-arm64", "entratool-linux-x64"];
const UNITS = ["entratool-agent.service", "entratool-agent@.service", "entratool-provision.service"];

const base = mkdtempSync(join(tmpdir(), "entratool-package-test-"));
const out = join(base, "out");
afterAll(() => rmSync(base, { recursive: true, force: true }));

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function sh(command: string, args: readonly string[], env: Record<string, string> = {}): Result {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    cwd: base,
    env: { ...process.env, TZ: "UTC", LANG: "C.UTF-8", ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

/** Like sh, and the command must succeed. */
function ok(command: string, args: readonly string[], env: Record<string, string> = {}): string {
  const result = sh(command, args, env);
  expect(result.status, `${command} ${args.join(" ")}:\n${result.stderr}${result.stdout}`).toBe(0);
  return result.stdout;
}

/** lintian on both packages, started as soon as they exist: it takes a while, and runs beside the rest. */
let lintian: Promise<Result>;

beforeAll(() => {
  ok(process.execPath, [join(ROOT, "scripts", "package.ts"), "--out", out, "--fast"], {
    SOURCE_DATE_EPOCH: String(EPOCH),
  });
  lintian = new Promise((resolve) => {
    const child = spawn(
      "lintian",
      // Without binaries/spelling: it reads every string of the 110 MiB runtime for typos in Bun's
      // own libraries (overridden in the package anyway), half of lintian's time.
      [
        "--fail-on",
        "error,warning",
        "--info",
        "-X",
        "binaries/spelling",
        ...Object.values(DEBS).map((deb) => join(out, deb)),
      ],
      { cwd: base, env: { ...process.env, LANG: "C.UTF-8" } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("close", (status) => resolve({ status, stdout, stderr }));
    child.on("error", (error) => resolve({ status: -1, stdout, stderr: String(error) }));
  });
}, 300_000);

/** One line of `tar -tv` or `dpkg-deb -c`: mode, owner, size, date and time, name. */
interface Entry {
  readonly mode: string;
  readonly owner: string;
  readonly date: string;
  readonly name: string;
}

function entries(listing: string): Entry[] {
  return listing
    .trim()
    .split("\n")
    .map((line) => {
      const match = /^(\S+) (\S+)\s+\d+ (\d{4}-\d\d-\d\d \d\d:\d\d) (.+)$/.exec(line);
      if (!match) throw new Error(`unexpected listing line: ${line}`);
      return { mode: match[1] ?? "", owner: match[2] ?? "", date: match[3] ?? "", name: match[4] ?? "" };
    });
}

describe("npm run package", () => {
  it("writes the binaries, both tarballs and both packages, and SHA256SUMS verifies them all", () => {
    const sums = readFileSync(join(out, "SHA256SUMS"), "utf8");
    const names = sums
      .trim()
      .split("\n")
      .map((line) => /^[0-9a-f]{64} {2}(\S+)$/.exec(line)?.[1]);
    expect(names).toEqual([...BINARIES, ...TARBALLS, ...Object.values(DEBS)].sort());
    // The names are relative: sha256sum -c runs where the file is.
    const check = spawnSync("sha256sum", ["--strict", "-c", "SHA256SUMS"], { cwd: out, encoding: "utf8" });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout.trim().split("\n")).toEqual(names.map((name) => `${name}: OK`));
  });

  it("a tarball has one top directory with the contract's files, root-owned, sorted, at one time", () => {
    for (const [tarball, arch] of [
      [TARBALLS[0], "linux-arm64"],
      [TARBALLS[1], "linux-x64"],
    ] as const) {
      const top = `entratool-${VERSION}-${arch}/`;
      const list = entries(ok("tar", ["--numeric-owner", "-tvzf", join(out, tarball ?? "")]));
      expect(list.map((entry) => entry.name).sort()).toEqual(
        [
          "",
          "README.md",
          "config.json",
          "config.schema.json",
          "entratool",
          "install.sh",
          "systemd/",
          ...UNITS.map((unit) => `systemd/${unit}`),
          "sysusers.d/",
          "sysusers.d/entratool.conf",
          "tmpfiles.d/",
          "tmpfiles.d/entratool.conf",
          ...(existsSync(join(ROOT, "LICENSE")) ? ["LICENSE"] : []),
        ]
          .map((name) => top + name)
          .sort(),
      );
      for (const entry of list) {
        expect(entry.owner, entry.name).toBe("0/0");
        expect(entry.date, entry.name).toBe(EPOCH_DATE);
        const executable = entry.name.endsWith("/entratool") || entry.name.endsWith("/install.sh");
        const expected = entry.name.endsWith("/") ? "drwxr-xr-x" : executable ? "-rwxr-xr-x" : "-rw-r--r--";
        expect(entry.mode, entry.name).toBe(expected);
      }
      // Sorted: within each directory, the entries come in name order (tar --sort=name).
      const byParent = new Map<string, string[]>();
      for (const { name } of list) {
        const parent = name.replace(/[^/]+\/?$/, "");
        byParent.set(parent, [...(byParent.get(parent) ?? []), name]);
      }
      for (const children of byParent.values()) expect(children).toEqual([...children].sort());
    }
  });

  it("the arm64 tarball and package hold the arm64 binary, byte for byte", () => {
    const binary = readFileSync(join(ROOT, "dist", "entratool-linux-arm64"));
    const fromTar = spawnSync(
      "tar",
      ["-xzOf", join(out, TARBALLS[0] ?? ""), `entratool-${VERSION}-linux-arm64/entratool`],
      { maxBuffer: 512 * 1024 * 1024 },
    );
    expect(fromTar.status).toBe(0);
    expect(fromTar.stdout.equals(binary)).toBe(true);
  });

  for (const [arch, deb] of Object.entries(DEBS)) {
    it(`${deb}: the contract's files, root-owned, with their modes and one time`, () => {
      const list = entries(ok("dpkg-deb", ["-c", join(out, deb)]));
      const files = Object.fromEntries(
        list.filter((e) => !e.name.endsWith("/")).map((e) => [e.name, e.mode]),
      );
      expect(files).toEqual({
        "./usr/bin/entratool": "-rwxr-xr-x",
        ...Object.fromEntries(UNITS.map((unit) => [`./lib/systemd/system/${unit}`, "-rw-r--r--"])),
        "./usr/lib/sysusers.d/entratool.conf": "-rw-r--r--",
        "./usr/lib/tmpfiles.d/entratool.conf": "-rw-r--r--",
        "./etc/entratool/config.json": "-rw-r--r--",
        "./usr/share/entratool/config.schema.json": "-rw-r--r--",
        "./usr/share/doc/entratool/copyright": "-rw-r--r--",
        "./usr/share/doc/entratool/changelog.gz": "-rw-r--r--",
        "./usr/share/man/man1/entratool.1.gz": "-rw-r--r--",
        "./usr/share/lintian/overrides/entratool": "-rw-r--r--",
      });
      for (const entry of list) {
        expect(entry.owner, entry.name).toBe("root/root");
        expect(entry.date, entry.name).toBe(EPOCH_DATE);
        if (entry.name.endsWith("/")) expect(entry.mode, entry.name).toBe("drwxr-xr-x");
      }
      // The binary of the package's architecture: ELF e_machine 0xB7 (aarch64) or 0x3E (x86-64).
      const head = spawnSync("sh", [
        "-c",
        `dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/bin/entratool | head -c 20`,
        "sh",
        join(out, deb),
      ]);
      expect(head.stdout.readUInt16LE(18)).toBe(arch === "arm64" ? 0xb7 : 0x3e);
    });

    it(`${deb}: control fields, the conffile and the maintainer scripts`, () => {
      const path = join(out, deb);
      const field = (name: string) => ok("dpkg-deb", ["-f", path, name]).trim();
      expect(field("Package")).toBe("entratool");
      expect(field("Version")).toBe(VERSION);
      expect(field("Architecture")).toBe(arch);
      expect(field("Section")).toBe("admin");
      expect(field("Priority")).toBe("optional");
      expect(field("Maintainer")).toMatch(/^[^<>]+ <[^@\s]+@[^>\s]+>$/);
      expect(field("Depends")).toMatch(/^libc6 \(>= 2\.\d+\), systemd-sysusers \| adduser$/);
      expect(field("Recommends")).toBe("libsystemd0");
      expect(field("Description")).toMatch(/^headless .+\n .+/);
      // Installed-Size in KiB: at least the binary.
      expect(Number(field("Installed-Size"))).toBeGreaterThan(
        statSync(join(ROOT, "dist", "entratool")).size / 1024,
      );

      const control = join(base, `control-${arch}`);
      ok("dpkg-deb", ["--control", path, control]);
      expect(readFileSync(join(control, "conffiles"), "utf8")).toBe("/etc/entratool/config.json\n");
      const md5sums = readFileSync(join(control, "md5sums"), "utf8");
      expect(md5sums).toMatch(/^[0-9a-f]{32} {2}usr\/bin\/entratool$/m);
      expect(md5sums).not.toMatch(/etc\/entratool/); // dpkg keeps the conffiles' own hashes
      for (const script of ["postinst", "prerm", "postrm"]) {
        const file = join(control, script);
        expect(statSync(file).mode & 0o777, script).toBe(0o755);
        const text = readFileSync(file, "utf8");
        expect(text.startsWith("#!/bin/sh\n"), script).toBe(true);
        expect(text, script).toMatch(/^set -e$/m);
        ok("dash", ["-n", file]);
        // Installing enables and starts nothing: the scripts ask systemd only to reload, to restart
        // what runs (an upgrade) and to stop (a removal).
        for (const [, verb] of text.matchAll(
          /^\s*(?:systemctl|deb-systemd-invoke|deb-systemd-helper)(?: --?\S+)* (\S+)/gm,
        )) {
          expect(["daemon-reload", "try-restart", "stop"], `${script}: ${verb}`).toContain(verb);
        }
      }
      expect(readFileSync(join(control, "postinst"), "utf8")).toMatch(
        /deb-systemd-invoke try-restart entratool-agent\.service 'entratool-agent@\*\.service'/,
      );
      expect(existsSync(join(control, "preinst"))).toBe(false);
    });
  }

  it("lintian finds no error and no warning in either package", async () => {
    const result = await lintian;
    const findings = result.stdout.split("\n").filter((line) => /^[EW]: /.test(line));
    expect(findings, result.stdout + result.stderr).toEqual([]);
    expect(result.status, result.stdout + result.stderr).toBe(0);
  }, 300_000);
});

/** A target system in a directory: a dpkg database, /etc/passwd and /etc/group, and the device groups. */
function scratchRoot(name: string, groups: string): string {
  const root = join(base, name);
  for (const dir of ["etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"]) {
    mkdirSync(join(root, dir), { recursive: true });
  }
  // What the package depends on, as this machine has it, so that dpkg checks the dependencies too.
  const status = ok("dpkg-query", ["--status", `libc6:${DEB_ARCH}`, "systemd"]);
  writeFileSync(join(root, "var/lib/dpkg/status"), status);
  writeFileSync(
    join(root, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\npi:x:1000:1000::/home/pi:/bin/sh\n",
  );
  writeFileSync(join(root, "etc/group"), `root:x:0:\n${groups}pi:x:1000:\n`);
  return root;
}

/** dpkg on the scratch root; the maintainer scripts run here with DPKG_ROOT, as in an image build. */
function dpkg(root: string, ...args: string[]): Result {
  return sh("dpkg", [
    `--root=${root}`,
    `--log=${join(root, "var/log/dpkg.log")}`,
    "--force-script-chrootless",
    "--force-unsafe-io",
    ...args,
  ]);
}

/** Every path under the root (but dpkg's own database), with its mode and owner. */
function tree(root: string): string[] {
  const paths: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const rel = path.slice(root.length);
      if (rel.startsWith("/var/lib/dpkg")) continue;
      const stat = lstatSync(path);
      paths.push(rel);
      if (stat.isDirectory()) walk(path);
    }
  };
  walk(root);
  return paths;
}

function mode(path: string): string {
  const stat = statSync(path);
  return `${(stat.mode & 0o7777).toString(8).padStart(4, "0")} ${stat.uid}:${stat.gid}`;
}

/**
 * A directory of links to these tools of this machine, for a PATH with nothing else on it. A tool
 * this machine lacks fails the test, or is left out (`missing: "skip"`).
 */
function toolsDir(bin: string, tools: readonly string[], missing: "fail" | "skip" = "fail"): string {
  mkdirSync(bin);
  for (const tool of tools) {
    const found = sh("sh", ["-c", `command -v ${tool}`]);
    if (missing === "fail") expect(found.status, `${tool} is not installed`).toBe(0);
    const path = found.stdout.trim();
    if (path) symlinkSync(path, join(bin, tool));
  }
  return bin;
}

function line(file: string, name: string): string | undefined {
  return readFileSync(file, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${name}:`));
}

describe(`dpkg --root: installing, reinstalling, removing and purging entratool_${VERSION}_${DEB_ARCH}.deb`, () => {
  const deb = () => join(out, DEBS[DEB_ARCH as keyof typeof DEBS]);

  it("installs: the binary runs, the user exists in its device groups, the directories have their modes", () => {
    const root = scratchRoot("install", "video:x:44:\ngpio:x:997:pi\n");
    const before = tree(root);
    const installed = dpkg(root, "--install", deb());
    expect(installed.status, installed.stderr + installed.stdout).toBe(0);
    expect(
      ok("dpkg-query", [
        `--root=${root}`,
        "-W",
        `-f=${"$"}{Status} ${"$"}{Version}` /* dpkg-query's own field syntax */,
        "entratool",
      ]),
    ).toBe(`install ok installed ${VERSION}`);
    expect(ok(join(root, "usr/bin/entratool"), ["--version"]).trim()).toContain(VERSION);

    // The user of sysusers.d/entratool.conf, with a group of its own, no shell, home the state directory.
    const user = line(join(root, "etc/passwd"), "entratool")?.split(":") ?? [];
    expect(user[5]).toBe("/var/lib/entratool");
    expect(user[6]).toBe("/usr/sbin/nologin");
    const gid = Number(line(join(root, "etc/group"), "entratool")?.split(":")[2]);
    expect(Number(user[3])).toBe(gid);
    expect(Number(user[2])).toBeLessThan(1000);
    // The device groups that exist got the user; those that do not (i2c, spi) were not created.
    expect(line(join(root, "etc/group"), "video")).toBe("video:x:44:entratool");
    expect(line(join(root, "etc/group"), "gpio")).toBe("gpio:x:997:pi,entratool");
    expect(line(join(root, "etc/group"), "i2c")).toBeUndefined();
    expect(line(join(root, "etc/group"), "spi")).toBeUndefined();

    expect(mode(join(root, "etc/entratool"))).toBe(`0750 0:${gid}`);
    expect(mode(join(root, "etc/entratool/config.json"))).toBe(`0640 0:${gid}`);
    expect(mode(join(root, "etc/credstore.encrypted"))).toBe("0700 0:0");
    expect(readFileSync(join(root, "etc/entratool/config.json"), "utf8")).toBe(
      readFileSync(join(ROOT, "deploy/system/config.json"), "utf8"),
    );
    for (const unit of UNITS) expect(existsSync(join(root, "lib/systemd/system", unit)), unit).toBe(true);
    // Nothing enabled: no link in any .wants directory, no state made ahead of the agent.
    expect(existsSync(join(root, "etc/systemd/system"))).toBe(false);
    expect(existsSync(join(root, "var/lib/entratool"))).toBe(false);

    // Installing the same version again (an upgrade, for the scripts) changes nothing.
    const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
    const group = readFileSync(join(root, "etc/group"), "utf8");
    const again = dpkg(root, "--install", deb());
    expect(again.status, again.stderr + again.stdout).toBe(0);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toBe(passwd);
    expect(readFileSync(join(root, "etc/group"), "utf8")).toBe(group);
    expect(mode(join(root, "etc/entratool/config.json"))).toBe(`0640 0:${gid}`);

    // The agent ran and the admin set it up: state, a sealed key, its drop-in, an enable link.
    const system = join(root, "etc/systemd/system");
    mkdirSync(join(root, "var/lib/entratool/tokens"), { recursive: true });
    writeFileSync(join(root, "var/lib/entratool/store.key"), "k");
    writeFileSync(join(root, "etc/credstore.encrypted/entratool.key"), "k");
    mkdirSync(join(system, "entratool-agent.service.d"), { recursive: true });
    writeFileSync(join(system, "entratool-agent.service.d/credential.conf"), "[Service]\n");
    mkdirSync(join(system, "multi-user.target.wants"), { recursive: true });
    symlinkSync(
      "/lib/systemd/system/entratool-agent.service",
      join(system, "multi-user.target.wants/entratool-agent.service"),
    );
    symlinkSync(
      "/lib/systemd/system/entratool-agent@.service",
      join(system, "multi-user.target.wants/entratool-agent@lab.service"),
    );
    writeFileSync(join(root, "etc/entratool/lab.json"), "{}\n");

    // Remove: the program goes, the configuration, the state and the admin's setup stay.
    const removed = dpkg(root, "--remove", "entratool");
    expect(removed.status, removed.stderr + removed.stdout).toBe(0);
    expect(existsSync(join(root, "usr/bin/entratool"))).toBe(false);
    expect(existsSync(join(root, "lib/systemd/system/entratool-agent.service"))).toBe(false);
    expect(existsSync(join(root, "etc/entratool/config.json"))).toBe(true);
    expect(existsSync(join(root, "var/lib/entratool/store.key"))).toBe(true);
    expect(existsSync(join(system, "entratool-agent.service.d/credential.conf"))).toBe(true);

    // Purge: nothing of ours is left; the user and group stay, as Debian keeps system users.
    const purged = dpkg(root, "--purge", "entratool");
    expect(purged.status, purged.stderr + purged.stdout).toBe(0);
    const query = sh("dpkg-query", [`--root=${root}`, "--status", "entratool"]);
    expect(query.stderr).toMatch(/not installed|no packages found/);
    const ours = /entratool|credstore/;
    expect(tree(root).filter((path) => ours.test(path))).toEqual([]);
    // What remains beyond the empty root: the user database (with its backups) and the test's own directories.
    const left = tree(root).filter((path) => !before.includes(path));
    for (const path of left) {
      expect(path, left.join("\n")).toMatch(
        /^\/etc\/(\.pwd\.lock|passwd-|group-|shadow|gshadow|systemd|systemd\/system|systemd\/system\/multi-user\.target\.wants)$|^\/var\/lib$|^\/var\/log\/dpkg\.log$/,
      );
    }
    expect(line(join(root, "etc/passwd"), "entratool")).toBeDefined();
  }, 120_000);

  it("the postinst also works without systemd-sysusers and systemd-tmpfiles, and twice", () => {
    const root = scratchRoot("minimal", "spi:x:45:\n");
    mkdirSync(join(root, "etc/entratool"));
    writeFileSync(join(root, "etc/entratool/config.json"), "{}\n");
    // Only the tools a minimal image has: no systemd at all.
    const bin = toolsDir(join(base, "minimal-bin"), [
      "sh",
      "grep",
      "head",
      "cut",
      "mkdir",
      "chown",
      "chmod",
      "useradd",
      "usermod",
      "getent",
    ]);
    const postinst = join(ROOT, "deploy/debian/postinst");
    const env = { PATH: bin, DPKG_ROOT: root };
    for (const previous of ["", VERSION]) {
      const result = spawnSync(join(bin, "sh"), [postinst, "configure", previous], { env, encoding: "utf8" });
      expect(result.status, result.stderr).toBe(0);
    }
    const user = line(join(root, "etc/passwd"), "entratool")?.split(":") ?? [];
    expect(user[5]).toBe("/var/lib/entratool");
    const gid = Number(line(join(root, "etc/group"), "entratool")?.split(":")[2]);
    expect(Number(user[3])).toBe(gid);
    expect(line(join(root, "etc/group"), "spi")).toBe("spi:x:45:entratool");
    expect(readFileSync(join(root, "etc/passwd"), "utf8").match(/^entratool:/gm)).toHaveLength(1);
    expect(mode(join(root, "etc/entratool"))).toBe(`0750 0:${gid}`);
    expect(mode(join(root, "etc/entratool/config.json"))).toBe(`0640 0:${gid}`);
    expect(mode(join(root, "etc/credstore.encrypted"))).toBe("0700 0:0");
  });
});

/**
 * The postinst on a running system, without DPKG_ROOT: names through getent, the user made in
 * /etc by systemd-sysusers, or by adduser where systemd-sysusers is missing. This machine's /etc is
 * not touched: the script runs in a mount namespace (unshare) where /etc is a copy, and
 * /usr/lib/sysusers.d and tmpfiles.d hold the package's files.
 */
describe("the postinst on a running system (a private copy of /etc)", () => {
  function runPostinst(name: string, tools: "systemd" | "adduser"): { etc: string; results: Result[] } {
    const dir = join(base, `running-${name}`);
    const etc = join(dir, "etc");
    mkdirSync(dir);
    ok("cp", ["-a", "/etc", etc]);
    writeFileSync(join(etc, "group"), `${readFileSync(join(etc, "group"), "utf8")}gpio:x:1999:\n`);
    mkdirSync(join(etc, "entratool"), { recursive: true });
    writeFileSync(join(etc, "entratool/config.json"), "{}\n");
    for (const [kind, file] of [
      ["sysusers.d", "deploy/system/sysusers.conf"],
      ["tmpfiles.d", "deploy/system/tmpfiles.conf"],
    ] as const) {
      mkdirSync(join(dir, kind));
      writeFileSync(join(dir, kind, "entratool.conf"), readFileSync(join(ROOT, file)));
    }
    // Without systemd's tools: a PATH of links to everything the adduser route needs, and no more.
    const bin = toolsDir(
      join(dir, "bin"),
      [
        "sh",
        "grep",
        "head",
        "cut",
        "mkdir",
        "chown",
        "chmod",
        "getent",
        "adduser",
        "perl",
        "usermod",
        "useradd",
        "groupadd",
        "gpasswd",
        "find",
        "cp",
      ],
      "skip",
    );
    const path = tools === "systemd" ? (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin") : bin;
    const script = [
      'mount --bind "$1/etc" /etc',
      'mount --bind "$1/sysusers.d" /usr/lib/sysusers.d',
      'mount --bind "$1/tmpfiles.d" /usr/lib/tmpfiles.d',
      'env -i PATH="$2" sh "$3" configure "$4"',
    ].join(" && ");
    const postinst = join(ROOT, "deploy/debian/postinst");
    const results = ["", VERSION].map((previous) =>
      sh("unshare", ["--mount", "sh", "-c", script, "sh", dir, path, postinst, previous]),
    );
    return { etc, results };
  }

  for (const tools of ["systemd", "adduser"] as const) {
    it(`makes the user with ${tools === "systemd" ? "systemd-sysusers" : "adduser where systemd-sysusers is missing"}, twice the same`, () => {
      const hostPasswd = readFileSync("/etc/passwd", "utf8");
      const { etc, results } = runPostinst(tools, tools);
      for (const result of results) expect(result.status, result.stderr + result.stdout).toBe(0);
      expect(readFileSync("/etc/passwd", "utf8")).toBe(hostPasswd);

      const passwd = readFileSync(join(etc, "passwd"), "utf8");
      expect(passwd.match(/^entratool:/gm)).toHaveLength(1);
      const user = line(join(etc, "passwd"), "entratool")?.split(":") ?? [];
      expect(user[5]).toBe("/var/lib/entratool");
      expect(user[6]).toBe("/usr/sbin/nologin");
      const gid = Number(line(join(etc, "group"), "entratool")?.split(":")[2]);
      expect(Number(user[3])).toBe(gid);
      expect(line(join(etc, "group"), "gpio")).toBe("gpio:x:1999:entratool");
      expect(line(join(etc, "group"), "video")?.split(":")[3]?.split(",")).toContain("entratool");
      expect(mode(join(etc, "entratool"))).toBe(`0750 0:${gid}`);
      expect(mode(join(etc, "entratool/config.json"))).toBe(`0640 0:${gid}`);
      expect(mode(join(etc, "credstore.encrypted"))).toBe("0700 0:0");
    });
  }
});
