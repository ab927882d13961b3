import { spawnSync } from "node:child_process";
import { join } from "node:path";

/**
 * Builds the binaries once per test run (this machine's, linux-arm64 and linux-x64), so the
 * integration tests always exercise the compiled artefacts of the code under test, not stale ones:
 * test/binary runs dist/entratool directly and dist/entratool-linux-arm64 under qemu-user.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, "..", "..");
  const result = spawnSync(process.execPath, [join(root, "scripts", "build.ts")], {
    cwd: root,
    encoding: "utf8",
  });
  if (result.status !== 0) {
    throw new Error(`building the binaries failed:\n${result.stderr}${result.stdout}`);
  }
}
