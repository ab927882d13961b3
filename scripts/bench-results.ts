/**
 * What the benchmarks share: bench/results.json, where each writes its own key and keeps the
 * others'; the machine they ran on; and the order statistics of a series of runs.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { arch, cpus, totalmem, type } from "node:os";
import { dirname, join } from "node:path";

export const RESULTS_FILE = join(import.meta.dir, "..", "bench", "results.json");

/** Merges `entries` into bench/results.json (a damaged or missing file starts empty). */
export function writeResults(entries: Record<string, unknown>): void {
  let previous: Record<string, unknown> = {};
  if (existsSync(RESULTS_FILE)) {
    const parsed: unknown = JSON.parse(readFileSync(RESULTS_FILE, "utf8"));
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
      previous = parsed as Record<string, unknown>;
    }
  }
  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify({ ...previous, ...entries }, null, 2)}\n`);
}

/** The machine a benchmark ran on, as the README quotes it. */
export function machine(): { cpu: string; cores: number; memoryGiB: number; os: string; bun: string } {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    os: `${type()} ${arch()}`,
    bun: Bun.version,
  };
}

export interface Stats {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { median, min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
}
