import { spawn } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { FdRecordWatcher, type FdRecordWatcherOptions, FdWatchError } from "../../agent/linux/fd-stream.ts";
import { type Libc, openLibc } from "../../agent/linux/libc.ts";
import { fdsOn, fdTarget, type KernelFds, kernelFds, openFds } from "./kernel-fds.ts";

const RECORD = 48;

let kernel: KernelFds;
let libc: Libc;
beforeAll(async () => {
  kernel = await kernelFds();
  libc = await openLibc();
});

/** Record `i`: its index in the first byte, then bytes that tell any two records apart. */
function record(i: number): Uint8Array {
  return Uint8Array.from({ length: RECORD }, (_, j) => (j === 0 ? i : (i * 31 + j) & 0xff));
}

function records(count: number): Uint8Array {
  const all = new Uint8Array(count * RECORD);
  for (let i = 0; i < count; i++) all.set(record(i), i * RECORD);
  return all;
}

/** A watcher whose records and errors are collected, with promises for the nth of each. */
function watch(fd: number, options: Partial<FdRecordWatcherOptions> = {}) {
  const seen: Uint8Array[] = [];
  const errors: unknown[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const wake = () => {
    for (const w of waiters.splice(0)) {
      if (seen.length + errors.length >= w.n) w.resolve();
      else waiters.push(w);
    }
  };
  const watcher = new FdRecordWatcher({
    fd,
    recordSize: RECORD,
    libc,
    clock: new VirtualClock(),
    onRecord: (bytes) => {
      seen.push(bytes.slice());
      wake();
    },
    onError: (error) => {
      errors.push(error);
      wake();
    },
    ...options,
  });
  /** Resolves once `n` records and errors in all have come. */
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      waiters.push({ n, resolve });
      wake();
    });
  return { watcher, seen, errors, until };
}

describe("FdRecordWatcher on real pipes and eventfds", () => {
  test("records arrive whole and in order, however the writes cut them", async () => {
    const [readEnd, writeEnd] = kernel.pipe();
    const { watcher, seen, errors, until } = watch(readEnd);
    const bytes = records(12);
    // One record and 30 bytes of the next: only the first is whole.
    kernel.write(writeEnd, bytes.subarray(0, 78));
    await until(1);
    // The rest of record 1, and 5 bytes of record 2.
    kernel.write(writeEnd, bytes.subarray(78, 101));
    await until(2);
    // Single bytes, then odd chunks over several records at once.
    for (let at = 101; at < 110; at++) kernel.write(writeEnd, bytes.subarray(at, at + 1));
    for (let at = 110; at < bytes.length; at += 7) kernel.write(writeEnd, bytes.subarray(at, at + 7));
    await until(12);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => record(i)));
    expect(errors).toEqual([]);
    await watcher.close();
    kernel.close(writeEnd);
  });

  test("a burst of records in one read is delivered one by one", async () => {
    const [readEnd, writeEnd] = kernel.pipe();
    const { watcher, seen, until } = watch(readEnd);
    kernel.write(writeEnd, records(64));
    await until(64);
    expect(seen.map((r) => r[0])).toEqual(Array.from({ length: 64 }, (_, i) => i));
    await watcher.close();
    kernel.close(writeEnd);
  });

  test("an eventfd gives its counter as one 8-byte record per wake", async () => {
    const fd = kernel.eventfd();
    const { watcher, seen, until } = watch(fd, { recordSize: 8 });
    kernel.signal(fd, 3n);
    await until(1);
    kernel.signal(fd, 40n);
    await until(2);
    const values = seen.map((r) => new DataView(r.buffer, r.byteOffset).getBigUint64(0, true));
    expect(values).toEqual([3n, 40n]);
    await watcher.close();
  });

  test("close() resolves once every copy of the fd is closed, Bun's included", async () => {
    const before = openFds();
    const [readEnd, writeEnd] = kernel.pipe();
    const target = fdTarget(readEnd) ?? "";
    const { watcher, until } = watch(readEnd);
    // Our fd and Bun's copy in its epoll set.
    expect(fdsOn(target, "read")).toHaveLength(2);
    kernel.write(writeEnd, record(0));
    await until(1);
    await watcher.close();
    expect(fdsOn(target, "read")).toEqual([]);
    kernel.close(writeEnd);
    expect(openFds()).toEqual(before);
  });

  test("an eventfd watched and closed leaves no fd behind", async () => {
    const before = openFds();
    const fd = kernel.eventfd();
    const { watcher } = watch(fd, { recordSize: 8 });
    expect(openFds().size).toBe(before.size + 2);
    await watcher.close();
    await watcher.close(); // idempotent
    expect(openFds()).toEqual(before);
  });

  test("a second watcher on a new fd works after the first is closed", async () => {
    const first = watch(kernel.eventfd(), { recordSize: 8 });
    await first.watcher.close();
    // The kernel hands out the lowest free numbers: likely the very fds the first watch used.
    const fd = kernel.eventfd();
    const second = watch(fd, { recordSize: 8 });
    kernel.signal(fd, 5n);
    await second.until(1);
    expect(second.seen).toHaveLength(1);
    expect(first.seen).toEqual([]);
    await second.watcher.close();
  });

  test("a watcher closed while idle lets the process end", async () => {
    const fixture = join(import.meta.dirname, "fixtures", "watch-then-close.ts");
    const child = spawn(process.execPath, [fixture], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    // A bound, not a measurement: a child kept alive by a leftover watch would never end.
    const hung = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.on("close", (c, s) => resolve([c, s])),
    );
    clearTimeout(hung);
    expect([code, signal, stdout]).toEqual([0, null, "took 7, closed\n"]);
  });

  test("a throwing onRecord is reported and the watch goes on", async () => {
    const [readEnd, writeEnd] = kernel.pipe();
    const boom = new Error("listener failed");
    const seen: number[] = [];
    const errors: unknown[] = [];
    let third: () => void = () => undefined;
    const done = new Promise<void>((resolve) => {
      third = resolve;
    });
    const watcher = new FdRecordWatcher({
      fd: readEnd,
      recordSize: RECORD,
      libc,
      clock: new VirtualClock(),
      onRecord: (bytes) => {
        seen.push(bytes[0] ?? -1);
        if (bytes[0] === 0) throw boom;
        if (seen.length === 3) third();
      },
      onError: (error) => errors.push(error),
    });
    kernel.write(writeEnd, records(3));
    await done;
    expect(seen).toEqual([0, 1, 2]);
    expect(errors).toEqual([boom]);
    await watcher.close();
    kernel.close(writeEnd);
  });

  test("no record is delivered once close() is called, even from onRecord", async () => {
    const [readEnd, writeEnd] = kernel.pipe();
    const seen: number[] = [];
    let closed: Promise<void> | undefined;
    let first: () => void = () => undefined;
    const took = new Promise<void>((resolve) => {
      first = resolve;
    });
    const watcher: FdRecordWatcher = new FdRecordWatcher({
      fd: readEnd,
      recordSize: RECORD,
      libc,
      clock: new VirtualClock(),
      onRecord: (bytes) => {
        seen.push(bytes[0] ?? -1);
        closed ??= watcher.close();
        first();
      },
    });
    kernel.write(writeEnd, records(4));
    await took;
    await closed;
    expect(seen).toEqual([0]);
    expect(fdsOn(fdTarget(writeEnd) ?? "", "read")).toEqual([]);
    kernel.close(writeEnd);
  });

  test("the end of the file ends the watch, reported once", async () => {
    const [readEnd, writeEnd] = kernel.pipe();
    const target = fdTarget(readEnd) ?? "";
    const { watcher, seen, errors, until } = watch(readEnd);
    kernel.write(writeEnd, records(1));
    kernel.close(writeEnd);
    await until(2);
    expect(seen).toHaveLength(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(FdWatchError);
    expect((errors[0] as FdWatchError).reason).toBe("end");
    await watcher.close();
    expect(errors).toHaveLength(1);
    expect(fdsOn(target)).toEqual([]);
  });

  test("a failed read ends the watch, reported once with its errno", async () => {
    // A socket whose peer closes with data left unread: the next read fails with ECONNRESET.
    const [ours, peer] = kernel.socketPair();
    const target = fdTarget(ours) ?? "";
    const { watcher, seen, errors, until } = watch(ours);
    kernel.write(peer, record(0));
    await until(1);
    kernel.write(ours, new Uint8Array([1]));
    kernel.close(peer);
    await until(2);
    expect(seen).toEqual([record(0)]);
    const error = errors[0];
    expect(error).toBeInstanceOf(FdWatchError);
    expect([(error as FdWatchError).reason, (error as FdWatchError).errno]).toEqual(["read", "ECONNRESET"]);
    await watcher.close();
    expect(errors).toHaveLength(1);
    expect(fdsOn(target)).toEqual([]);
  });

  test("an fd that cannot be watched is refused at once, and closed", () => {
    const fd = kernel.eventfd();
    kernel.close(fd);
    const closed = (() => {
      try {
        watch(fd);
      } catch (error) {
        return error;
      }
    })();
    expect(closed).toBeInstanceOf(FdWatchError);
    expect([(closed as FdWatchError).reason, (closed as FdWatchError).errno]).toEqual(["start", "EBADF"]);

    const dir = mkdtempSync(join(tmpdir(), "entratool-fd-"));
    const dirFd = openSync(dir, "r");
    try {
      expect(() => watch(dirFd)).toThrow(FdWatchError);
      expect(fdTarget(dirFd)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
