import { spawnSync } from "node:child_process";
import { join } from "node:path";

/**
 * Builds the binary for this machine once per test run, so the integration tests always exercise
 * the compiled artefact of the code under test (not a stale one).
 */
export default function setup(): void {
  const root = join(import.meta.dirname, "..", "..");
  const result = spawnSync(process.execPath, [join(root, "scripts", "build.ts"), "--host-only"], {
    cwd: root,
    encoding: "utf8",
  });
  if (result.status !== 0) {
    throw new Error(`building dist/entratool failed:\n${result.stderr}${result.stdout}`);
  }
}
