import { ensurePrivateDir } from "../core/atomic.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { join } from "../core/path.ts";
import { Errno, EWOULDBLOCK, errnoName } from "../linux/errno.ts";
import { LazyLibc } from "../linux/libc.ts";
import { storeError } from "./errors.ts";
import { assertValidName } from "./names.ts";
import type { DirectoryLocks, Lock, LockManager, LockOptions } from "./types.ts";

/**
 * node:fs's callback open and close, loaded on the first lock: at the top of this module they
 * would cost every start (a cached `get-token` takes no lock; core/atomic.ts). A raw fd rather than
 * a FileHandle, see `acquire`; Bun's file API has no open.
 */
async function openFd(path: string, what: "lock file" | "directory"): Promise<number> {
  const { constants, open } = await import("node:fs");
  const flags =
    what === "lock file" ? constants.O_RDWR | constants.O_CREAT : constants.O_RDONLY | constants.O_DIRECTORY;
  return new Promise((resolve, reject) => {
    // 0600 applies only to a lock file created here (O_CREAT).
    open(path, flags, 0o600, (error, fd) => (error ? reject(error) : resolve(fd)));
  });
}

async function closeFd(fd: number): Promise<void> {
  const { close } = await import("node:fs");
  return new Promise((resolve, reject) => {
    close(fd, (error) => (error ? reject(error) : resolve()));
  });
}

// <sys/file.h> on Linux (all architectures we build for).
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/** The two libc calls the lock needs, of the shared binding. */
type Libc = { flock(fd: number, operation: number): number; errno(): number | undefined };

export interface FlockLockManagerOptions {
  /** paths.locksDir; created 0700. Lock files are never deleted (unlinking races with flock). */
  readonly locksDir: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How often a busy lock is retried. */
  readonly pollMs?: number;
  /** glibc by default (Raspberry Pi OS, Debian, Ubuntu). */
  readonly libcPath?: string;
  /**
   * The directory a person named for entratool's state (Paths.stateRoot: ENTRATOOL_HOME or the
   * state directory): it and everything below it must be private (see ensurePrivateDir).
   */
  readonly privateRoot?: string;
}

/**
 * Per-name locks with flock(2) on `<locksDir>/<name>.lock`. flock locks belong to the open file
 * description, so the kernel drops them when the holder exits or is killed: a lock is never stale.
 * Two acquires in one process conflict too (each opens the file anew), so they serialise.
 * Waiting polls with LOCK_NB every `pollMs` on the injected clock, which keeps it abortable.
 *
 * `lockDirectory` takes the same kind of lock on a directory itself, for the store's own files
 * (the profiles file, the key file): no lock file is created, and no name can collide with a
 * profile's, whose locks are files in `locksDir`.
 *
 * Needs Bun (bun:ffi). libc is opened on the first acquire, per instance, so that importing this
 * module costs nothing and works where bun:ffi is absent.
 */
export class FlockLockManager implements LockManager, DirectoryLocks {
  readonly #options: FlockLockManagerOptions;
  readonly #pollMs: number;
  readonly #libc: LazyLibc;

  constructor(options: FlockLockManagerOptions) {
    this.#options = options;
    this.#pollMs = options.pollMs ?? 100;
    this.#libc = new LazyLibc({
      path: options.libcPath,
      unavailable: (cause) =>
        new EntraToolError("E_STORE", {
          message: `Cannot load the C library for file locking (${String(cause)}). entratool needs Bun on Linux with glibc.`,
          cause,
        }),
    });
  }

  async acquire(name: string, options: LockOptions = {}): Promise<Lock> {
    assertValidName(name, "lock name");
    options.signal?.throwIfAborted();
    const libc: Libc = await this.#libc.get();
    const path = join(this.#options.locksDir, `${name}.lock`);
    let fd: number;
    try {
      await ensurePrivateDir(this.#options.locksDir, this.#options.privateRoot);
      // A raw fd, not a FileHandle: Bun throws when a FileHandle is garbage-collected unclosed, and
      // a Lock dropped without release() must keep holding the lock, not crash the process.
      // Node and Bun open with O_CLOEXEC, so a child we spawn does not inherit (and keep) the lock.
      fd = await openFd(path, "lock file");
    } catch (error) {
      throw storeError(path, "open the lock file", error);
    }
    return this.#lock(fd, libc, path, name, options);
  }

  /** The directory must exist (the caller made it with ensurePrivateDir). */
  async lockDirectory(dir: string, options: LockOptions = {}): Promise<Lock> {
    options.signal?.throwIfAborted();
    const libc: Libc = await this.#libc.get();
    let fd: number;
    try {
      // flock(2) needs only an open descriptor, and a directory opens read-only.
      fd = await openFd(dir, "directory");
    } catch (error) {
      throw storeError(dir, "open the directory to lock", error);
    }
    return this.#lock(fd, libc, dir, dir, options);
  }

  /** Takes the flock on `fd` (closed on failure); `label` names the lock in logs. */
  async #lock(fd: number, libc: Libc, path: string, label: string, options: LockOptions): Promise<Lock> {
    const { signal, onWait } = options;
    const { clock, logger } = this.#options;
    let waited = false;
    try {
      for (;;) {
        signal?.throwIfAborted();
        if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
        const errno = libc.errno();
        if (errno === Errno.EINTR) continue;
        // Unknown errno (undefined) counts as busy: that is the only failure a valid fd can have.
        if (errno !== undefined && errno !== EWOULDBLOCK) {
          const code = errnoName(errno);
          throw storeError(path, "lock", Object.assign(new Error(`flock failed: ${code}`), { code }));
        }
        if (!waited) {
          waited = true;
          logger.info({ lock: label }, "Lock is busy (held by another operation); waiting");
          onWait?.();
        }
        await clock.sleep(this.#pollMs, signal);
      }
    } catch (error) {
      await closeFd(fd).catch(() => undefined);
      throw error;
    }
    logger.debug({ lock: label }, "Lock acquired");
    return new FlockLock(fd, libc, logger, label);
  }
}

class FlockLock implements Lock {
  #fd: number | undefined;
  readonly #libc: Libc;
  readonly #logger: Logger;
  readonly #name: string;

  constructor(fd: number, libc: Libc, logger: Logger, name: string) {
    this.#fd = fd;
    this.#libc = libc;
    this.#logger = logger;
    this.#name = name;
  }

  async release(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    // Closing alone would drop the lock; unlocking first makes the release explicit and immediate
    // even if something else still holds a duplicate of the descriptor.
    this.#libc.flock(fd, LOCK_UN);
    await closeFd(fd);
    this.#logger.debug({ lock: this.#name }, "Lock released");
  }
}
