/**
 * deploy/install.sh as an admin runs it: from a directory laid out like the release tarball
 * (entratool-<version>-linux-<arch>/ with the compiled binary, the units, sysusers.d, tmpfiles.d
 * and config.json), into scratch roots (--root) with their own /etc/passwd and /etc/group, with
 * the real systemd-sysusers, systemd-tmpfiles, usermod and systemctl. The 32-bit and foreign
 * machines are shown to the script through PATH shims for uname, getconf and dpkg and an ELF
 * header of that machine (ENTRATOOL_INSTALL_SH_ELF, the script's test hook for /bin/sh). --deb is
 * checked in dry runs only (with a minimal .deb made here): installing a package would change this
 * machine.
 */
import { type SpawnSyncReturns, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pkg from "../../package.json" with { type: "json" };
import { ROOT } from "../support/cli.ts";

const SCRIPT = join(ROOT, "deploy", "install.sh");
/** This machine's release architecture, and the other one (a binary this machine must refuse). */
const ARCH = process.arch === "arm64" ? "arm64" : "x64";
const OTHER = ARCH === "arm64" ? "x64" : "arm64";
const IS_ROOT = process.getuid?.() === 0;

const base = mkdtempSync(join(tmpdir(), "entratool-install-"));
// Readable for the unprivileged user of the not-root test.
chmodSync(base, 0o755);
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** An unpacked release tarball, per the shipping contract's layout, holding the given binary. */
function tarballDir(arch: "arm64" | "x64", binary: string): string {
  const dir = join(base, `tar-${arch}`, `entratool-${pkg.version}-linux-${arch}`);
  mkdirSync(join(dir, "systemd"), { recursive: true });
  mkdirSync(join(dir, "sysusers.d"));
  mkdirSync(join(dir, "tmpfiles.d"));
  chmodSync(join(base, `tar-${arch}`), 0o755);
  copyFileSync(binary, join(dir, "entratool"));
  chmodSync(join(dir, "entratool"), 0o755);
  copyFileSync(SCRIPT, join(dir, "install.sh"));
  chmodSync(join(dir, "install.sh"), 0o755);
  for (const unit of readdirSync(join(ROOT, "systemd")).filter((name) => name.endsWith(".service"))) {
    copyFileSync(join(ROOT, "systemd", unit), join(dir, "systemd", unit));
  }
  copyFileSync(join(ROOT, "deploy", "system", "sysusers.conf"), join(dir, "sysusers.d", "entratool.conf"));
  copyFileSync(join(ROOT, "deploy", "system", "tmpfiles.conf"), join(dir, "tmpfiles.d", "entratool.conf"));
  copyFileSync(join(ROOT, "deploy", "system", "config.json"), join(dir, "config.json"));
  copyFileSync(join(ROOT, "deploy", "config.schema.json"), join(dir, "config.schema.json"));
  copyFileSync(join(ROOT, "README.md"), join(dir, "README.md"));
  return dir;
}

let tarball = "";
const archive = join(base, `entratool-${pkg.version}-linux-${ARCH}.tar.gz`);
/** The .tar.gz of the tarball directory: compressing 120 MB takes seconds, so it runs beside the other tests. */
let packed: Promise<number | null> = Promise.resolve(null);
beforeAll(() => {
  tarball = tarballDir(ARCH, join(ROOT, "dist", "entratool"));
  const tar = spawn(
    "tar",
    ["-I", "gzip -1", "-cf", archive, "-C", join(tarball, ".."), `entratool-${pkg.version}-linux-${ARCH}`],
    {
      stdio: "ignore",
    },
  );
  packed = new Promise((resolve) => tar.on("exit", (code) => resolve(code)));
});

let roots = 0;
/** A scratch root with a passwd and group of its own: gpio and i2c exist there, spi and video do not. */
function scratchRoot(): string {
  const root = join(base, `root-${++roots}`);
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(root, "etc", "group"), "root:x:0:\ngpio:x:997:\ni2c:x:998:\n");
  return root;
}

function install(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const result: SpawnSyncReturns<string> = spawnSync("./install.sh", args, {
    cwd: options.cwd ?? tarball,
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", ...options.env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Every entry under a directory: type, mode, owner, size, mtime, link target. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string): void => {
    const st = lstatSync(path);
    const link = st.isSymbolicLink() ? ` -> ${readlinkSync(path)}` : "";
    out[path.slice(dir.length) || "/"] =
      `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs}${link}`;
    if (st.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(dir);
  return out;
}

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}

/** The id of a group in a scratch root's /etc/group. */
function gidIn(root: string, group: string): number {
  const line = readFileSync(join(root, "etc", "group"), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${group}:`));
  if (!line) throw new Error(`no group ${group} in ${root}/etc/group`);
  return Number(line.split(":")[2]);
}

function membersIn(root: string, group: string): string[] {
  const line = readFileSync(join(root, "etc", "group"), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${group}:`));
  return (line?.split(":")[3] ?? "").split(",").filter(Boolean);
}

const UNITS = ["entratool-agent.service", "entratool-agent@.service", "entratool-provision.service"];

describe("install.sh into a scratch root", () => {
  it("--dry-run lists every action and changes nothing", () => {
    const root = scratchRoot();
    const before = snapshot(root);
    const result = install(["--root", root, "--dry-run", "--enable", "--provision"]);
    expect(result.code, result.stderr).toBe(0);
    expect(snapshot(root)).toEqual(before);
    const out = result.stdout;
    expect(out).toContain(
      `would run: install -m 0755 -o 0 -g 0 ${tarball}/entratool ${root}/usr/bin/.entratool.`,
    );
    expect(out).toMatch(
      new RegExp(`would run: mv -f ${root}/usr/bin/\\.entratool\\.install-\\d+ ${root}/usr/bin/entratool\\n`),
    );
    for (const unit of UNITS) expect(out).toContain(`${root}/lib/systemd/system/${unit}\n`);
    expect(out).toContain(`${root}/usr/lib/sysusers.d/entratool.conf\n`);
    expect(out).toContain(`${root}/usr/lib/tmpfiles.d/entratool.conf\n`);
    expect(out).toContain(`${root}/usr/share/entratool/config.schema.json\n`);
    expect(out).toContain(`would run: systemd-sysusers --root=${root} entratool.conf\n`);
    expect(out).toContain(`would run: usermod --root ${root} -a -G gpio entratool\n`);
    expect(out).toContain(`would run: usermod --root ${root} -a -G i2c entratool\n`);
    expect(out).not.toMatch(/-G (spi|video)/);
    expect(out).toContain(`would run: systemd-tmpfiles --root=${root} --create entratool.conf\n`);
    expect(out).toContain(`${root}/etc/entratool/config.json\n`);
    expect(out).toContain(`would run: systemctl --root=${root} enable entratool-agent.service\n`);
    expect(out).toContain(`would run: systemctl --root=${root} enable entratool-provision.service\n`);
    expect(out).not.toMatch(/daemon-reload|try-restart/);
    expect(out).toMatch(/dry run: nothing was changed\.\n/);
  });

  it("installs the contract's layout, the user, its groups and permissions; enables only what is asked", () => {
    const root = scratchRoot();
    const result = install(["--root", root, "--enable", "--provision"]);
    expect(result.code, result.stderr).toBe(0);

    const bin = join(root, "usr", "bin", "entratool");
    expect(mode(bin)).toBe("0755");
    expect(statSync(bin).uid).toBe(0);
    expect(readFileSync(bin).equals(readFileSync(join(tarball, "entratool")))).toBe(true);
    const version = spawnSync(bin, ["--version"], { encoding: "utf8" });
    expect(version.stdout).toBe(`entratool ${pkg.version}\n`);
    for (const unit of UNITS) {
      const path = join(root, "lib", "systemd", "system", unit);
      expect(mode(path)).toBe("0644");
      expect(readFileSync(path, "utf8")).toBe(readFileSync(join(tarball, "systemd", unit), "utf8"));
    }
    expect(mode(join(root, "usr", "lib", "sysusers.d", "entratool.conf"))).toBe("0644");
    expect(mode(join(root, "usr", "lib", "tmpfiles.d", "entratool.conf"))).toBe("0644");
    const schema = join(root, "usr", "share", "entratool", "config.schema.json");
    expect(mode(schema)).toBe("0644");
    expect(readFileSync(schema, "utf8")).toBe(
      readFileSync(join(ROOT, "deploy", "config.schema.json"), "utf8"),
    );

    // The user in the scratch root's own files: a system user with no shell, home the state directory.
    const passwd = readFileSync(join(root, "etc", "passwd"), "utf8");
    const user =
      passwd
        .split("\n")
        .find((l) => l.startsWith("entratool:"))
        ?.split(":") ?? [];
    expect(Number(user[2])).toBeLessThan(1000);
    expect(user[5]).toBe("/var/lib/entratool");
    expect(user[6]).toMatch(/nologin$/);
    const gid = gidIn(root, "entratool");
    expect(Number(user[3])).toBe(gid);
    expect(membersIn(root, "gpio")).toEqual(["entratool"]);
    expect(membersIn(root, "i2c")).toEqual(["entratool"]);
    expect(readFileSync(join(root, "etc", "group"), "utf8")).not.toMatch(/^(spi|video):/m);
    expect(result.stdout).toContain("added: user entratool to the groups gpio i2c\n");

    const etc = join(root, "etc", "entratool");
    expect(mode(etc)).toBe("0750");
    expect([statSync(etc).uid, statSync(etc).gid]).toEqual([0, gid]);
    const config = join(etc, "config.json");
    expect(mode(config)).toBe("0640");
    expect([statSync(config).uid, statSync(config).gid]).toEqual([0, gid]);
    expect(readFileSync(config, "utf8")).toBe(readFileSync(join(tarball, "config.json"), "utf8"));
    const creds = join(root, "etc", "credstore.encrypted");
    expect(mode(creds)).toBe("0700");
    expect([statSync(creds).uid, statSync(creds).gid]).toEqual([0, 0]);

    const enabled = (unit: string) =>
      spawnSync("systemctl", [`--root=${root}`, "is-enabled", unit], { encoding: "utf8" }).stdout.trim();
    expect(enabled("entratool-agent.service")).toBe("enabled");
    expect(enabled("entratool-provision.service")).toBe("enabled");
    // Nothing left behind from the atomic copies.
    expect(Object.keys(snapshot(root)).filter((path) => path.includes(".install-"))).toEqual([]);
    expect(result.stdout).toContain(`installed: ${bin}\n`);
    expect(result.stdout).toContain("created: user entratool\n");
    expect(result.stdout).toContain("entratool is installed.\n");
  });

  it("running again changes nothing and says already installed for every step", () => {
    const root = scratchRoot();
    expect(install(["--root", root, "--enable"]).code).toBe(0);
    const before = snapshot(root);
    const again = install(["--root", root, "--enable"]);
    expect(again.code, again.stderr).toBe(0);
    expect(snapshot(root)).toEqual(before);
    const out = again.stdout;
    for (const path of [
      "/usr/bin/entratool",
      ...UNITS.map((unit) => `/lib/systemd/system/${unit}`),
      "/usr/lib/sysusers.d/entratool.conf",
      "/usr/lib/tmpfiles.d/entratool.conf",
      "/usr/share/entratool/config.schema.json",
      "/etc/entratool/config.json",
    ]) {
      expect(out).toContain(`already installed: ${root}${path}\n`);
    }
    expect(out).toContain("already installed: user entratool\n");
    expect(out).toContain("already installed: user entratool in the groups gpio i2c\n");
    expect(out).toContain(`already installed: ${root}/etc/entratool and ${root}/etc/credstore.encrypted`);
    expect(out).toContain("already enabled: entratool-agent.service\n");
    expect(out).toMatch(/entratool is already installed: nothing changed\.\n$/);
    expect(out).not.toMatch(/^(installed|updated|created|added|permissions set):/m);
  });

  it("keeps an admin's config.json and only makes it readable to the agent; enables nothing unasked", () => {
    const root = scratchRoot();
    mkdirSync(join(root, "etc", "entratool"), { recursive: true });
    const config = join(root, "etc", "entratool", "config.json");
    const mine = '{ "version": 1, "profile": "lab" }\n';
    writeFileSync(config, mine, { mode: 0o600 });
    const result = install(["--root", root]);
    expect(result.code, result.stderr).toBe(0);
    expect(readFileSync(config, "utf8")).toBe(mine);
    expect(result.stdout).toContain(`kept: ${config} (it exists and is never overwritten`);
    expect(mode(config)).toBe("0640");
    expect(statSync(config).gid).toBe(gidIn(root, "entratool"));
    expect(existsSync(join(root, "etc", "systemd", "system"))).toBe(false);
    expect(result.stdout).toContain("Nothing is enabled");
    // And again: kept, nothing changes.
    const before = snapshot(root);
    const again = install(["--root", root]);
    expect(again.stdout).toContain(`kept: ${config}`);
    expect(again.stdout).toContain("nothing changed.");
    expect(snapshot(root)).toEqual(before);
  });

  it("an upgrade puts the new binary in by rename (a running agent keeps its file) and fixes modes", () => {
    const root = scratchRoot();
    const bin = join(root, "usr", "bin", "entratool");
    mkdirSync(join(root, "usr", "bin"), { recursive: true });
    writeFileSync(bin, "the old entratool\n", { mode: 0o755 });
    const oldInode = statSync(bin).ino;
    const unitDir = join(root, "lib", "systemd", "system");
    mkdirSync(unitDir, { recursive: true });
    const unit = join(unitDir, "entratool-agent.service");
    copyFileSync(join(tarball, "systemd", "entratool-agent.service"), unit);
    chmodSync(unit, 0o600);
    const result = install(["--root", root]);
    expect(result.code, result.stderr).toBe(0);
    expect(statSync(bin).ino).not.toBe(oldInode);
    expect(readFileSync(bin).equals(readFileSync(join(tarball, "entratool")))).toBe(true);
    expect(mode(bin)).toBe("0755");
    expect(mode(unit)).toBe("0644");
    expect(result.stdout).toContain(`updated: ${bin}\n`);
    expect(result.stdout).toContain(`already installed: ${unit}\n`);
    expect(result.stdout).toContain(`permissions set: ${unit} (0644 0:0)\n`);
  });

  it("from a directory without a binary (the repository's deploy/) says how to run it", () => {
    const result = spawnSync(SCRIPT, ["--dry-run"], { encoding: "utf8" });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(
      /there is no entratool binary next to install\.sh .*--tarball FILE or --deb FILE/,
    );
  });
});

/**
 * Runs `inner` (sh, with "$1" = `arg`) as root of a mount namespace whose root is a writable
 * overlay of /: the script runs as on a board (no --root: getent, usermod, systemd-sysusers, apt
 * and systemctl on "this" system) while this machine stays untouched. /run is not in the overlay,
 * so systemd is not running there and nothing is started. Needs root (-m) or unprivileged user
 * namespaces (-m -r), like test/binary/state.test.ts.
 */
function inOverlay(name: string, inner: string, arg: string) {
  const dir = join(base, `overlay-${name}`);
  for (const sub of ["upper", "work", "merged"]) mkdirSync(join(dir, sub), { recursive: true });
  const namespace = IS_ROOT ? ["-m"] : ["-m", "-r"];
  const script = `
    set -e
    dir=$1 base=$2 arg=$3 m=$1/merged
    mount -t overlay overlay -o lowerdir=/,upperdir="$dir/upper",workdir="$dir/work" "$m"
    mount --bind /proc "$m/proc"
    mount --bind /dev "$m/dev"
    mkdir -p "$m$base"
    mount --bind "$base" "$m$base"
    exec chroot "$m" sh -c '${inner}' sh "$arg"`;
  return spawnSync("unshare", [...namespace, "sh", "-c", script, "sh", dir, base, arg], { encoding: "utf8" });
}

describe("install.sh on the machine itself", () => {
  it("installs into / (seen through a private overlay, so this machine is untouched) and again changes nothing", () => {
    const passwd = readFileSync("/etc/passwd", "utf8");
    const result = inOverlay(
      "tarball",
      `
        cd "$1"
        ./install.sh --enable
        echo ----
        ./install.sh --enable
        echo ----
        id entratool
        stat -c "%a %u %G %n" /usr/bin/entratool /etc/entratool /etc/entratool/config.json /etc/credstore.encrypted
      `,
      tarball,
    );
    expect(result.status, result.stderr).toBe(0);
    const [first = "", second = "", state = ""] = result.stdout.split("----\n");
    expect(first).toContain("installed: /usr/bin/entratool\n");
    expect(first).toContain("created: user entratool\n");
    expect(first).toContain("enabled: entratool-agent.service\n");
    expect(first).toContain("not started: entratool-agent.service (systemd is not running here");
    expect(first).toContain("entratool is installed.\n");
    expect(second).toContain("already installed: /usr/bin/entratool\n");
    expect(second).toContain("already enabled: entratool-agent.service\n");
    expect(second).toMatch(/entratool is already installed: nothing changed\.\n$/);
    expect(state).toMatch(/^uid=\d+\(entratool\) gid=\d+\(entratool\)/);
    expect(state).toContain("755 0 root /usr/bin/entratool\n");
    expect(state).toContain("750 0 entratool /etc/entratool\n");
    expect(state).toContain("640 0 entratool /etc/entratool/config.json\n");
    expect(state).toContain("700 0 root /etc/credstore.encrypted\n");
    expect(readFileSync("/etc/passwd", "utf8")).toBe(passwd);
  });

  it("installs the real .deb with apt (--deb), and a second run leaves the installed version alone", () => {
    // The package as `npm run package` makes it (gzip -1: the same files, in seconds).
    const out = join(base, "packages");
    const made = spawnSync(process.execPath, [join(ROOT, "scripts", "package.ts"), "--out", out, "--fast"], {
      encoding: "utf8",
    });
    expect(made.status, made.stderr + made.stdout).toBe(0);
    const deb = join(out, `entratool_${pkg.version}_${ARCH === "x64" ? "amd64" : "arm64"}.deb`);
    const passwd = readFileSync("/etc/passwd", "utf8");
    const result = inOverlay(
      "deb",
      `
        ${SCRIPT} --deb "$1" </dev/null
        echo ----
        ${SCRIPT} --deb "$1" </dev/null
        echo ----
        dpkg-query -W -f "\\\${Status} \\\${Version}\\n" entratool
        stat -c "%a %u %G %n" /usr/bin/entratool /etc/entratool/config.json
      `,
      deb,
    );
    expect(result.status, result.stderr + result.stdout).toBe(0);
    const [first = "", second = "", state = ""] = result.stdout.split("----\n");
    expect(first).toMatch(/installed|Setting up entratool/);
    expect(second).toContain(`already installed: package entratool ${pkg.version}`);
    expect(state).toContain(`install ok installed ${pkg.version}\n`);
    expect(state).toContain("755 0 root /usr/bin/entratool\n");
    expect(state).toContain("640 0 entratool /etc/entratool/config.json\n");
    expect(readFileSync("/etc/passwd", "utf8")).toBe(passwd);
  }, 120_000);
});

// ---- machines entratool does not run on ---------------------------------------------------------

/** An ELF header: class 1 (32-bit) or 2 (64-bit), little-endian, an executable of that machine. */
function elfHeader(name: string, elfClass: 1 | 2, machine: number): string {
  const header = Buffer.alloc(elfClass === 1 ? 52 : 64);
  header.write("\x7fELF", 0, "latin1");
  header[4] = elfClass;
  header[5] = 1;
  header[6] = 1;
  header.writeUInt16LE(2, 16);
  header.writeUInt16LE(machine, 18);
  header.writeUInt32LE(1, 20);
  const path = join(base, name);
  writeFileSync(path, header);
  return path;
}

/** A directory of uname, getconf and dpkg that describe another machine, first on PATH. */
function shims(name: string, machine: { uname: string; longBit: string; dpkg: string }): string {
  const dir = join(base, `shims-${name}`);
  mkdirSync(dir);
  const write = (tool: string, body: string) =>
    writeFileSync(join(dir, tool), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  write("uname", `echo ${machine.uname}`);
  write("getconf", `[ "$1" = LONG_BIT ] && echo ${machine.longBit}`);
  write("dpkg", `[ "$1" = --print-architecture ] && echo ${machine.dpkg}`);
  return `${dir}:${process.env.PATH ?? "/usr/bin:/bin"}`;
}

const EM_ARM = 40;
const EM_AARCH64 = 183;
const EM_RISCV = 243;

describe("install.sh refuses what cannot run entratool", () => {
  it("Raspberry Pi OS 32-bit on a 64-bit kernel (uname aarch64, userland armhf): one clear message", () => {
    const result = install(["--dry-run"], {
      env: {
        PATH: shims("pi32", { uname: "aarch64", longBit: "32", dpkg: "armhf" }),
        ENTRATOOL_INSTALL_SH_ELF: elfHeader("armhf-sh", 1, EM_ARM),
      },
    });
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("");
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain("this system runs a 32-bit userland (armhf on a 64-bit aarch64 kernel)");
    expect(result.stderr).toContain("Bun, which entratool is built with, has no 32-bit ARM build");
    expect(result.stderr).toContain("Raspberry Pi OS (64-bit)");
  });

  it("a 32-bit /bin/sh alone is enough, even when getconf and dpkg say 64-bit", () => {
    const result = install(["--dry-run"], {
      env: {
        PATH: shims("elf-only", { uname: "aarch64", longBit: "64", dpkg: "arm64" }),
        ENTRATOOL_INSTALL_SH_ELF: elfHeader("arm32-sh", 1, EM_ARM),
      },
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain("32-bit userland (32-bit arm on a 64-bit aarch64 kernel)");
  });

  it("dpkg's armhf alone is enough too", () => {
    const result = install(["--dry-run"], {
      env: {
        PATH: shims("dpkg-only", { uname: "aarch64", longBit: "64", dpkg: "armhf" }),
        ENTRATOOL_INSTALL_SH_ELF: elfHeader("aarch64-sh", 2, EM_AARCH64),
      },
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain("32-bit userland (armhf on a 64-bit aarch64 kernel)");
  });

  it("an architecture without a binary (riscv64)", () => {
    const result = install(["--dry-run"], {
      env: {
        PATH: shims("riscv", { uname: "riscv64", longBit: "64", dpkg: "riscv64" }),
        ENTRATOOL_INSTALL_SH_ELF: elfHeader("riscv-sh", 2, EM_RISCV),
      },
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      "install.sh: there is no entratool for riscv64: it is built for linux-arm64 (Raspberry Pi 3, 4, 5, Zero 2 W, CM4/CM5 with a 64-bit OS) and linux-x64.\n",
    );
  });

  it(`a tarball of the other architecture (linux-${OTHER} on this ${ARCH} machine)`, () => {
    const foreign = tarballDir(OTHER, join(ROOT, "dist", `entratool-linux-${OTHER}`));
    const result = install(["--dry-run"], { cwd: foreign });
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `install.sh: this tarball holds the linux-${OTHER} binary, and this machine is ${ARCH}: use entratool-${pkg.version}-linux-${ARCH}.tar.gz.\n`,
    );
  });

  it("a .deb of the other architecture; this machine's .deb in a dry run shows the apt-get command", () => {
    const deb = (arch: string): string => {
      const dir = join(base, `deb-${arch}`);
      mkdirSync(join(dir, "DEBIAN"), { recursive: true });
      writeFileSync(
        join(dir, "DEBIAN", "control"),
        `Package: entratool\nVersion: ${pkg.version}+installtest\nArchitecture: ${arch}\nMaintainer: test <test@example.invalid>\nDescription: stand-in of the test\n`,
      );
      const path = join(base, `entratool_${pkg.version}+installtest_${arch}.deb`);
      const built = spawnSync("dpkg-deb", ["--root-owner-group", "--build", dir, path], { encoding: "utf8" });
      expect(built.status, built.stderr).toBe(0);
      return path;
    };
    const here = ARCH === "arm64" ? "arm64" : "amd64";
    const there = ARCH === "arm64" ? "amd64" : "arm64";
    const foreign = install(["--deb", deb(there), "--dry-run"]);
    expect(foreign.code).toBe(3);
    expect(foreign.stderr).toContain(`is for ${there}, and this machine is ${here}: use entratool_`);

    const own = deb(here);
    const result = install(["--deb", own, "--dry-run", "--enable"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(`^would run: (apt-get install -y .*|dpkg .*-i )${own.replaceAll("+", "\\+")}$`, "m"),
    );
    expect(result.stdout).toContain("dry run: nothing was changed.");
  });

  it("--deb with --root is refused", () => {
    const result = install(["--deb", "x.deb", "--root", base]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--root works with the tarball, not with --deb");
  });

  it("not root: says exactly which command to run, and installs nothing", () => {
    const args = ["--enable", "--provision"];
    const result = IS_ROOT
      ? (() => {
          const r = spawnSync(
            "setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "./install.sh", ...args],
            { cwd: tarball, encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
          );
          return { code: r.status, stdout: r.stdout, stderr: r.stderr };
        })()
      : install(args);
    expect(result.code).toBe(4);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("installing needs root");
    expect(result.stderr).toContain("\n  sudo ./install.sh --enable --provision\n");
  });

  it("--dry-run needs no root and lists this machine's actions", () => {
    const args = ["--dry-run"];
    const result = IS_ROOT
      ? spawnSync(
          "setpriv",
          ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "./install.sh", ...args],
          {
            cwd: tarball,
            encoding: "utf8",
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
          },
        )
      : spawnSync("./install.sh", args, { cwd: tarball, encoding: "utf8" });
    expect(result.status, result.stderr).toBe(0);
    // This machine may have entratool already (another test's package); either way the binary is named.
    expect(result.stdout).toMatch(
      /^(would run: mv -f \/usr\/bin\/\.entratool\.install-\d+ \/usr\/bin\/entratool|already installed: \/usr\/bin\/entratool)$/m,
    );
    expect(result.stdout).toContain("dry run: nothing was changed.");
  });
});

// Last, so that the .tar.gz was made while the other tests ran.
describe("install.sh --tarball", () => {
  it("--tarball FILE installs from the .tar.gz and leaves no unpacked copy behind", async () => {
    expect(await packed).toBe(0);
    const scratchTmp = join(base, "tmp-tarball");
    mkdirSync(scratchTmp);
    const root = scratchRoot();
    const result = spawnSync(SCRIPT, ["--tarball", archive, "--root", root], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TMPDIR: scratchTmp },
    });
    expect(result.status, result.stderr).toBe(0);
    expect(
      readFileSync(join(root, "usr", "bin", "entratool")).equals(readFileSync(join(tarball, "entratool"))),
    ).toBe(true);
    expect(result.stdout).toContain(`entratool ${pkg.version} (linux-${ARCH})`);
    expect(readdirSync(scratchTmp)).toEqual([]);
  });
});
