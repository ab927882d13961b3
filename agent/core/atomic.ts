import { constants } from "node:fs";
import { chmod, type FileHandle, link, mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/*
 * Durable file primitives for the store. They throw Node's own errors (with `code` such as EACCES
 * and `path`); callers turn them into EntraToolErrors that say which file and what to fix.
 */

const PRIVATE_DIR_MODE = 0o700;

/**
 * The temp file a write goes through: hidden, in the target's directory (rename is atomic only
 * within one file system), unique per call so concurrent writers never share one.
 */
function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}.tmp`,
  );
}

/** True when `name` (a directory entry) is a temp file that a write to `path` left behind (crash). */
export function isTempFileOf(path: string, name: string): boolean {
  const prefix = `.${basename(path)}.`;
  return name.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(name.slice(prefix.length));
}

/** Writes `data` to a fresh file created with `mode` (O_EXCL), flushed to disk; returns the closed path. */
async function writeTemp(path: string, data: string | Uint8Array, mode: number): Promise<string> {
  const temp = tempPathFor(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
    // The umask may have removed bits from `mode`; chmod makes the mode exactly what was asked.
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    return temp;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/**
 * Flushes a directory's entries (a rename or unlink in it) to disk. File systems that cannot
 * fsync a directory (EINVAL/ENOTSUP on some FUSE and network mounts) are accepted as they are:
 * the data itself was already synced.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "ENOTSUP") throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with `data` so that a reader (or a crash) sees either the old or the new
 * content, never a mix: write a temp file in the same directory (created with `mode`, O_EXCL),
 * fsync it, rename it over the target, fsync the directory. The result always has `mode`, even when
 * the old file had another one (the rename replaces the inode). On failure the temp file is removed.
 * The directory must exist (see ensurePrivateDir).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const temp = await writeTemp(path, data, mode);
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await fsyncDir(dirname(path));
}

/**
 * Creates `path` with `data` only if it does not exist yet, atomically: the content is written and
 * synced to a temp file first, then hard-linked to `path` (link, unlike rename, fails with EEXIST
 * instead of replacing). Returns false when another writer got there first: its file, complete,
 * is left in place and should be read. Two racing processes therefore end with one file.
 */
export async function createFileExclusive(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<boolean> {
  const temp = await writeTemp(path, data, mode);
  let created = true;
  try {
    await link(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    created = false;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  await fsyncDir(dirname(path));
  return created;
}

/**
 * `mkdir -p` where every directory created gets 0700, and the leaf gets 0700 even when it existed
 * with another mode (existing parents are left alone: they may be shared, like ~/.local/state).
 * The chmod is skipped when the mode is already right, so a directory owned by root with 0700
 * (a systemd StateDirectory) needs no privilege.
 */
export async function ensurePrivateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: PRIVATE_DIR_MODE });
  const info = await stat(path);
  if ((info.mode & 0o777) !== PRIVATE_DIR_MODE) await chmod(path, PRIVATE_DIR_MODE);
}
