/**
 * Makes the release artefacts from the compiled binaries (`npm run package`):
 *   dist/entratool-<version>-linux-<arm64|x64>.tar.gz   the binary with install.sh, the units and the
 *                                                       default configuration (deploy/install.sh installs it)
 *   dist/entratool_<version>_<arm64|amd64>.deb          the Debian packages (deploy/debian/)
 *   dist/SHA256SUMS                                     every artefact, for `sha256sum -c`
 * Usage: bun scripts/package.ts [--out DIR] [--fast]
 *   --out DIR  writes the artefacts to DIR instead of dist/ (the binaries are linked or copied there,
 *              so that SHA256SUMS names files beside it)
 *   --fast     gzip -1 instead of gzip -6 (tarballs) and xz -6 (.debs): the same files, bigger,
 *              in seconds instead of minutes (the tests)
 * The binaries are built (scripts/build.ts) when dist/ lacks them; after a change, `npm run build`
 * first. Tarballs and packages are reproducible: sorted entries, owner root, every time set to
 * SOURCE_DATE_EPOCH or else the last commit's time (dpkg-deb also dates its archive with it).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  createReadStream,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");

/** One release target: the binary scripts/build.ts makes, and the names Debian and the tarball use. */
interface Target {
  readonly binary: string;
  /** The tarball's suffix, as the binary is named (linux-arm64, linux-x64). */
  readonly tarArch: string;
  /** Debian's name of the architecture. */
  readonly debArch: string;
  /** ELF e_machine of the binary: a mix-up of binaries fails here instead of on a board. */
  readonly machine: number;
}

const TARGETS: readonly Target[] = [
  { binary: "entratool-linux-arm64", tarArch: "linux-arm64", debArch: "arm64", machine: 0xb7 },
  { binary: "entratool-linux-x64", tarArch: "linux-x64", debArch: "amd64", machine: 0x3e },
];
const BINARIES = ["entratool", ...TARGETS.map((target) => target.binary)];
const UNITS = ["entratool-agent.service", "entratool-agent@.service", "entratool-provision.service"];

/** The files both the tarball and the package are made of, from the repository. */
const SOURCES = {
  installSh: "deploy/install.sh",
  config: "deploy/system/config.json",
  schema: "deploy/config.schema.json",
  sysusers: "deploy/system/sysusers.conf",
  tmpfiles: "deploy/system/tmpfiles.conf",
  readme: "README.md",
  control: "deploy/debian/control.in",
  conffiles: "deploy/debian/conffiles",
  postinst: "deploy/debian/postinst",
  prerm: "deploy/debian/prerm",
  postrm: "deploy/debian/postrm",
  copyright: "deploy/debian/copyright",
  changelog: "deploy/debian/changelog",
  manPage: "deploy/debian/entratool.1",
  lintianOverrides: "deploy/debian/lintian-overrides",
  ...Object.fromEntries(UNITS.map((unit) => [unit, `systemd/${unit}`])),
} as const;

/** Artefacts are written under a temporary name and renamed: a reader never sees half of one. */
const TEMP_SUFFIX = `.${process.pid}.tmp`;

class PackageError extends Error {}

function fail(message: string): never {
  throw new PackageError(message);
}

function source(path: string): string {
  return join(root, path);
}

function run(command: string, args: readonly string[]): void {
  const result = spawnSync(command, args, { cwd: root, encoding: "utf8" });
  if (result.error) fail(`${command} could not be run (${result.error.message}); is it installed?`);
  if (result.status !== 0) {
    fail(`${command} ${args.join(" ")} failed (exit ${result.status}):\n${result.stderr}${result.stdout}`);
  }
}

/** Runs a command without blocking, so that the two architectures compress on two cores at once. */
function runAsync(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("error", (error) => reject(new PackageError(`${command} could not be run (${error.message})`)));
    child.on("close", (code) => {
      if (code === 0) resolvePromise();
      else reject(new PackageError(`${command} ${args.join(" ")} failed (exit ${code}):\n${output}`));
    });
  });
}

/** SOURCE_DATE_EPOCH, else the last commit's time, else now (a tree without git history). */
function sourceDateEpoch(): number {
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!/^\d+$/.test(fromEnv)) fail(`SOURCE_DATE_EPOCH must be seconds since 1970, not "${fromEnv}".`);
    return Number(fromEnv);
  }
  const git = spawnSync("git", ["log", "-1", "--format=%ct"], { cwd: root, encoding: "utf8" });
  const seconds = Number(git.stdout?.trim());
  return git.status === 0 && Number.isInteger(seconds) && seconds > 0
    ? seconds
    : Math.floor(Date.now() / 1000);
}

/** The version of package.json, which deploy/debian/changelog's newest entry must match. */
function packageVersion(): string {
  const { version } = JSON.parse(readFileSync(source("package.json"), "utf8")) as { version?: unknown };
  if (typeof version !== "string" || !/^[0-9][A-Za-z0-9.+~]*$/.test(version)) {
    fail(`package.json's version ${JSON.stringify(version)} is not one Debian accepts.`);
  }
  const newest = /^entratool \(([^)]+)\)/.exec(readFileSync(source(SOURCES.changelog), "utf8"))?.[1];
  if (newest !== version) {
    fail(
      `deploy/debian/changelog's newest entry is ${newest ?? "missing"}, package.json says ${version}: ` +
        "add an entry for this version at the top of the changelog.",
    );
  }
  return version;
}

/** The newest glibc symbol version the binary needs: the package's libc6 dependency. */
function glibcNeeded(path: string): string {
  const text = readFileSync(path).toString("latin1");
  let newest = [2, 17];
  for (const match of text.matchAll(/GLIBC_2\.(\d+)(?:\.(\d+))?/g)) {
    const found = [Number(match[1]), Number(match[2] ?? 0)];
    if (
      (found[0] ?? 0) > (newest[0] ?? 0) ||
      (found[0] === newest[0] && (found[1] ?? 0) > (newest[1] ?? 0))
    ) {
      newest = found;
    }
  }
  return `2.${newest[0]}${newest[1] ? `.${newest[1]}` : ""}`;
}

function checkMachine(path: string, target: Target): void {
  const header = readFileSync(path).subarray(0, 20);
  const isElf = header.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  if (!isElf || header.readUInt16LE(18) !== target.machine) {
    fail(`dist/${target.binary} is not a ${target.tarArch} executable: run npm run build.`);
  }
}

/** Copies a file into a staging tree with the given mode and the fixed time. */
function stage(from: string, to: string, mode: number, epoch: number): void {
  mkdirSync(join(to, ".."), { recursive: true });
  copyFileSync(from, to);
  chmodSync(to, mode);
  utimesSync(to, epoch, epoch);
}

function stageText(text: string | Buffer, to: string, mode: number, epoch: number): void {
  mkdirSync(join(to, ".."), { recursive: true });
  writeFileSync(to, text);
  chmodSync(to, mode);
  utimesSync(to, epoch, epoch);
}

/** Every directory 0755 with the fixed time (the umask and the clock would otherwise leak in). */
function fixDirectories(dir: string, epoch: number): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) fixDirectories(join(dir, entry.name), epoch);
  }
  chmodSync(dir, 0o755);
  utimesSync(dir, epoch, epoch);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/** gzip -9n as dpkg's tools compress documentation: no name, no time in the header. */
function gzipDoc(path: string): Buffer {
  return gzipSync(readFileSync(path), { level: 9 });
}

async function tarball(
  target: Target,
  version: string,
  out: string,
  work: string,
  epoch: number,
  level: number,
) {
  const top = `entratool-${version}-${target.tarArch}`;
  const dir = join(work, "tar", target.tarArch, top);
  stage(join(dist, target.binary), join(dir, "entratool"), 0o755, epoch);
  stage(source(SOURCES.installSh), join(dir, "install.sh"), 0o755, epoch);
  for (const unit of UNITS) stage(source(`systemd/${unit}`), join(dir, "systemd", unit), 0o644, epoch);
  stage(source(SOURCES.sysusers), join(dir, "sysusers.d", "entratool.conf"), 0o644, epoch);
  stage(source(SOURCES.tmpfiles), join(dir, "tmpfiles.d", "entratool.conf"), 0o644, epoch);
  stage(source(SOURCES.config), join(dir, "config.json"), 0o644, epoch);
  stage(source(SOURCES.schema), join(dir, "config.schema.json"), 0o644, epoch);
  stage(source(SOURCES.readme), join(dir, "README.md"), 0o644, epoch);
  if (existsSync(source("LICENSE"))) stage(source("LICENSE"), join(dir, "LICENSE"), 0o644, epoch);
  fixDirectories(dir, epoch);

  const name = `${top}.tar.gz`;
  const temp = join(out, `.${name}${TEMP_SUFFIX}`);
  await runAsync(
    "tar",
    [
      "--sort=name",
      "--format=gnu",
      `--mtime=@${epoch}`,
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      `--use-compress-program=gzip -n -${level}`,
      "-C",
      join(dir, ".."),
      "-cf",
      temp,
      top,
    ],
    process.env,
  );
  renameSync(temp, join(out, name));
  return name;
}

async function deb(target: Target, version: string, out: string, work: string, epoch: number, level: number) {
  const dir = join(work, "deb", target.debArch);
  const binary = join(dist, target.binary);
  stage(binary, join(dir, "usr/bin/entratool"), 0o755, epoch);
  for (const unit of UNITS)
    stage(source(`systemd/${unit}`), join(dir, "lib/systemd/system", unit), 0o644, epoch);
  stage(source(SOURCES.sysusers), join(dir, "usr/lib/sysusers.d/entratool.conf"), 0o644, epoch);
  stage(source(SOURCES.tmpfiles), join(dir, "usr/lib/tmpfiles.d/entratool.conf"), 0o644, epoch);
  // 0644 in the package: the postinst makes it 0640 root:entratool once the group exists.
  stage(source(SOURCES.config), join(dir, "etc/entratool/config.json"), 0o644, epoch);
  // The configuration's "$schema", for editors; install.sh puts it in the same place.
  stage(source(SOURCES.schema), join(dir, "usr/share/entratool/config.schema.json"), 0o644, epoch);
  const doc = join(dir, "usr/share/doc/entratool");
  stage(source(SOURCES.copyright), join(doc, "copyright"), 0o644, epoch);
  stageText(gzipDoc(source(SOURCES.changelog)), join(doc, "changelog.gz"), 0o644, epoch);
  stageText(gzipDoc(source(SOURCES.manPage)), join(dir, "usr/share/man/man1/entratool.1.gz"), 0o644, epoch);
  stage(source(SOURCES.lintianOverrides), join(dir, "usr/share/lintian/overrides/entratool"), 0o644, epoch);

  // Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, one per directory.
  const files = filesUnder(dir);
  const directories = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) =>
    e.isDirectory(),
  );
  const installedSize =
    files.reduce((sum, file) => sum + Math.ceil(statSync(file).size / 1024), 0) + directories.length;

  const conffiles = readFileSync(source(SOURCES.conffiles), "utf8");
  const conffileSet = new Set(conffiles.split("\n").filter((line) => line !== ""));
  // md5sums lists every file but the conffiles (dpkg keeps their hashes itself), as dh_md5sums does.
  const md5sums = files
    .map((file) => `/${relative(dir, file)}`)
    .filter((path) => !conffileSet.has(path))
    .map(
      (path) =>
        `${createHash("md5")
          .update(readFileSync(join(dir, path)))
          .digest("hex")}  ${path.slice(1)}\n`,
    )
    .join("");

  const control = readFileSync(source(SOURCES.control), "utf8")
    .replaceAll("@VERSION@", version)
    .replaceAll("@ARCH@", target.debArch)
    .replaceAll("@INSTALLED_SIZE@", String(installedSize))
    .replaceAll("@LIBC@", glibcNeeded(binary));
  const meta = join(dir, "DEBIAN");
  stageText(control, join(meta, "control"), 0o644, epoch);
  stageText(conffiles, join(meta, "conffiles"), 0o644, epoch);
  stageText(md5sums, join(meta, "md5sums"), 0o644, epoch);
  for (const script of ["postinst", "prerm", "postrm"] as const) {
    stage(source(SOURCES[script]), join(meta, script), 0o755, epoch);
  }
  fixDirectories(dir, epoch);

  const name = `entratool_${version}_${target.debArch}.deb`;
  const temp = join(out, `.${name}${TEMP_SUFFIX}`);
  // A release is xz -6, dpkg's default: 36.8 MiB for the arm64 binary against 52.5 with gzip -9
  // (npm run bench:ship), which a fleet of boards downloads; it takes minutes. --fast (the tests)
  // is gzip -1, seconds. --root-owner-group: root:root without fakeroot.
  const compression = level === 1 ? ["-Zgzip", "-z1"] : ["-Zxz", `-z${level}`];
  await runAsync("dpkg-deb", ["--root-owner-group", ...compression, "--build", dir, temp], {
    ...process.env,
    SOURCE_DATE_EPOCH: String(epoch),
  });
  renameSync(temp, join(out, name));
  return name;
}

function sha256(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolvePromise(hash.digest("hex")));
  });
}

/** The binaries beside the packages in an --out directory: a hard link where it can, else a copy. */
function placeBinary(name: string, out: string): void {
  const to = join(out, name);
  if (resolve(to) === resolve(join(dist, name))) return;
  rmSync(to, { force: true });
  try {
    linkSync(join(dist, name), to);
  } catch {
    copyFileSync(join(dist, name), to);
  }
}

/** A path as the user would type it: relative below the working directory, else absolute. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}

async function main(): Promise<void> {
  let options: { out?: string; fast?: boolean };
  try {
    options = parseArgs({
      options: { out: { type: "string" }, fast: { type: "boolean" } },
      allowPositionals: false,
    }).values;
  } catch (error) {
    fail(`${(error as Error).message}. Usage: bun scripts/package.ts [--out DIR] [--fast]`);
  }
  const out = resolve(options.out ?? dist);
  const level = options.fast ? 1 : 6;

  const version = packageVersion();
  const missing = Object.values(SOURCES).filter((path) => !existsSync(source(path)));
  if (missing.length > 0) fail(`missing from the repository: ${missing.join(", ")}.`);

  if (BINARIES.some((name) => !existsSync(join(dist, name)))) {
    process.stdout.write("building the binaries (dist/ lacks them)\n");
    run(process.execPath, [join(root, "scripts", "build.ts")]);
  }
  for (const target of TARGETS) checkMachine(join(dist, target.binary), target);

  const epoch = sourceDateEpoch();
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "entratool-package-"));
  try {
    const started = performance.now();
    // One architecture's tarball and package at a time, each pair compressed on two cores.
    const made: string[] = [];
    for (const target of TARGETS) {
      made.push(
        ...(await Promise.all([
          tarball(target, version, out, work, epoch, level),
          deb(target, version, out, work, epoch, level),
        ])),
      );
    }
    for (const name of BINARIES) placeBinary(name, out);

    const artefacts = [...BINARIES, ...made].sort();
    const lines = await Promise.all(
      artefacts.map(async (name) => `${await sha256(join(out, name))}  ${name}\n`),
    );
    const sums = join(out, "SHA256SUMS");
    writeFileSync(`${sums}${TEMP_SUFFIX}`, lines.join(""));
    renameSync(`${sums}${TEMP_SUFFIX}`, sums);

    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    for (const name of made) process.stdout.write(`made ${shown(join(out, name))}\n`);
    process.stdout.write(`wrote ${shown(sums)} (${artefacts.length} artefacts) in ${seconds} s\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
    for (const entry of readdirSync(out)) {
      if (entry.endsWith(TEMP_SUFFIX)) unlinkSync(join(out, entry));
    }
  }
}

main().catch((error: unknown) => {
  // One sentence for what went wrong (a missing file, a failed tool with its output), no stack.
  process.stderr.write(`package: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
