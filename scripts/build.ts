/**
 * Builds the single-file executables with `bun build --compile`:
 *   dist/entratool               this machine's architecture
 *   dist/entratool-linux-arm64   Raspberry Pi OS 64-bit and other arm64 boards
 *   dist/entratool-linux-x64
 * Usage: bun scripts/build.ts [--host-only]
 * Bun fetches the runtime of a foreign target from the npm registry on first use and caches it.
 */
import { mkdirSync } from "node:fs";
import { arch } from "node:os";
import { join } from "node:path";

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
const dist = join(root, "dist");

interface Target {
  readonly target?: string;
  readonly outfile: string;
}

const hostOnly = process.argv.includes("--host-only");
const targets: Target[] = [{ outfile: "entratool" }];
if (!hostOnly) {
  targets.push({ target: "bun-linux-arm64", outfile: "entratool-linux-arm64" });
  targets.push({ target: "bun-linux-x64", outfile: "entratool-linux-x64" });
}

mkdirSync(dist, { recursive: true });
for (const { target, outfile } of targets) {
  const args = [
    "build",
    "--compile",
    // Bytecode and minification cut cold start roughly in half, which is the
    // start-to-user-code time a person waits through on a slow board.
    "--minify",
    "--bytecode",
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
  process.stdout.write(`built dist/${outfile} (${target ?? `host ${arch()}`}) in ${ms} ms\n`);
}
