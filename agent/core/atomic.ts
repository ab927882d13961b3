import type { Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { EntraToolError } from "./errors.ts";
import { stat } from "./files.ts";
import { basename, dirname, join, resolve } from "./path.ts";

/*
 * Durable file primitives for the store. They throw Node's own errors (with `code` such as EACCES
 * and `path`); callers turn them into EntraToolErrors that say which file and what to fix. The one
 * exception is ensurePrivateDir's refusal of a shared directory, which is already that sentence.
 *
 * node:fs/promises is imported inside the functions that write, not at the top: loading its
 * JavaScript layer costs every start of the compiled binary a few ms, and a cached `get-token`
 * only stats (through Bun's own file API) and never writes. Writes keep node:fs for what Bun's file
 * API cannot do: O_EXCL, fchmod, fsync of a file and of a directory, rename, link.
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
  const { constants, open, unlink } = await import("node:fs/promises");
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
  const { constants, open } = await import("node:fs/promises");
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
  const { rename, unlink } = await import("node:fs/promises");
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
  const { link, unlink } = await import("node:fs/promises");
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
 * `mkdir -p` for a directory that will hold private files. Every directory it creates gets 0700
 * (whatever the umask). A directory that already exists is never chmod'ed: it may be shared or
 * someone else's (a systemd StateDirectory, ~/.local/state), and only its owner should change it.
 *
 * Anyone who can write a directory can replace or pre-create what we put in it, so:
 * - every existing directory from `privateRoot` down to `path` (the directories a person named for
 *   entratool: ENTRATOOL_HOME, STATE_DIRECTORY…, and what is below them; by default `path` alone)
 *   must not be writable by others, nor by a group other than the user's own (a user private
 *   group, as umask 002 systems give every user, is the user); a shared 1777 one is refused with
 *   E_STORE.
 * - when `privateRoot` itself does not exist yet, the existing directory in which it is created
 *   must not let others replace it: writable by others (or another group) only with the sticky
 *   bit, as /tmp is (`ENTRATOOL_HOME=/tmp/entratool-lab` is fine).
 * Directories above that (/, /home, ~/.local/state) are not ours to judge.
 */
export async function ensurePrivateDir(path: string, privateRoot: string = path): Promise<void> {
  const missing: string[] = [];
  let existing = resolve(path);
  for (;;) {
    const info = await statIfExists(existing);
    if (info !== undefined) {
      const root = resolve(privateRoot);
      const named = existing === root || existing.startsWith(`${root}/`);
      assertUsableDir(existing, info, named ? undefined : missing[0]);
      break;
    }
    const parent = dirname(existing);
    // The root always exists; reaching it without a stat means something odd: let mkdir say what.
    if (parent === existing) break;
    missing.unshift(existing);
    existing = parent;
  }
  // Nothing missing is the common case (every start checks the state directory): no node:fs then.
  if (missing.length === 0) return;
  const { chmod, mkdir } = await import("node:fs/promises");
  for (const dir of missing) {
    try {
      await mkdir(dir, { mode: PRIVATE_DIR_MODE });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // Another process (of ours, most likely) made it in between: judge it as any existing one.
      assertUsableDir(dir, await stat(dir));
      continue;
    }
    // Ours: the umask may have taken bits off the mode.
    if (((await stat(dir)).mode & 0o777) !== PRIVATE_DIR_MODE) await chmod(dir, PRIVATE_DIR_MODE);
  }
}

async function statIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Refuses a directory others could tamper with (see ensurePrivateDir): `path` itself, or, when
 * `creating` is given, the existing directory in which `creating` is about to be made.
 */
function assertUsableDir(path: string, info: Stats, creating?: string): void {
  if (!info.isDirectory()) {
    throw Object.assign(new Error(`${path} is not a directory`), { code: "ENOTDIR", path });
  }
  const byOthers = (info.mode & 0o002) !== 0;
  const byAnotherGroup = (info.mode & 0o020) !== 0 && info.gid !== process.getgid?.();
  if (!byOthers && !byAnotherGroup) return;
  const mode = (info.mode & 0o7777).toString(8).padStart(4, "0");
  if (creating === undefined) {
    throw new EntraToolError("E_STORE", {
      message: `The directory ${path} can be written by other users (mode ${mode}), so entratool will not keep its files there: make it private to this user ('chmod go-w ${path}') or set ENTRATOOL_HOME to a directory of its own.`,
      details: { path, mode },
    });
  }
  // The sticky bit (/tmp): others may write here, but not rename or remove what is ours.
  if ((info.mode & 0o1000) !== 0) return;
  throw new EntraToolError("E_STORE", {
    message: `entratool would create ${creating} in ${path}, which other users can write (mode ${mode}) without the sticky bit, so they could replace it: set ENTRATOOL_HOME to a directory of your own.`,
    details: { path, mode, creating },
  });
}
