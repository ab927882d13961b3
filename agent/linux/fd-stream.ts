/**
 * Waiting for a pollable fd (a GPIO line request, an eventfd, a pipe or a socket) without a timer
 * or a thread of our own: `Bun.file(fd).stream()` puts a copy of the fd into Bun's own epoll set,
 * so an idle watch costs nothing until the kernel has something to read.
 *
 * Three behaviours of Bun 1.4.5 shape this module. Reading fds that Bun did not open itself has
 * had bugs (https://github.com/oven-sh/bun/issues/30182), so the first two are pinned by
 * test/linux/bun-fd-stream.test.ts: an upgrade that changes one fails there first.
 * - Bun decides how to read an fd from its type and flags. A GPIO line fd is an anonymous inode
 *   (no S_IFIFO or S_IFSOCK bits); Bun polls such an fd only when it is O_NONBLOCK, and treats a
 *   blocking one as a regular file, which fails with ESPIPE. So the fd is made non-blocking first.
 * - `getReader()` dup()s the fd. The kernel releases what the fd holds (a GPIO line) only when
 *   every copy is closed, and Bun closes its copy on its own schedule, a millisecond or two after
 *   the stream is cancelled. `close()` waits for that copy to go.
 * - Blocking reads are no alternative: they occupy a thread of Bun's pool, which nothing can wake
 *   for an fd with no data, and the process then hangs at exit.
 */

import { readdirSync, readlinkSync } from "node:fs";
import type { Clock } from "../core/clock.ts";
import { errnoCode } from "../core/errors.ts";
import { errnoName } from "./errno.ts";
import { F_GETFL, F_SETFL, type Libc, O_NONBLOCK } from "./libc.ts";

/** Why a watch could not start, ended by itself, or could not confirm its fd was released. */
export type FdWatchFailure = "start" | "read" | "end" | "release";

/**
 * A failure of the watch itself. Internal to the Linux layer's users: each wraps it into an error
 * of its own part of the catalogue (the GPIO line into a BusError), with the sentence for the user.
 */
export class FdWatchError extends Error {
  override readonly name = "FdWatchError";
  readonly reason: FdWatchFailure;
  /** The errno name ("EIO", "ECONNRESET") when a system call failed; undefined otherwise. */
  readonly errno: string | undefined;

  constructor(reason: FdWatchFailure, message: string, options: { errno?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    this.errno = options.errno;
  }
}

export interface FdRecordWatcherOptions {
  /** A pollable fd. The watcher owns it from now on, and closes it in `close()` (or when it cannot start). */
  readonly fd: number;
  /** Bytes per record: 48 for struct gpio_v2_line_event, 8 for an eventfd's counter. */
  readonly recordSize: number;
  /** fcntl(2) to make the fd non-blocking, close(2) to close it. */
  readonly libc: Libc;
  /**
   * Paces `close()` while it waits, 1 ms at a time, for Bun's copy of the fd to be closed (a
   * VirtualClock must be in auto mode, or close() waits for someone to advance it).
   */
  readonly clock: Clock;
  /**
   * Called once per whole record, in the order the kernel gave them. `record` views exactly
   * `recordSize` bytes. A record split across two reads is delivered once its last byte arrives.
   */
  readonly onRecord: (record: Uint8Array) => void;
  /**
   * Told of an `onRecord` that threw (its error; the watch goes on) and, once, of what ends the
   * watch by itself: a failed read or the end of the file (an FdWatchError). Without it these are
   * dropped.
   */
  readonly onError?: (error: unknown) => void;
  /** How long `close()` waits for Bun's copy of the fd to be closed; 1000 ms by default. */
  readonly releaseTimeoutMs?: number;
}

/** What the watcher uses of the reader of `Bun.file(fd).stream()`. */
interface ChunkReader {
  read(): Promise<{ readonly done: true } | { readonly done: false; readonly value: Uint8Array }>;
  cancel(): Promise<void>;
}

/** Delivers the fixed-size records read from a pollable fd; see the module comment. */
export class FdRecordWatcher {
  readonly #options: FdRecordWatcherOptions;
  readonly #fd: number;
  readonly #reader: ChunkReader;
  /** What /proc/self/fd shows for the fd ("anon_inode:gpio-line", "pipe:[1234]"); undefined without /proc. */
  readonly #target: string | undefined;
  /** Bun's copies of the fd (normally one), by number. */
  readonly #copies: readonly number[];
  readonly #pump: Promise<void>;
  /** Bytes of a record whose end has not arrived yet. */
  #partial = new Uint8Array(0);
  #closing: Promise<void> | undefined;

  /** Starts watching at once. Throws an FdWatchError "start" (having closed `fd`) if it cannot. */
  constructor(options: FdRecordWatcherOptions) {
    const { fd, libc, recordSize } = options;
    if (!Number.isInteger(recordSize) || recordSize <= 0) {
      libc.close(fd);
      throw new FdWatchError("start", `Invalid record size ${recordSize}: use a positive integer.`);
    }
    this.#options = options;
    this.#fd = fd;
    const flags = libc.fcntl(fd, F_GETFL, 0);
    if (flags < 0 || libc.fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
      const errno = errnoName(libc.errno());
      libc.close(fd);
      throw new FdWatchError("start", `Cannot make fd ${fd} non-blocking (${errno}).`, { errno });
    }
    this.#target = fdTarget(fd);
    const before = this.#target === undefined ? [] : fdsOn(this.#target);
    try {
      this.#reader = Bun.file(fd).stream().getReader();
    } catch (error) {
      libc.close(fd);
      const errno = errnoCode(error);
      throw new FdWatchError("start", `Cannot watch fd ${fd} (${errno ?? "unknown error"}).`, {
        errno,
        cause: error,
      });
    }
    // getReader() made Bun's copy synchronously: the new numbers on the same file are Bun's.
    this.#copies = this.#target === undefined ? [] : fdsOn(this.#target).filter((n) => !before.includes(n));
    this.#pump = this.#run();
  }

  /**
   * Stops the watch, closes the fd and resolves once Bun's copy is closed as well: whatever the fd
   * held (a GPIO line) is then free for a new request. No record is delivered after this is called.
   * Idempotent. Rejects with an FdWatchError "release" when Bun's copy is still open after
   * `releaseTimeoutMs` (the fd itself is closed all the same). Copies are known by number and by
   * what /proc/self/fd shows for them: should the kernel give a closed copy's number to another
   * fd on the same file (another request of the same line) before this looks, close() takes it
   * for the copy and waits out the timeout. Without /proc it cannot look, and does not wait.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const { libc, clock } = this.#options;
    // Ends a pending read with done; Bun then takes its copy out of epoll and closes it.
    await this.#reader.cancel().catch(() => undefined);
    await this.#pump;
    libc.close(this.#fd);
    const target = this.#target;
    if (target === undefined) return;
    const timeoutMs = this.#options.releaseTimeoutMs ?? 1000;
    const started = clock.now();
    for (;;) {
      const open = this.#copies.filter((n) => fdTarget(n) === target);
      if (open.length === 0) return;
      if (clock.now() - started >= timeoutMs) {
        throw new FdWatchError(
          "release",
          `Bun's copy of fd ${this.#fd} (${target}) is still open ${timeoutMs} ms after the watch ended.`,
        );
      }
      await clock.sleep(1);
    }
  }

  async #run(): Promise<void> {
    let failure: FdWatchError;
    try {
      for (;;) {
        const chunk = await this.#reader.read();
        if (chunk.done) break;
        this.#deliver(chunk.value);
      }
      failure = new FdWatchError("end", `fd ${this.#fd} reached its end.`);
    } catch (error) {
      const errno = errnoCode(error);
      failure = new FdWatchError("read", `Reading fd ${this.#fd} failed (${errno ?? "unknown error"}).`, {
        errno,
        cause: error,
      });
    }
    // A cancel from close() ends the read too: that is no failure.
    if (this.#closing === undefined) this.#report(failure);
  }

  #deliver(chunk: Uint8Array): void {
    const size = this.#options.recordSize;
    let bytes = chunk;
    if (this.#partial.length > 0) {
      bytes = new Uint8Array(this.#partial.length + chunk.length);
      bytes.set(this.#partial);
      bytes.set(chunk, this.#partial.length);
    }
    const whole = bytes.length - (bytes.length % size);
    // A copy: `bytes` may be Bun's chunk, which is not ours to keep.
    this.#partial = bytes.slice(whole);
    for (let at = 0; at < whole && this.#closing === undefined; at += size) {
      try {
        this.#options.onRecord(bytes.subarray(at, at + size));
      } catch (error) {
        this.#report(error);
      }
    }
  }

  #report(error: unknown): void {
    try {
      this.#options.onError?.(error);
    } catch {
      // The error handler's own failure has nowhere left to go; the watch must not die of it.
    }
  }
}

/** The link /proc/self/fd/<fd> points at, or undefined (fd closed, or no /proc). */
function fdTarget(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** Every fd of this process that points at `target`. */
function fdsOn(target: string): number[] {
  let names: string[];
  try {
    names = readdirSync("/proc/self/fd");
  } catch {
    return [];
  }
  return names.map(Number).filter((n) => fdTarget(n) === target);
}
