import { fsyncDir } from "./atomic.ts";
import type { Clock } from "./clock.ts";
import { basename, dirname, join } from "./path.ts";

/**
 * Damaged state files are never deleted where they are found and never kept in the way: they are
 * renamed to `<file>.corrupt-<UTC time>` beside the original (for a person to inspect), and the
 * program starts that file afresh. So that a fault that repeats (a failing SD card, a bug) cannot
 * fill the disk, only the newest `keep` set-aside copies of each file are kept.
 */

/** How many set-aside copies of one file are kept by default. */
export const DEFAULT_KEEP_SET_ASIDE = 5;

const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z(?:-\d+)?$/;

/** `2026-11-27T12-00-00.000Z`: the time as a file name part (no colons, sorts in time order). */
export function setAsideStamp(now: number): string {
  return new Date(now).toISOString().replaceAll(":", "-");
}

/** Whether directory entry `name` is a set-aside copy of `path` (`<base>.corrupt-<stamp>`). */
export function isSetAsideOf(path: string, name: string): boolean {
  const prefix = `${basename(path)}.corrupt-`;
  return name.startsWith(prefix) && STAMP.test(name.slice(prefix.length));
}

export interface SetAsideOptions {
  readonly clock: Clock;
  /** Newest copies kept after this one is added; default DEFAULT_KEEP_SET_ASIDE. */
  readonly keep?: number;
}

/**
 * Renames `path` to `<path>.corrupt-<time>` and syncs the directory, then removes the oldest
 * set-aside copies beyond `keep`. Returns the new path, or undefined when `path` was already gone
 * (another process set it aside first). Throws Node's error (with `code`) for anything else.
 */
export async function setAside(path: string, options: SetAsideOptions): Promise<string | undefined> {
  // Loaded here, on the way to a repair: at the top it would cost every start (see atomic.ts).
  const { readdir, rename } = await import("node:fs/promises");
  const dir = dirname(path);
  const stamp = setAsideStamp(options.clock.now());
  let aside = `${path}.corrupt-${stamp}`;
  // Two in the same millisecond (a key and, in a loop, its tokens) must not replace each other.
  const existing = new Set(await readdir(dir).catch(() => [] as string[]));
  for (let n = 1; existing.has(basename(aside)); n++) aside = `${path}.corrupt-${stamp}-${n}`;
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  await prune(path, options.keep ?? DEFAULT_KEEP_SET_ASIDE);
  await fsyncDir(dir);
  return aside;
}

/** Removes the oldest set-aside copies of `path` beyond `keep` (names sort in time order). */
async function prune(path: string, keep: number): Promise<void> {
  const { readdir, unlink } = await import("node:fs/promises");
  const dir = dirname(path);
  const copies = (await readdir(dir)).filter((name) => isSetAsideOf(path, name)).sort(compareStamps);
  for (const name of copies.slice(0, Math.max(0, copies.length - keep))) {
    await unlink(join(dir, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
  }
}

/** Oldest first: by stamp, then by the `-n` suffix of copies made in the same millisecond. */
function compareStamps(a: string, b: string): number {
  const key = (name: string): [string, number] => {
    const match = /\.corrupt-(.+?)(?:-(\d+))?$/.exec(name);
    return [match?.[1] ?? "", Number(match?.[2] ?? 0)];
  };
  const [sa, na] = key(a);
  const [sb, nb] = key(b);
  return sa < sb ? -1 : sa > sb ? 1 : na - nb;
}
