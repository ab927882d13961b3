import { EntraToolError, errnoCode, isEntraToolError } from "../core/errors.ts";

/** Also said for system files (/etc/machine-id), which the user only needs to be able to read. */
const PERMISSION_FIX =
  "Check that the user running entratool can access it and its directory (entratool's own files should belong to that user).";

/**
 * What the user can do about each errno a store file operation can fail with. Unknown codes get
 * the general advice: permissions first, because that is what goes wrong most (a unit that runs as
 * another user than the one who signed in, a state directory created by root). A Map, not an
 * object literal, so that no code is ever looked up on Object.prototype.
 */
const FIXES: ReadonlyMap<string, string> = new Map([
  ["EACCES", PERMISSION_FIX],
  ["EPERM", PERMISSION_FIX],
  ["ENOSPC", "Free some disk space and try again."],
  ["EDQUOT", "The user's disk quota is used up: free some space and try again."],
  [
    "EROFS",
    "The file system is read-only: set ENTRATOOL_HOME (or STATE_DIRECTORY / XDG_STATE_HOME) to a writable directory.",
  ],
  ["EISDIR", "A directory is in the way: move it aside."],
  ["ENOTDIR", "A file is in the way where a directory should be: move it aside."],
  ["ELOOP", "The path has a symbolic link loop: fix or remove the link."],
  ["EIO", "The disk reported an I/O error: check it (dmesg) and try again."],
  ["EMFILE", "Too many files are open: raise the open-file limit (ulimit -n) and try again."],
  ["ENFILE", "Too many files are open on this system: try again later."],
  [
    "ENOLCK",
    "The file system does not support locks (some network mounts): put the state directory on a local disk.",
  ],
]);
const GENERAL_FIX =
  "Check that it and its directory belong to the user running entratool and that the disk is not full or read-only.";

/**
 * The one E_STORE error for a failed file operation of the store: a sentence that names what was
 * attempted on which path, the errno code, and the fix for that code. `action` reads after
 * "Cannot", e.g. "read the key file". `cause` (Node's error, or one that carries a `code`) is kept
 * as the error's cause. A cause that is already an EntraToolError (a refused shared directory, say)
 * already says what to do, about the right path: it is returned as it is.
 */
export function storeError(path: string, action: string, cause: unknown): EntraToolError {
  if (isEntraToolError(cause)) return cause;
  const code = errnoCode(cause);
  const fix = (code === undefined ? undefined : FIXES.get(code)) ?? GENERAL_FIX;
  return new EntraToolError("E_STORE", {
    message: `Cannot ${action} ${path} (${code ?? "error"}). ${fix}`,
    cause,
  });
}
