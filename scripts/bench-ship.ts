/**
 * `npm run bench:ship`: what the shipped binaries cost in size and in start-up, and whether
 * `--minify` and `--bytecode` earn their place in scripts/build.ts. Four builds of linux-arm64 and
 * linux-x64 into a temporary directory: both flags (what ships), without --bytecode, without
 * --minify, without either.
 *
 *   1. Size of each: raw, gzip -9 (the tarball) and, for the shipped build, xz -6 (the .deb's
 *      data.tar.xz: dpkg-deb's default level). xz of a 110 MiB binary takes minutes of CPU, so the
 *      other builds get it only with --xz-all.
 *   2. Cold start to the code on screen: process start of `entratool get-token --flow device-code`
 *      against the local emulator until the user code is on stderr (as scripts/bench.ts measures
 *      it), the linux-x64 builds natively: median of --runs (default 21), the builds interleaved
 *      so that each sees the same machine load.
 *   3. The same for the linux-arm64 builds under qemu-aarch64-static -cpu cortex-a72 (a Pi 4's
 *      core, emulated: the figures compare the builds with each other, they are not a Pi's times),
 *      median of --qemu-runs (default 9).
 *
 * Prints a table and writes the figures into bench/results.json under "ship" (other keys kept).
 * Usage: bun scripts/bench-ship.ts [--runs N] [--qemu-runs N] [--xz-all] [--quick]
 * (--quick: 2 and 1 runs, no xz, nothing written; for working on the benchmark itself.)
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { machine, stats as orderStats, type Stats, writeResults } from "./bench-results.ts";
import { demoProfileArgs, EntraEmulator } from "./emulator/server.ts";

const root = join(import.meta.dir, "..");
const argv = process.argv.slice(2);
function numberArg(flag: string, fallback: number): number {
  const at = argv.indexOf(flag);
  const value = at >= 0 ? Number(argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} takes a whole number ≥ 1`);
  return value;
}
const QUICK = argv.includes("--quick");
const RUNS = numberArg("--runs", QUICK ? 2 : 21);
const QEMU_RUNS = numberArg("--qemu-runs", QUICK ? 1 : 9);
const XZ_ALL = argv.includes("--xz-all");
const QEMU = "qemu-aarch64-static";
const QEMU_CPU = "cortex-a72";
/** The prompt's sentence on a non-terminal stderr ("… and enter the code ABCD-EFGH …"), as in bench.ts. */
const CODE = /code ([A-Z0-9]{4}-?[A-Z0-9]{4})/;
/** One start that shows no code within this is a failure, not a slow figure. */
const RUN_DEADLINE_MS = 60_000;
const MIB = 1024 * 1024;
/**
 * A change in a median start-up smaller than this counts as none: single starts on a shared 2-core
 * virtual machine vary by ±30 % (several-fold under qemu: see the min–max), so a median of 9–21
 * runs is not trusted to better than this.
 */
const NOISE = 0.1;
const say = (text: string): void => void process.stdout.write(`${text}\n`);

interface Variant {
  readonly key: string;
  readonly label: string;
  readonly flags: readonly string[];
}

const VARIANTS: readonly Variant[] = [
  { key: "minify+bytecode", label: "--minify --bytecode (ships)", flags: [] },
  { key: "minify", label: "--minify", flags: ["--no-bytecode"] },
  { key: "bytecode", label: "--bytecode", flags: ["--no-minify"] },
  { key: "plain", label: "neither", flags: ["--no-minify", "--no-bytecode"] },
];
const ARCHES = ["linux-arm64", "linux-x64"] as const;
type Arch = (typeof ARCHES)[number];

/** The order statistics to a tenth of a millisecond, as results.json keeps them. */
function stats(values: readonly number[]): Stats {
  const { median, min, max } = orderStats(values);
  const round = (n: number) => Math.round(n * 10) / 10;
  return { median: round(median), min: round(min), max: round(max) };
}

interface Sizes {
  raw: number;
  gzip9: number;
  xz6?: number;
}

/** Bytes `command` writes to stdout (a compressor with -c). */
async function outputBytes(command: readonly string[]): Promise<number> {
  const proc = Bun.spawn([...command], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let bytes = 0;
  for await (const chunk of proc.stdout) bytes += chunk.byteLength;
  if ((await proc.exited) !== 0)
    throw new Error(`${command.join(" ")}: ${await new Response(proc.stderr).text()}`);
  return bytes;
}

/** Builds both architectures of `variant` into `dir` with scripts/build.ts. */
function build(variant: Variant, dir: string): void {
  const result = spawnSync(
    process.execPath,
    [
      join(root, "scripts", "build.ts"),
      "--target",
      "linux-arm64",
      "--target",
      "linux-x64",
      "--outdir",
      dir,
      ...variant.flags,
    ],
    { cwd: root, encoding: "utf8" },
  );
  if (result.status !== 0)
    throw new Error(`building ${variant.label} failed:\n${result.stderr}${result.stdout}`);
}

/** Milliseconds from spawning `cmd` to the user code on its stderr; the process is killed there. */
async function startToCode(cmd: readonly string[], env: Record<string, string>): Promise<number> {
  const started = performance.now();
  const proc = Bun.spawn([...cmd], { env, stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), RUN_DEADLINE_MS);
  let ms = 0;
  let text = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of proc.stderr) {
      text += decoder.decode(chunk, { stream: true });
      if (CODE.test(text)) {
        ms = performance.now() - started;
        proc.kill("SIGKILL");
        break;
      }
    }
    await proc.exited;
  } finally {
    clearTimeout(timer);
  }
  if (ms === 0)
    throw new Error(`no user code from ${cmd.join(" ")} within ${RUN_DEADLINE_MS / 1000} s:\n${text}`);
  return ms;
}

async function main(): Promise<void> {
  for (const tool of ["gzip", "xz", QEMU]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      process.stderr.write(
        `bench:ship needs ${tool} (apt-get install -y gzip xz-utils qemu-user-static libc6:arm64)\n`,
      );
      process.exit(2);
    }
  }
  const work = mkdtempSync(join(tmpdir(), "entratool-bench-ship-"));
  const emulator = new EntraEmulator({ tlsDir: join(work, "tls"), port: 0, defaults: { interval: 1 } });
  const loadBefore = loadavg();
  try {
    const binary = (variant: Variant, target: Arch) => join(work, variant.key, `entratool-${target}`);
    const buildMs: Record<string, number> = {};
    for (const variant of VARIANTS) {
      const started = performance.now();
      build(variant, join(work, variant.key));
      buildMs[variant.key] = Math.round(performance.now() - started);
      say(`built ${variant.label} (linux-arm64, linux-x64) in ${buildMs[variant.key]} ms`);
    }

    // 1. Sizes.
    const sizes: Record<string, Record<Arch, Sizes>> = {};
    for (const variant of VARIANTS) {
      const byArch = {} as Record<Arch, Sizes>;
      for (const target of ARCHES) {
        const file = binary(variant, target);
        const entry: Sizes = {
          raw: statSync(file).size,
          gzip9: await outputBytes(["gzip", "-9", "-c", file]),
        };
        if (!QUICK && (XZ_ALL || variant === VARIANTS[0]))
          entry.xz6 = await outputBytes(["xz", "-6", "-T0", "-c", file]);
        byArch[target] = entry;
        say(`sized ${variant.label} ${target}`);
      }
      sizes[variant.key] = byArch;
    }

    // 2 and 3. Start → code.
    const { authorityHost, caPath } = await emulator.start();
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: work,
      NODE_EXTRA_CA_CERTS: caPath,
      ENTRATOOL_HOME: join(work, "home"),
      LANG: "C.UTF-8",
    };
    const first = VARIANTS[0] as Variant;
    const profile = spawnSync(
      binary(first, "linux-x64"),
      demoProfileArgs({ authorityHost, scopes: ["User.Read"] }),
      { env, encoding: "utf8" },
    );
    if (profile.status !== 0) throw new Error(`create-profile failed: ${profile.stderr}`);
    const getToken = ["get-token", "--flow", "device-code"];
    const x64 = (variant: Variant) => [binary(variant, "linux-x64"), ...getToken];
    const arm64 = (variant: Variant) => [QEMU, "-cpu", QEMU_CPU, binary(variant, "linux-arm64"), ...getToken];
    // One start each first, not counted: it reads the binary into the page cache and the OpenID
    // configuration into the profile's discovery cache, as on a board that has run before.
    for (const variant of VARIANTS) {
      await startToCode(x64(variant), env);
      await startToCode(arm64(variant), env);
    }
    const native: Record<string, number[]> = Object.fromEntries(VARIANTS.map((v) => [v.key, []]));
    const emulated: Record<string, number[]> = Object.fromEntries(VARIANTS.map((v) => [v.key, []]));
    for (let i = 0; i < RUNS; i++)
      for (const variant of VARIANTS) native[variant.key]?.push(await startToCode(x64(variant), env));
    say(`measured linux-x64 start → code, ${RUNS} runs each`);
    for (let i = 0; i < QEMU_RUNS; i++)
      for (const variant of VARIANTS) emulated[variant.key]?.push(await startToCode(arm64(variant), env));
    say(`measured linux-arm64 start → code under qemu, ${QEMU_RUNS} runs each`);
    const loadAfter = loadavg();

    const startToCodeMs = {
      "linux-x64": Object.fromEntries(VARIANTS.map((v) => [v.key, stats(native[v.key] ?? [])])),
      [`linux-arm64, qemu -cpu ${QEMU_CPU}`]: Object.fromEntries(
        VARIANTS.map((v) => [v.key, stats(emulated[v.key] ?? [])]),
      ),
    };

    // Each flag against the build without it (the other flag kept, as it ships).
    const median = (runs: Record<string, number[]>, key: string) => stats(runs[key] ?? []).median;
    const flagEffect = (flag: "--minify" | "--bytecode", without: string) => {
      const shipped = first.key;
      const sizeArm = sizes[shipped]?.["linux-arm64"] as Sizes;
      const sizeArmWithout = sizes[without]?.["linux-arm64"] as Sizes;
      const x64Change = median(native, shipped) / median(native, without) - 1;
      const armChange = median(emulated, shipped) / median(emulated, without) - 1;
      const rawChange = sizeArm.raw - sizeArmWithout.raw;
      const gzipChange = sizeArm.gzip9 - sizeArmWithout.gzip9;
      // It stays if it makes the code appear sooner or the download smaller, and start-up no
      // later on either machine; "sooner" and "later" only beyond NOISE.
      const later = x64Change >= NOISE || armChange >= NOISE;
      const sooner = x64Change <= -NOISE || armChange <= -NOISE;
      const faster = sooner && !later;
      const smaller = gzipChange < 0 && !later;
      return {
        flag,
        startToCodeChange: { "linux-x64": round3(x64Change), "linux-arm64-qemu": round3(armChange) },
        arm64SizeChangeBytes: { raw: rawChange, gzip9: gzipChange },
        keep: faster || smaller,
      };
    };
    const decisions = [flagEffect("--bytecode", "minify"), flagEffect("--minify", "bytecode")];

    const ranOn = {
      ...machine(),
      qemu: spawnSync(QEMU, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0] ?? "",
      loadAverage: { before: round3(loadBefore[0] ?? 0), after: round3(loadAfter[0] ?? 0) },
    };

    const mib = (bytes: number | undefined) =>
      bytes === undefined ? "–" : `${(bytes / MIB).toFixed(1)} MiB`;
    const fmt = (s: Stats | undefined) =>
      s ? `${s.median.toFixed(0)} ms (${s.min.toFixed(0)}–${s.max.toFixed(0)})` : "–";
    say(
      `\n${ranOn.cpu}, ${ranOn.cores} cores, Bun ${ranOn.bun}, ${ranOn.qemu}; load ${ranOn.loadAverage.before} → ${ranOn.loadAverage.after}`,
    );
    say(`start → code: median (min–max) of ${RUNS} runs (x64), ${QEMU_RUNS} runs (arm64 emulated)\n`);
    const header = [
      "build",
      "arm64 raw",
      "gzip -9",
      "xz -6",
      "x64 raw",
      "gzip -9",
      "xz -6",
      "x64 → code",
      "arm64 qemu → code",
    ];
    const rows = VARIANTS.map((v) => {
      const s = sizes[v.key] as Record<Arch, Sizes>;
      return [
        v.label,
        mib(s["linux-arm64"].raw),
        mib(s["linux-arm64"].gzip9),
        mib(s["linux-arm64"].xz6),
        mib(s["linux-x64"].raw),
        mib(s["linux-x64"].gzip9),
        mib(s["linux-x64"].xz6),
        fmt(startToCodeMs["linux-x64"]?.[v.key]),
        fmt(startToCodeMs[`linux-arm64, qemu -cpu ${QEMU_CPU}`]?.[v.key]),
      ];
    });
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
    for (const row of [header, ...rows]) say(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  "));
    say("");
    for (const d of decisions) {
      const pct = (n: number) => `${n > 0 ? "+" : ""}${(n * 100).toFixed(1)} %`;
      say(
        `${d.keep ? "KEEP" : "DROP"}  ${d.flag} (changes under ${NOISE * 100} % count as none): start → code ${pct(d.startToCodeChange["linux-x64"])} (x64), ${pct(d.startToCodeChange["linux-arm64-qemu"])} (arm64 emulated); arm64 size ${mib(d.arm64SizeChangeBytes.raw)} raw, ${mib(d.arm64SizeChangeBytes.gzip9)} gzip`,
      );
    }

    if (QUICK) return;
    const ship = {
      date: new Date().toISOString(),
      machine: ranOn,
      runs: { native: RUNS, emulated: QEMU_RUNS },
      variants: Object.fromEntries(VARIANTS.map((v) => [v.key, v.label])),
      buildMs,
      sizesBytes: sizes,
      startToCodeMs,
      noise: NOISE,
      decisions,
    };
    writeResults({ ship });
    say("\nwrote bench/results.json (ship)");
  } finally {
    await emulator.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

await main();
