import { mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { systemClock } from "../../agent/core/clock.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { captureLogger, makeTempDir } from "./helpers.ts";

const FIXTURE = join(import.meta.dirname, "fixtures", "hold-lock.ts");

/** Starts a process that holds `name`'s lock; resolves once it printed "locked". */
async function startHolder(locksDir: string, name: string) {
  const child = Bun.spawn([process.execPath, FIXTURE, locksDir, name], { stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let output = "";
  while (!output.includes("locked\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`lock holder exited before locking (code ${await child.exited}): ${output}`);
    output += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return child;
}

describe("FlockLockManager", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let locksDir: string;
  const children: Array<{ kill(signal?: number | NodeJS.Signals): void; exited: Promise<number> }> = [];
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    locksDir = join(dir, "state", "locks");
  });
  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.kill("SIGKILL");
      await child.exited;
    }
    await cleanup();
  });

  it("creates the lock file 0600 in a 0700 directory; release is idempotent and the lock can be taken again", async () => {
    const manager = new FlockLockManager({
      locksDir,
      clock: new VirtualClock(),
      logger: captureLogger().logger,
    });
    const lock = await manager.acquire("work");
    expect((await stat(join(locksDir, "work.lock"))).mode & 0o777).toBe(0o600);
    expect((await stat(locksDir)).mode & 0o777).toBe(0o700);
    await lock.release();
    await lock.release();
    const again = await manager.acquire("work");
    await again.release();
    expect(await readdir(locksDir)).toEqual(["work.lock"]);
  });

  it("serialises two acquires in one process; onWait is called once", async () => {
    const clock = new VirtualClock();
    const manager = new FlockLockManager({ locksDir, clock, logger: captureLogger().logger, pollMs: 50 });
    const first = await manager.acquire("work");
    let waits = 0;
    let released = false;
    let startedWaiting!: () => void;
    const waiting = new Promise<void>((resolve) => (startedWaiting = resolve));
    const second = manager
      .acquire("work", {
        onWait: () => {
          waits++;
          startedWaiting();
        },
      })
      .then((lock) => ({ lock, releasedBefore: released }));
    await waiting;
    // Let the poll loop run a few more rounds while the lock is still held.
    const pollsBefore = clock.sleeps.length;
    while (clock.sleeps.length < pollsBefore + 5) await new Promise((resolve) => setImmediate(resolve));
    released = true;
    await first.release();
    const { lock, releasedBefore } = await second;
    expect(releasedBefore).toBe(true);
    expect(waits).toBe(1);
    expect(clock.sleeps.every((ms) => ms === 50)).toBe(true);
    await lock.release();
  });

  it("different names do not block each other", async () => {
    const manager = new FlockLockManager({
      locksDir,
      clock: new VirtualClock(),
      logger: captureLogger().logger,
    });
    let waited = false;
    const a = await manager.acquire("a");
    const b = await manager.acquire("b", { onWait: () => (waited = true) });
    expect(waited).toBe(false);
    await Promise.all([a.release(), b.release()]);
  });

  it("waits for another process, stops when aborted, and gets the lock once the holder is killed", async () => {
    const holder = await startHolder(locksDir, "work");
    children.push(holder);
    const { logger, records } = captureLogger();
    const manager = new FlockLockManager({ locksDir, clock: systemClock, logger, pollMs: 5 });

    const controller = new AbortController();
    const reason = new Error("user pressed Ctrl-C");
    let waits = 0;
    const attempt = manager.acquire("work", {
      signal: controller.signal,
      onWait: () => {
        waits++;
        controller.abort(reason);
      },
    });
    await expect(attempt).rejects.toBe(reason);
    expect(waits).toBe(1);
    expect(records.some((record) => record.msg.includes("waiting"))).toBe(true);

    holder.kill("SIGKILL");
    expect(await holder.exited).not.toBe(0);
    let waitedAfterKill = false;
    const lock = await manager.acquire("work", { onWait: () => (waitedAfterKill = true) });
    expect(waitedAfterKill).toBe(false);
    await lock.release();
  });

  it("rejects at once with an already aborted signal", async () => {
    const manager = new FlockLockManager({
      locksDir,
      clock: new VirtualClock(),
      logger: captureLogger().logger,
    });
    const controller = new AbortController();
    controller.abort();
    await expect(manager.acquire("work", { signal: controller.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
  });

  it.each(["../x", "a/b", ""])("rejects the lock name %j with E_CONFIG", async (name) => {
    const manager = new FlockLockManager({
      locksDir,
      clock: new VirtualClock(),
      logger: captureLogger().logger,
    });
    await expect(manager.acquire(name)).rejects.toMatchObject({ code: "E_CONFIG" });
  });

  it("reports E_STORE when libc cannot be loaded", async () => {
    const manager = new FlockLockManager({
      locksDir,
      clock: new VirtualClock(),
      logger: captureLogger().logger,
      libcPath: join(dir, "no-such-libc.so"),
    });
    await expect(manager.acquire("work")).rejects.toMatchObject({ code: "E_STORE" });
  });

  it("lockDirectory locks a directory itself: serialises, creates no file, and is apart from the name locks", async () => {
    const clock = new VirtualClock();
    const manager = new FlockLockManager({ locksDir, clock, logger: captureLogger().logger, pollMs: 20 });
    const config = join(dir, "config");
    await mkdir(config);
    const first = await manager.lockDirectory(config);
    // A name lock, even one named like the directory, is another lock.
    let nameWaited = false;
    const named = await manager.acquire("config", { onWait: () => (nameWaited = true) });
    expect(nameWaited).toBe(false);
    await named.release();

    let waits = 0;
    let released = false;
    const second = manager
      .lockDirectory(config, { onWait: () => waits++ })
      .then((lock) => ({ lock, releasedBefore: released }));
    while (waits === 0) await new Promise((resolve) => setImmediate(resolve));
    released = true;
    await first.release();
    const { lock, releasedBefore } = await second;
    expect(releasedBefore).toBe(true);
    expect(waits).toBe(1);
    await lock.release();
    expect(await readdir(config)).toEqual([]);
  });

  it("lockDirectory of a missing directory is E_STORE naming it", async () => {
    const manager = new FlockLockManager({
      locksDir,
      clock: new VirtualClock(),
      logger: captureLogger().logger,
    });
    const missing = join(dir, "missing");
    await expect(manager.lockDirectory(missing)).rejects.toMatchObject({
      code: "E_STORE",
      message: expect.stringContaining(`Cannot open the directory to lock ${missing} (ENOENT).`),
    });
  });
});
