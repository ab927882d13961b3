import { Database } from "bun:sqlite";
import { mkdir, mkdtemp, open as openFile, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { isEntraToolError } from "../../agent/core/errors.ts";
import type { Logger } from "../../agent/core/log.ts";
import { formatIssues } from "../../agent/core/schema.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { createLogger } from "../../agent/pino-logger.ts";
import { SqliteOutbox, type SqliteOutboxOptions } from "../../agent/telemetry/outbox.ts";
import {
  DEFAULT_OUTBOX_MAX_AGE_SECONDS,
  DEFAULT_OUTBOX_MAX_BYTES,
  OutboxConfigSchema,
} from "../../agent/telemetry/outbox-schema.ts";
import type { NewMessage } from "../../agent/telemetry/types.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface LogRecord {
  readonly level: string;
  readonly msg: string;
  readonly [key: string]: unknown;
}

function captureLogger(): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = createLogger({
    level: "debug",
    destination: { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) },
  });
  return { logger, records };
}

const WARN = "warn";

let dir: string;
let state: string;
let file: string;
let clock: VirtualClock;
let log: ReturnType<typeof captureLogger>;
const opened: SqliteOutbox[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-outbox-"));
  state = join(dir, "state");
  file = join(state, "telemetry", "outbox.db");
  clock = new VirtualClock();
  log = captureLogger();
});

afterEach(async () => {
  for (const outbox of opened.splice(0)) outbox.close();
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function openOutbox(options: Partial<SqliteOutboxOptions> = {}): Promise<SqliteOutbox> {
  const outbox = await SqliteOutbox.open({
    file,
    device: "pi-1",
    clock,
    logger: log.logger,
    privateRoot: state,
    newId: () => `id-${++counter}`,
    ...options,
  });
  opened.push(outbox);
  return outbox;
}

function close(outbox: SqliteOutbox): void {
  outbox.close();
  opened.splice(opened.indexOf(outbox), 1);
}

function batch(n: number, topic = "t", from = 0): NewMessage[] {
  return Array.from({ length: n }, (_, i) => ({ topic, data: { n: from + i } }));
}

const everything = (outbox: SqliteOutbox, sink: string) =>
  outbox.read(sink, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);

describe("append and read", () => {
  test("messages get a UUIDv7 id, the device and their time; read gives them oldest first with rising seqs", async () => {
    const outbox = await openOutbox({ newId: undefined });
    outbox.register("mqtt");
    const at = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
    const appended = await outbox.append([
      { topic: "cpu", data: { load: 0.5 } },
      { topic: "temp", data: 41.5, at },
    ]);
    clock.advance(1000);
    const [later] = await outbox.append([{ topic: "cpu", data: [1, "two", null, true] }]);
    expect(appended.map((m) => m.id)).toEqual([
      expect.stringMatching(UUID_V7),
      expect.stringMatching(UUID_V7),
    ]);
    expect(appended[0]).toMatchObject({
      device: "pi-1",
      topic: "cpu",
      ts: new Date(clock.now() - 1000).toISOString(),
    });
    expect(appended[1]?.ts).toBe("2026-01-02T03:04:05.006Z");
    expect(later?.ts).toBe(new Date(clock.now()).toISOString());

    const read = everything(outbox, "mqtt");
    expect(read.map((m) => m.id)).toEqual([...appended, later].map((m) => m?.id));
    expect(read.map((m) => m.data)).toEqual([{ load: 0.5 }, 41.5, [1, "two", null, true]]);
    const seqs = read.map((m) => m.seq);
    expect(seqs[0]).toBeGreaterThan(0);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(3);
    for (const message of read) {
      const { seq: _seq, bytes, ...wire } = message;
      expect(bytes).toBe(Buffer.byteLength(JSON.stringify(wire)));
    }
  });

  test("read stops at maxMessages or maxBytes, and always gives at least one message", async () => {
    const outbox = await openOutbox();
    outbox.register("s");
    await outbox.append(batch(10));
    const [first] = everything(outbox, "s");
    const size = first?.bytes ?? 0;
    expect(outbox.read("s", 3, 1_000_000)).toHaveLength(3);
    expect(outbox.read("s", 100, size * 4 + 1)).toHaveLength(4);
    expect(outbox.read("s", 100, 1).map((m) => m.seq)).toEqual([first?.seq]);
    expect(outbox.read("s", 0, 0)).toHaveLength(1);
    expect(outbox.read("s", 1000, Number.MAX_SAFE_INTEGER)).toHaveLength(10);
  });

  test("an append of nothing stores nothing; data that is not JSON is refused with E_PAYLOAD", async () => {
    const outbox = await openOutbox();
    outbox.register("s");
    expect(await outbox.append([])).toEqual([]);
    const bad = { topic: "t", data: { big: 1n } as unknown as NewMessage["data"] };
    await expect(outbox.append([bad])).rejects.toSatisfy((error) => isEntraToolError(error, "E_PAYLOAD"));
    await expect(outbox.append([{ topic: "t", data: 1, at: Number.NaN }])).rejects.toSatisfy((error) =>
      isEntraToolError(error, "E_PAYLOAD"),
    );
    expect(outbox.stats(clock.now())).toMatchObject({ messages: 0, bytes: 0 });
    expect(outbox.commits).toBe(0);
  });

  test("onAppend is called after each commit that stored something, until unsubscribed", async () => {
    const outbox = await openOutbox();
    outbox.register("s");
    const calls: number[] = [];
    const off = outbox.onAppend(() => calls.push(outbox.stats(clock.now()).sinks.s?.pending ?? -1));
    await Promise.all([outbox.append(batch(2)), outbox.append(batch(1))]);
    await outbox.append([]);
    await outbox.append(batch(1));
    off();
    await outbox.append(batch(1));
    // The listener sees the messages already committed and readable.
    expect(calls).toEqual([3, 4]);
  });
});

describe("cursors", () => {
  test("each sink has its own cursor: one acking never advances another, and a slow sink keeps messages for itself only", async () => {
    const outbox = await openOutbox();
    outbox.register("fast");
    outbox.register("slow");
    await outbox.append(batch(5));
    const fast = outbox.read("fast", 100, 1_000_000);
    outbox.ack("fast", fast[fast.length - 1]?.seq ?? 0);
    outbox.flush();

    expect(outbox.read("fast", 100, 1_000_000)).toEqual([]);
    expect(outbox.read("slow", 100, 1_000_000).map((m) => m.id)).toEqual(fast.map((m) => m.id));
    const stats = outbox.stats(clock.now());
    expect(stats.sinks).toEqual({
      fast: { pending: 0, lagMs: 0, deadLettered: 0 },
      slow: { pending: 5, lagMs: 0, deadLettered: 0 },
    });
    expect(stats.messages).toBe(5);

    clock.advance(60_000);
    await outbox.append(batch(1, "t", 5));
    const fastNow = outbox.read("fast", 100, 1_000_000);
    expect(fastNow.map((m) => m.data)).toEqual([{ n: 5 }]);
    expect(outbox.stats(clock.now()).sinks.slow).toEqual({ pending: 6, lagMs: 60_000, deadLettered: 0 });

    // The slow sink acks part: only what both have passed is deleted.
    outbox.ack("slow", fast[2]?.seq ?? 0);
    outbox.flush();
    expect(outbox.stats(clock.now()).messages).toBe(3);
    expect(outbox.read("slow", 100, 1_000_000).map((m) => m.data)).toEqual([{ n: 3 }, { n: 4 }, { n: 5 }]);
  });

  test("ack never moves a cursor backwards nor past the last message; an unknown sink is an error", async () => {
    const outbox = await openOutbox();
    outbox.register("s");
    await outbox.append(batch(3));
    const [a, b, c] = everything(outbox, "s");
    outbox.ack("s", b?.seq ?? 0);
    outbox.ack("s", a?.seq ?? 0);
    expect(everything(outbox, "s").map((m) => m.seq)).toEqual([c?.seq]);
    outbox.ack("s", 1_000_000);
    await outbox.append(batch(1, "t", 3));
    expect(everything(outbox, "s").map((m) => m.data)).toEqual([{ n: 3 }]);
    expect(() => outbox.read("nobody", 1, 1)).toThrow(/register/);
    expect(() => outbox.ack("nobody", 1)).toThrow(/register/);
  });

  test("a new sink starts at the end (no replay); registering an existing sink keeps its cursor", async () => {
    const outbox = await openOutbox();
    outbox.register("old");
    await outbox.append(batch(3));
    outbox.register("new");
    outbox.register("old");
    expect(outbox.read("new", 100, 1_000_000)).toEqual([]);
    expect(outbox.read("old", 100, 1_000_000)).toHaveLength(3);
    await outbox.append(batch(1, "t", 3));
    expect(outbox.read("new", 100, 1_000_000).map((m) => m.data)).toEqual([{ n: 3 }]);
    expect(outbox.read("old", 100, 1_000_000)).toHaveLength(4);
  });

  test("messages acknowledged by every sink are deleted; a sink no longer configured stops pinning them", async () => {
    const outbox = await openOutbox();
    outbox.register("a");
    outbox.register("b");
    outbox.register("gone");
    await outbox.append(batch(4));
    const last = everything(outbox, "a").at(-1)?.seq ?? 0;
    outbox.ack("a", last);
    outbox.ack("b", last);
    outbox.flush();
    expect(outbox.stats(clock.now()).messages).toBe(4);

    outbox.retain(["a", "b"]);
    outbox.flush();
    expect([...outbox.sinks].sort()).toEqual(["a", "b"]);
    expect(outbox.stats(clock.now())).toMatchObject({ messages: 0, bytes: 0, dropped: 0 });

    await outbox.append(batch(2));
    outbox.ack("a", everything(outbox, "a").at(-1)?.seq ?? 0);
    outbox.unregister("b");
    outbox.flush();
    expect(outbox.stats(clock.now())).toMatchObject({ messages: 0, bytes: 0, dropped: 0 });
    expect(Object.keys(outbox.stats(clock.now()).sinks)).toEqual(["a"]);
  });
});

describe("durability", () => {
  test("messages, cursors and counts survive close and reopen; seqs keep rising even after the outbox was emptied", async () => {
    const first = await openOutbox({ maxBytes: 2_000 });
    first.register("a");
    first.register("b");
    const appended = await first.append(batch(30));
    const read = everything(first, "a");
    first.ack("a", read[5]?.seq ?? 0);
    first.deadLetter("b", read.slice(6, 8), "HTTP 400");
    first.flush();
    const before = first.stats(clock.now());
    expect(before.dropped).toBeGreaterThan(0);
    close(first);

    const second = await openOutbox({ maxBytes: 2_000 });
    expect(second.stats(clock.now())).toEqual(before);
    expect(everything(second, "a").map((m) => m.id)).toEqual(read.slice(6).map((m) => m.id));
    expect(appended.at(-1)?.id).toBe(read.at(-1)?.id);
    const top = read.at(-1)?.seq ?? 0;
    second.ack("a", top);
    second.ack("b", top);
    second.flush();
    expect(second.stats(clock.now()).messages).toBe(2); // the dead letters only
    close(second);

    const third = await openOutbox({ maxBytes: 2_000 });
    await third.append(batch(1, "t", 99));
    const [next] = everything(third, "a");
    expect(next?.data).toEqual({ n: 99 });
    expect(next?.seq).toBe(top + 1);
  });

  test("a process killed (SIGKILL) in the middle of appending loses none of the appends it saw acknowledged", async () => {
    const child = join(dir, "appender.ts");
    await writeFile(
      child,
      `import { SqliteOutbox } from ${JSON.stringify(join(ROOT, "agent/telemetry/outbox.ts"))};
import { systemClock } from ${JSON.stringify(join(ROOT, "agent/core/clock.ts"))};
import { createLogger } from ${JSON.stringify(join(ROOT, "agent/pino-logger.ts"))};
const [file, root] = process.argv.slice(2);
const logger = createLogger({ level: "silent", destination: { write() {} } });
const outbox = await SqliteOutbox.open({ file, privateRoot: root, device: "crash", clock: systemClock, logger });
outbox.register("check");
let n = 0;
// Four appenders at once, so that the kill also lands between and inside group commits.
const appender = async () => {
  for (;;) {
    const [message] = await outbox.append([{ topic: "crash", data: { n: n++, pad: "x".repeat(150) } }]);
    process.stdout.write("ok " + message.id + "\\n");
  }
};
await Promise.all([appender(), appender(), appender(), appender()]);
`,
    );
    const acknowledged: string[] = [];
    for (const [run, killAfter] of [20, 75, 150, 40, 300].entries()) {
      const proc = Bun.spawn([process.execPath, child, file, state], { stdout: "pipe", stderr: "pipe" });
      const reader = proc.stdout.getReader();
      const decoder = new TextDecoder();
      let text = "";
      let seen = 0;
      let killed = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        seen = text.split("\n").length - 1;
        if (!killed && seen >= killAfter) {
          proc.kill("SIGKILL");
          killed = true;
        }
      }
      // Lines still in the pipe after the kill were written after their append resolved: they count.
      expect(await proc.exited, `run ${run}: ${await new Response(proc.stderr).text()}`).not.toBe(0);
      expect(proc.signalCode).toBe("SIGKILL");
      const ids = text
        .split("\n")
        .filter((line) => line.startsWith("ok "))
        .map((line) => line.slice(3));
      expect(ids.length).toBeGreaterThanOrEqual(killAfter);
      acknowledged.push(...ids);

      const outbox = await openOutbox({ file });
      const stored = everything(outbox, "check");
      const storedIds = new Set(stored.map((m) => m.id));
      expect(
        acknowledged.filter((id) => !storedIds.has(id)),
        `run ${run}`,
      ).toEqual([]);
      expect(storedIds.size).toBe(stored.length);
      close(outbox);
    }
  });
});

describe("group commit", () => {
  test("appends made in the same turn share one fsync'd commit; awaited one by one, each commits by itself", async () => {
    const outbox = await openOutbox();
    outbox.register("s");
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => outbox.append(batch(1, `a${i}`))));
    expect(outbox.commits).toBe(1);
    expect(everything(outbox, "s").map((m) => m.topic)).toEqual(results.map((r) => r[0]?.topic));
    for (let i = 0; i < 3; i++) await outbox.append(batch(1));
    expect(outbox.commits).toBe(4);
  });

  test("with groupCommit false every append is its own transaction", async () => {
    const outbox = await openOutbox({ groupCommit: false });
    outbox.register("s");
    await Promise.all(Array.from({ length: 8 }, (_, i) => outbox.append(batch(2, `a${i}`))));
    expect(outbox.commits).toBe(8);
    expect(everything(outbox, "s")).toHaveLength(16);
  });
});

describe("bounds", () => {
  test("beyond maxBytes the oldest messages are dropped and counted (durably), without failing an append", async () => {
    const probe = await openOutbox({ file: join(state, "probe.db") });
    probe.register("s");
    await probe.append(batch(1));
    const size = everything(probe, "s")[0]?.bytes ?? 0;
    close(probe);

    const maxBytes = size * 10 + size / 2;
    const outbox = await openOutbox({ maxBytes });
    outbox.register("s");
    for (let i = 0; i < 15; i++) await outbox.append(batch(1, "t", i));
    const stats = outbox.stats(clock.now());
    expect(stats).toMatchObject({ messages: 10, dropped: 5, sinks: { s: { pending: 10 } } });
    expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
    expect(everything(outbox, "s").map((m) => (m.data as { n: number }).n)).toEqual([
      5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    ]);
    // At most one warning an hour, not one per commit.
    expect(log.records.filter((r) => r.level === WARN && /dropping/.test(r.msg))).toHaveLength(1);
    close(outbox);
    expect((await openOutbox({ maxBytes })).stats(clock.now()).dropped).toBe(5);
  });

  test("messages older than maxAgeSeconds are dropped and counted, at the next commit or flush", async () => {
    const outbox = await openOutbox({ maxAgeSeconds: 3600 });
    outbox.register("s");
    await outbox.append(batch(3, "old"));
    clock.advance(30 * 60_000);
    await outbox.append(batch(2, "mid"));
    clock.advance(31 * 60_000);
    await outbox.append(batch(1, "new"));
    expect(outbox.stats(clock.now())).toMatchObject({ messages: 3, dropped: 3 });
    expect(everything(outbox, "s").map((m) => m.topic)).toEqual(["mid", "mid", "new"]);
    expect(outbox.stats(clock.now()).sinks.s?.lagMs).toBe(31 * 60_000);

    clock.advance(30 * 60_000);
    outbox.flush();
    expect(outbox.stats(clock.now())).toMatchObject({ messages: 1, dropped: 5 });
    expect(everything(outbox, "s").map((m) => m.topic)).toEqual(["new"]);
  });

  test("memory stays flat while 200 000 messages go through a full outbox", async () => {
    const maxBytes = 256 * 1024;
    const outbox = await openOutbox({ maxBytes, newId: undefined });
    outbox.register("stuck");
    outbox.register("live");
    const total = 200_000;
    const perAppend = 1000;
    const pad = "x".repeat(120);
    let baseline = 0;
    let largestRows = 0;
    for (let sent = 0; sent < total; sent += perAppend) {
      await outbox.append(
        Array.from({ length: perAppend }, (_, i) => ({ topic: "load", data: { n: sent + i, pad } })),
      );
      const got = outbox.read("live", 1000, 1_000_000);
      outbox.ack("live", got.at(-1)?.seq ?? 0);
      const stats = outbox.stats(clock.now());
      expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
      largestRows = Math.max(largestRows, stats.messages);
      if (sent === 50_000) {
        Bun.gc(true);
        baseline = process.memoryUsage().rss;
      }
    }
    outbox.flush();
    Bun.gc(true);
    const growth = process.memoryUsage().rss - baseline;
    const stats = outbox.stats(clock.now());
    expect(stats.messages).toBeLessThanOrEqual(largestRows);
    expect(stats.dropped).toBe(total - stats.messages);
    // About 200 bytes a message: the bound holds about 1 300 of them, never the 200 000.
    expect(largestRows).toBeLessThan(maxBytes / 150);
    expect((await stat(file)).size).toBeLessThan(4 * 1024 * 1024);
    // 150 000 messages kept in memory would be well over 40 MiB.
    expect(growth).toBeLessThan(40 * 1024 * 1024);
  }, 120_000);
});

describe("dead letters", () => {
  test("are kept and counted per sink, the reason logged once, and the cursor moves past them", async () => {
    const outbox = await openOutbox();
    outbox.register("http");
    outbox.register("mqtt");
    await outbox.append(batch(4));
    const refused = outbox.read("http", 2, 1_000_000);
    outbox.deadLetter("http", refused, "HTTP 400: schema mismatch");
    outbox.flush();

    expect(outbox.read("http", 100, 1_000_000).map((m) => m.data)).toEqual([{ n: 2 }, { n: 3 }]);
    expect(outbox.read("mqtt", 100, 1_000_000)).toHaveLength(4);
    const kept = outbox.deadLetters("http");
    // Newest first, as refused.
    expect(kept.map(({ sink, reason, ...message }) => message)).toEqual([...refused].reverse());
    expect(kept.every((m) => m.reason === "HTTP 400: schema mismatch" && m.sink === "http")).toBe(true);
    const warnings = log.records.filter((r) => r.level === WARN && r.sink === "http");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ reason: "HTTP 400: schema mismatch", messages: 2 });

    // Every sink past everything: the messages go, the dead letters stay.
    const last = outbox.read("mqtt", 100, 1_000_000).at(-1)?.seq ?? 0;
    outbox.ack("http", last);
    outbox.ack("mqtt", last);
    outbox.flush();
    const stats = outbox.stats(clock.now());
    expect(stats.messages).toBe(2);
    expect(stats.sinks.http?.deadLettered).toBe(2);
    expect(stats.sinks.mqtt?.deadLettered).toBe(0);
    close(outbox);
    const again = await openOutbox();
    expect(again.stats(clock.now()).sinks.http?.deadLettered).toBe(2);
    expect(again.deadLetters("http")).toHaveLength(2);
  });
});

describe("files", () => {
  test("the directory is 0700 and the database, its WAL and index 0600; an existing 0644 file is made 0600", async () => {
    const outbox = await openOutbox();
    outbox.register("s");
    await outbox.append(batch(1));
    expect((await stat(state)).mode & 0o777).toBe(0o700);
    expect((await stat(join(state, "telemetry"))).mode & 0o777).toBe(0o700);
    for (const name of ["outbox.db", "outbox.db-wal", "outbox.db-shm"]) {
      expect((await stat(join(state, "telemetry", name))).mode & 0o777, name).toBe(0o600);
    }
    close(outbox);

    const loose = join(state, "telemetry", "loose.db");
    await writeFile(loose, "", { mode: 0o644 });
    await openOutbox({ file: loose });
    expect((await stat(loose)).mode & 0o777).toBe(0o600);
  });

  test("close checkpoints the WAL into the database and truncates it", async () => {
    const outbox = await openOutbox();
    outbox.register("s");
    await outbox.append(batch(50));
    expect((await stat(`${file}-wal`)).size).toBeGreaterThan(0);
    close(outbox);
    expect((await stat(`${file}-wal`).catch(() => ({ size: 0 }))).size).toBe(0);
    const db = new Database(file, { readonly: true });
    expect(db.query<{ n: number }, []>("SELECT count(*) AS n FROM messages").get()?.n).toBe(50);
    db.close();
  });

  test("a file that is not a database is set aside with one warning, and a new outbox works", async () => {
    await mkdir(join(state, "telemetry"), { recursive: true, mode: 0o700 });
    const garbage = "this is not a database\n".repeat(400);
    await writeFile(file, garbage);
    const outbox = await openOutbox();
    const names = await readdir(join(state, "telemetry"));
    const aside = names.filter((name) => name.startsWith("outbox.db.corrupt-"));
    expect(aside).toHaveLength(1);
    expect(await readFile(join(state, "telemetry", aside[0] ?? ""), "utf8")).toBe(garbage);
    const warnings = log.records.filter((r) => r.level === WARN);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain(join(state, "telemetry", aside[0] ?? ""));

    outbox.register("s");
    await outbox.append(batch(2));
    expect(everything(outbox, "s")).toHaveLength(2);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  test("a damaged page (quick_check) and an unknown schema version are set aside too", async () => {
    const first = await openOutbox();
    first.register("s");
    await first.append(Array.from({ length: 200 }, (_, i) => ({ topic: "t", data: "y".repeat(300 + i) })));
    close(first);
    // Pages 2 and 3 (the tables' b-trees) overwritten: the header still says "SQLite format 3".
    const handle = await openFile(file, "r+");
    await handle.write(Buffer.alloc(8192, 0xa5), 0, 8192, 4096);
    await handle.close();
    const second = await openOutbox();
    expect(second.stats(clock.now()).messages).toBe(0);
    second.register("s");
    await second.append(batch(1));
    close(second);

    const db = new Database(file);
    db.run("PRAGMA user_version = 99");
    db.close();
    const third = await openOutbox();
    expect(third.sinks).toEqual([]);
    const names = (await readdir(join(state, "telemetry"))).filter((n) => n.startsWith("outbox.db.corrupt-"));
    expect(names).toHaveLength(2);
    const warnings = log.records.filter((r) => r.level === WARN).map((r) => String(r.problem));
    expect(warnings).toHaveLength(2);
    expect(warnings[1]).toContain("schema version 99");
  });

  test("a full disk: the append rejects with E_OUTBOX, nothing of it is stored, and the outbox goes on", async () => {
    const outbox = await openOutbox({ maxFileBytes: 64 * 1024 });
    outbox.register("s");
    const big = (n: number) =>
      Array.from({ length: 5 }, (_, i) => ({ topic: "t", data: { n, i, pad: "z".repeat(1500) } }));
    let stored = 0;
    let failure: unknown;
    for (let n = 0; n < 100 && failure === undefined; n++) {
      try {
        await outbox.append(big(n));
        stored++;
      } catch (error) {
        failure = error;
      }
    }
    expect(stored).toBeGreaterThan(0);
    expect(isEntraToolError(failure, "E_OUTBOX")).toBe(true);
    expect((failure as Error).message).toMatch(/disk is full/);
    expect(outbox.stats(clock.now()).messages).toBe(stored * 5);
    const kept = everything(outbox, "s");
    expect(kept).toHaveLength(stored * 5);
    expect(new Set(kept.map((m) => (m.data as { n: number }).n)).size).toBe(stored);

    outbox.ack("s", kept.at(-1)?.seq ?? 0);
    outbox.flush();
    await outbox.append(big(1000));
    expect(everything(outbox, "s")).toHaveLength(5);
  });
});

describe("configuration", () => {
  test("defaults, bounds and unknown keys", () => {
    expect(v.parse(OutboxConfigSchema, {})).toEqual({
      maxBytes: DEFAULT_OUTBOX_MAX_BYTES,
      maxAgeSeconds: DEFAULT_OUTBOX_MAX_AGE_SECONDS,
    });
    expect(DEFAULT_OUTBOX_MAX_BYTES).toBe(64 * 1024 * 1024);
    expect(DEFAULT_OUTBOX_MAX_AGE_SECONDS).toBe(7 * 86_400);
    expect(v.parse(OutboxConfigSchema, { maxBytes: 1_048_576, maxAgeSeconds: 3600 })).toEqual({
      maxBytes: 1_048_576,
      maxAgeSeconds: 3600,
    });
    const result = v.safeParse(OutboxConfigSchema, {
      maxBytes: 100_000.5,
      maxAgeSeconds: 1,
      extra: true,
      more: 1,
    });
    expect(result.success).toBe(false);
    expect(formatIssues(result.issues ?? [], "outbox")).toEqual([
      expect.stringMatching(/^outbox\.maxBytes: must be a whole number of bytes .* \(found 100000\.5\)$/),
      expect.stringMatching(/^outbox\.maxAgeSeconds: must be a whole number of seconds .* \(found 1\)$/),
      "outbox.extra: unknown field",
      "outbox.more: unknown field",
    ]);
  });
});
