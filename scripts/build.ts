/**
 * Builds the single-file executables with `bun build --compile`:
 *   dist/entratool               this machine's architecture
 *   dist/entratool-linux-arm64   Raspberry Pi OS 64-bit and other arm64 boards
 *   dist/entratool-linux-x64
 * Usage: bun scripts/build.ts [--host-only]
 * For measurements (scripts/bench-ship.ts) there are also: --target NAME (host, linux-arm64 or
 * linux-x64; repeat for several; --host-only is --target host), --outdir DIR (default dist/),
 * --no-minify and --no-bytecode.
 * Bun fetches the runtime of a foreign target from the npm registry on first use and caches it.
 */
import { mkdirSync } from "node:fs";
import { arch } from "node:os";
import { join, resolve } from "node:path";

const root = join(import.meta.dir, "..");
const entry = join(root, "agent", "main.ts");
/**
 * Embedded as entrypoints of their own and loaded at run time only when needed (see agent/main.ts).
 * All in agent/, beside main.ts: the embedded paths are relative to the entrypoints' common directory.
 */
const lazyEntries = [
  join(root, "agent", "auth", "msal.ts"),
  join(root, "agent", "pino-logger.ts"),
  join(root, "agent", "qr.ts"),
  join(root, "agent", "display-cli.ts"),
  join(root, "agent", "agent-cli.ts"),
];

interface Target {
  readonly target?: string;
  readonly outfile: string;
}

const ALL: Record<string, Target> = {
  host: { outfile: "entratool" },
  "linux-arm64": { target: "bun-linux-arm64", outfile: "entratool-linux-arm64" },
  "linux-x64": { target: "bun-linux-x64", outfile: "entratool-linux-x64" },
};

const argv = process.argv.slice(2);
/** Every value given to `flag` (as `--flag value`). */
function values(flag: string): string[] {
  return argv.flatMap((arg, i) => (arg === flag && argv[i + 1] !== undefined ? [argv[i + 1] as string] : []));
}
const named = argv.includes("--host-only") ? ["host"] : values("--target");
const unknown = named.filter((name) => !(name in ALL));
if (unknown.length > 0) {
  process.stderr.write(`unknown --target ${unknown.join(", ")}: use ${Object.keys(ALL).join(", ")}\n`);
  process.exit(2);
}
const targets = (named.length > 0 ? named : Object.keys(ALL)).map((name) => ALL[name] as Target);
const outdir = values("--outdir").at(-1);
const dist = outdir === undefined ? join(root, "dist") : resolve(outdir);
const minify = !argv.includes("--no-minify");
const bytecode = !argv.includes("--no-bytecode");

mkdirSync(dist, { recursive: true });
for (const { target, outfile } of targets) {
  const args = [
    "build",
    "--compile",
    // Bytecode and minification cut cold start roughly in half, which is the
    // start-to-user-code time a person waits through on a slow board.
    ...(minify ? ["--minify"] : []),
    ...(bytecode ? ["--bytecode"] : []),
    "--sourcemap=none",
    ...(target ? [`--target=${target}`] : []),
    entry,
    ...lazyEntries,
    "--outfile",
    join(dist, outfile),
  ];
  const started = performance.now();
  const proc = Bun.spawnSync([process.execPath, ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) {
    process.stderr.write(proc.stderr.toString() || proc.stdout.toString());
    process.stderr.write(`build of ${outfile} failed (exit ${proc.exitCode})\n`);
    process.exit(1);
  }
  const ms = Math.round(performance.now() - started);
  process.stdout.write(`built ${join(dist, outfile)} (${target ?? `host ${arch()}`}) in ${ms} ms\n`);
}
