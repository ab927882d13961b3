import { Database, type Statement } from "bun:sqlite";
import { ensurePrivateDir } from "../core/atomic.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, errnoCode } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { dirname } from "../core/path.ts";
import { setAside } from "../core/set-aside.ts";
import { DEFAULT_OUTBOX_MAX_AGE_SECONDS, DEFAULT_OUTBOX_MAX_BYTES } from "./outbox-schema.ts";
import type { Message, NewMessage, Outbox, OutboxStats, StoredMessage } from "./types.ts";

/**
 * The agent's durable outbox: one SQLite database (bun:sqlite, WAL mode) in a private directory.
 *
 * Tables: `messages` (seq, append time, size, the message's JSON), `cursors` (sink → last acked
 * seq, and its dead-letter count), `dead_letters` (copies of refused messages with the reason) and
 * `totals` (one row: stored bytes, dead letters, dropped), so that nothing at open or in `stats`
 * has to read the whole table.
 *
 * Invariant the arithmetic relies on: the kept messages' seqs are one unbroken run
 * [first, last]. Inserts take last + 1 (AUTOINCREMENT: a seq is never reused, even after the table
 * was emptied, so a cursor never points past new messages), and every delete removes a prefix
 * (acknowledged by every sink, or the oldest beyond a bound). Dead letters are copies in their own
 * table, so they never leave holes in `messages`.
 *
 * Durability: an append's transaction commits with `synchronous=FULL` (the WAL is fsync'd) before
 * its promise resolves. Cursor moves and deletions commit with `synchronous=NORMAL` (no fsync of
 * their own): the next fsync'd commit or the checkpoint at `close()` makes them durable, and one
 * lost in a crash only means a redelivery (at-least-once).
 */

/** `PRAGMA user_version` of the layout below; any other version is set aside at open. */
export const OUTBOX_SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  created INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE cursors (
  sink TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  dead_lettered INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE dead_letters (
  n INTEGER PRIMARY KEY,
  sink TEXT NOT NULL,
  seq INTEGER NOT NULL,
  created INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  reason TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX dead_letters_by_sink ON dead_letters (sink, n);
CREATE TABLE totals (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  live_bytes INTEGER NOT NULL,
  dead_bytes INTEGER NOT NULL,
  dead_count INTEGER NOT NULL,
  dropped INTEGER NOT NULL
);
INSERT INTO totals VALUES (1, 0, 0, 0, 0);
`;

/** The WAL is cut back to this size after a checkpoint (bytes), so a burst does not keep its space. */
const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;
/** Rows fetched per step when reading or walking the oldest rows: memory stays flat. */
const CHUNK_ROWS = 256;
const DB_FILE_MODE = 0o600;
/** The part of maxBytes dead letters may take; beyond it the oldest dead letters are removed. */
const DEAD_LETTER_SHARE = 1 / 8;
/** Least time between two warnings about dropped messages, ms. */
const DROP_WARNING_INTERVAL_MS = 60 * 60 * 1000;

export interface SqliteOutboxOptions {
  /** The database file (`…/outbox.db`); its directory is created private (0700). */
  readonly file: string;
  /** Fills Message.device. */
  readonly device: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /**
   * Most bytes kept (messages and dead letters, as JSON); beyond it the oldest messages are dropped.
   * Dead letters keep at most an eighth of it (the newest).
   */
  readonly maxBytes?: number;
  /** Oldest message kept, seconds since it was appended; older ones are dropped. */
  readonly maxAgeSeconds?: number;
  /** The directory named for entratool above `file` (see ensurePrivateDir); default: its directory. */
  readonly privateRoot?: string;
  /** Message ids; default Bun.randomUUIDv7 (injected in tests). */
  readonly newId?: () => string;
  /**
   * true (default): appends made in the same turn of the event loop share one fsync'd
   * transaction. false: one transaction (and fsync) per append, for the benchmark's comparison.
   */
  readonly groupCommit?: boolean;
  /**
   * A hard cap on the database file, bytes (rounded down to whole pages); a write that needs more
   * fails with E_OUTBOX as on a full disk. Default: none (the bounds keep the file near maxBytes).
   */
  readonly maxFileBytes?: number;
}

/** A message a sink's receiver refused for good, as kept for a person to inspect. */
export interface DeadLetter extends StoredMessage {
  readonly sink: string;
  readonly reason: string;
}

interface PendingAppend {
  readonly messages: readonly Message[];
  readonly bodies: readonly string[];
  readonly bytes: readonly number[];
  readonly resolve: (messages: readonly Message[]) => void;
  readonly reject: (error: unknown) => void;
}

interface Cursor {
  seq: number;
  deadLettered: number;
}

/** The numbers kept in memory beside the database; restored when a transaction fails. */
interface Counters {
  /** Highest seq ever committed (0 before the first). */
  last: number;
  /** Lowest kept seq; last + 1 when no message is kept. */
  first: number;
  liveBytes: number;
  deadBytes: number;
  deadCount: number;
  dropped: number;
}

/** Thrown by the constructor when the file is damaged or foreign; `open` sets it aside. */
class DamagedOutbox extends Error {
  override readonly name = "DamagedOutbox";
}

type Sync = "FULL" | "NORMAL";

interface Statements {
  readonly insert: Statement;
  readonly readAfter: Statement<{ seq: number; bytes: number; body: string }, [number, number]>;
  readonly createdAfter: Statement<{ created: number }, [number]>;
  readonly walkMessages: Statement<{ seq: number; bytes: number; created: number }, [number, number]>;
  readonly sumUpTo: Statement<{ n: number; b: number }, [number]>;
  readonly deleteUpTo: Statement;
  readonly walkDead: Statement<{ n: number; bytes: number; created: number }, [number, number]>;
  readonly deleteDeadUpTo: Statement;
  readonly insertDead: Statement;
  readonly listDead: Statement<
    { n: number; sink: string; seq: number; bytes: number; reason: string; body: string },
    [string, number]
  >;
  readonly upsertCursor: Statement;
  readonly deleteCursor: Statement;
  readonly writeTotals: Statement;
  readonly begin: Statement;
  readonly commit: Statement;
  readonly rollback: Statement;
  readonly syncFull: Statement;
  readonly syncNormal: Statement;
}

/** See the file comment. Open with `SqliteOutbox.open`. */
export class SqliteOutbox implements Outbox {
  readonly file: string;
  readonly #db: Database;
  readonly #device: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #maxBytes: number;
  readonly #maxAgeMs: number;
  readonly #newId: () => string;
  readonly #groupCommit: boolean;
  readonly #s: Statements;
  readonly #cursors = new Map<string, Cursor>();
  readonly #dirty = new Set<string>();
  readonly #listeners = new Set<() => void>();
  #counters: Counters;
  #pending: PendingAppend[] = [];
  #appendScheduled = false;
  #maintenanceScheduled = false;
  #sync: Sync | undefined;
  #commits = 0;
  #lastDropWarning: number | undefined;
  /** Dropped since the last warning (a rollback may leave it a little high: it is only logged). */
  #unreportedDrops = 0;
  #closed = false;

  /**
   * Opens (or creates) the outbox: the directory private (0700, see ensurePrivateDir), the files
   * 0600. A file that is not a database, fails `PRAGMA quick_check` or has another schema version
   * is set aside (`outbox.db.corrupt-<time>`, its WAL with it) and a new, empty outbox is started,
   * with one warning that says what went where. Other failures: EntraToolError E_OUTBOX.
   */
  static async open(options: SqliteOutboxOptions): Promise<SqliteOutbox> {
    const dir = dirname(options.file);
    try {
      await ensurePrivateDir(dir, options.privateRoot ?? dir);
      await makePrivate(options.file);
    } catch (error) {
      throw outboxError(error, options.file, "open");
    }
    try {
      return await SqliteOutbox.#openPrivate(options);
    } catch (error) {
      if (!(error instanceof DamagedOutbox)) throw error;
      const moved: string[] = [];
      try {
        for (const path of [options.file, `${options.file}-wal`]) {
          const aside = await setAside(path, { clock: options.clock });
          if (aside !== undefined) moved.push(aside);
        }
        const { unlink } = await import("node:fs/promises");
        // The shared-memory index only describes the WAL set aside with it.
        await unlink(`${options.file}-shm`).catch((e: unknown) => {
          if (errnoCode(e) !== "ENOENT") throw e;
        });
        await makePrivate(options.file);
      } catch (setAsideError) {
        throw outboxError(setAsideError, options.file, "open");
      }
      options.logger.warn(
        { file: options.file, setAside: moved, problem: error.message },
        `The outbox database was damaged (${error.message}): it was set aside as ${moved.join(" and ")} and a new, empty outbox was started; the messages it held are not sent.`,
      );
      try {
        return await SqliteOutbox.#openPrivate(options);
      } catch (again) {
        // A fresh file found damaged too: the disk, not the file, is at fault.
        throw outboxError(again, options.file, "open");
      }
    }
  }

  static async #openPrivate(options: SqliteOutboxOptions): Promise<SqliteOutbox> {
    const outbox = new SqliteOutbox(options);
    try {
      // SQLite gives the WAL and its index the database file's mode; made sure of here.
      for (const suffix of ["-wal", "-shm"]) await chmodIfExists(`${options.file}${suffix}`, DB_FILE_MODE);
    } catch (error) {
      outbox.close();
      throw outboxError(error, options.file, "open");
    }
    return outbox;
  }

  private constructor(options: SqliteOutboxOptions) {
    this.file = options.file;
    this.#device = options.device;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#maxBytes = options.maxBytes ?? DEFAULT_OUTBOX_MAX_BYTES;
    this.#maxAgeMs = (options.maxAgeSeconds ?? DEFAULT_OUTBOX_MAX_AGE_SECONDS) * 1000;
    this.#newId = options.newId ?? (() => Bun.randomUUIDv7());
    this.#groupCommit = options.groupCommit ?? true;
    let db: Database;
    try {
      db = new Database(options.file, { create: true, readwrite: true, strict: true });
    } catch (error) {
      throw classify(error, options.file);
    }
    this.#db = db;
    try {
      this.#prepareSchema(options.maxFileBytes);
      this.#s = this.#prepareStatements();
      this.#counters = this.#load();
    } catch (error) {
      db.close(false);
      throw classify(error, options.file);
    }
  }

  /** Append transactions committed so far (each one fsync'd), for the group commit's evidence. */
  get commits(): number {
    return this.#commits;
  }

  /** The sinks that have a cursor, in no particular order. */
  get sinks(): readonly string[] {
    return [...this.#cursors.keys()];
  }

  append(messages: readonly NewMessage[]): Promise<readonly Message[]> {
    if (this.#closed) {
      return Promise.reject(
        new EntraToolError("E_OUTBOX", {
          message:
            "The outbox is closed, so the messages were not stored: this is a bug in entratool, please report it.",
        }),
      );
    }
    if (messages.length === 0) return Promise.resolve([]);
    const now = this.#clock.now();
    const built: Message[] = [];
    const bodies: string[] = [];
    const bytes: number[] = [];
    try {
      for (const message of messages) {
        const at = message.at ?? now;
        if (!Number.isFinite(at)) throw new RangeError("invalid time");
        const full: Message = {
          id: this.#newId(),
          ts: new Date(at).toISOString(),
          device: this.#device,
          topic: message.topic,
          data: message.data,
        };
        const body = JSON.stringify(full);
        built.push(full);
        bodies.push(body);
        bytes.push(Buffer.byteLength(body));
      }
    } catch (error) {
      return Promise.reject(
        new EntraToolError("E_PAYLOAD", {
          message: "A message could not be stored: its data must be plain JSON and its time a valid date.",
          cause: error,
        }),
      );
    }
    return new Promise<readonly Message[]>((resolve, reject) => {
      this.#pending.push({ messages: built, bodies, bytes, resolve, reject });
      if (!this.#appendScheduled) {
        this.#appendScheduled = true;
        // Not a timer: the commit runs at the end of this turn of the event loop, so every append
        // made in it (by any caller) shares the transaction and its one fsync.
        setImmediate(() => this.#commitPending());
      }
    });
  }

  register(sink: string): void {
    this.#assertOpen();
    if (this.#cursors.has(sink)) return;
    const cursor: Cursor = { seq: this.#counters.last, deadLettered: 0 };
    this.#write("NORMAL", () => {
      this.#s.upsertCursor.run(sink, cursor.seq, cursor.deadLettered);
    });
    this.#cursors.set(sink, cursor);
  }

  /** Removes a sink's cursor (a sink no longer configured), so that it pins no message. */
  unregister(sink: string): void {
    this.retain(this.sinks.filter((name) => name !== sink));
  }

  /** Keeps the cursors of `sinks` only (the sinks configured now); the others are removed. */
  retain(sinks: readonly string[]): void {
    this.#assertOpen();
    const keep = new Set(sinks);
    const gone = this.sinks.filter((name) => !keep.has(name));
    if (gone.length === 0) return;
    this.#write("NORMAL", () => {
      for (const name of gone) this.#s.deleteCursor.run(name);
    });
    for (const name of gone) {
      this.#cursors.delete(name);
      this.#dirty.delete(name);
    }
    this.#scheduleMaintenance();
  }

  read(sink: string, maxMessages: number, maxBytes: number): readonly StoredMessage[] {
    this.#assertOpen();
    const cursor = this.#cursor(sink);
    const most = Math.max(1, Math.floor(maxMessages));
    const out: StoredMessage[] = [];
    let total = 0;
    let after = cursor.seq;
    for (;;) {
      const rows = this.#s.readAfter.all(after, Math.min(CHUNK_ROWS, most - out.length));
      for (const row of rows) {
        // At least one message, even one larger than maxBytes: the sink decides what to do with it.
        if (out.length > 0 && total + row.bytes > maxBytes) return out;
        out.push(parseStored(row.seq, row.bytes, row.body));
        total += row.bytes;
        after = row.seq;
        if (out.length >= most) return out;
      }
      if (rows.length < CHUNK_ROWS) return out;
    }
  }

  ack(sink: string, seq: number): void {
    this.#assertOpen();
    const cursor = this.#cursor(sink);
    // Never backwards, never past what was committed.
    const next = Math.min(Math.max(cursor.seq, Math.floor(seq)), this.#counters.last);
    if (next === cursor.seq) return;
    cursor.seq = next;
    this.#dirty.add(sink);
    this.#scheduleMaintenance();
  }

  deadLetter(sink: string, messages: readonly StoredMessage[], reason: string): void {
    this.#assertOpen();
    const cursor = this.#cursor(sink);
    if (messages.length === 0) return;
    const now = this.#clock.now();
    let highest = cursor.seq;
    let added = 0;
    this.#write("NORMAL", () => {
      for (const message of messages) {
        const body = JSON.stringify({
          id: message.id,
          ts: message.ts,
          device: message.device,
          topic: message.topic,
          data: message.data,
        });
        const bytes = Buffer.byteLength(body);
        this.#s.insertDead.run(sink, message.seq, now, bytes, reason, body);
        added += bytes;
        highest = Math.max(highest, message.seq);
      }
      this.#counters.deadBytes += added;
      this.#counters.deadCount += messages.length;
      const seq = Math.min(highest, this.#counters.last);
      this.#s.upsertCursor.run(sink, seq, cursor.deadLettered + messages.length);
      this.#trim(now);
    });
    cursor.seq = Math.min(highest, this.#counters.last);
    cursor.deadLettered += messages.length;
    this.#dirty.delete(sink);
    // The messages may now be past every cursor: deleted at the end of this turn.
    this.#scheduleMaintenance();
    const seqs = messages.map((message) => message.seq);
    this.#logger.warn(
      { sink, messages: messages.length, firstSeq: Math.min(...seqs), lastSeq: Math.max(...seqs), reason },
      `Sink ${sink} refused ${messages.length} message(s) for good; they are kept as dead letters: ${reason}`,
    );
  }

  /** The newest dead letters of `sink`, newest first, at most `limit`. */
  deadLetters(sink: string, limit = 100): readonly DeadLetter[] {
    this.#assertOpen();
    return this.#s.listDead
      .all(sink, Math.max(0, Math.floor(limit)))
      .map((row) => ({ ...parseStored(row.seq, row.bytes, row.body), sink: row.sink, reason: row.reason }));
  }

  stats(now: number): OutboxStats {
    this.#assertOpen();
    const { first, last, liveBytes, deadBytes, deadCount, dropped } = this.#counters;
    const sinks: Record<string, { pending: number; lagMs: number; deadLettered: number }> = {};
    for (const [name, cursor] of this.#cursors) {
      const from = Math.max(cursor.seq, first - 1);
      const pending = Math.max(0, last - from);
      const oldest = pending > 0 ? this.#s.createdAfter.get(from)?.created : undefined;
      sinks[name] = {
        pending,
        lagMs: oldest === undefined ? 0 : Math.max(0, now - oldest),
        deadLettered: cursor.deadLettered,
      };
    }
    return {
      messages: Math.max(0, last - first + 1) + deadCount,
      bytes: liveBytes + deadBytes,
      dropped,
      sinks,
    };
  }

  onAppend(listener: () => void): () => void {
    // A wrapper, so that the same function added twice is called twice and removed once each.
    const entry = (): void => listener();
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * Commits now what would otherwise wait for the end of this turn: pending appends (their
   * promises settle), cursor moves and the deletions they allow.
   */
  flush(): void {
    this.#assertOpen();
    this.#commitPending();
    this.#maintain();
  }

  /** Commits what is pending, checkpoints the WAL into the database (truncating it) and closes. */
  close(): void {
    if (this.#closed) return;
    try {
      this.flush();
      this.#db.run("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (error) {
      this.#logger.error({ err: error, file: this.file }, "Closing the outbox failed; it is closed anyway.");
    } finally {
      this.#closed = true;
      this.#listeners.clear();
      this.#db.close(false);
    }
  }

  // --- internals -------------------------------------------------------------------------------

  #prepareSchema(maxFileBytes: number | undefined): void {
    const db = this.#db;
    let mode: string | undefined;
    try {
      mode = db.query<{ journal_mode: string }, []>("PRAGMA journal_mode=WAL").get()?.journal_mode;
    } catch (error) {
      throw damagedOr(error);
    }
    if (mode !== "wal") throw new Error(`SQLite refused WAL mode (journal_mode ${String(mode)})`);
    db.run("PRAGMA busy_timeout=5000");
    let check: string[];
    try {
      check = db
        .query<{ quick_check: string }, []>("PRAGMA quick_check")
        .all()
        .map((row) => row.quick_check);
    } catch (error) {
      throw damagedOr(error);
    }
    if (check.length !== 1 || check[0] !== "ok") {
      throw new DamagedOutbox(`quick_check found: ${check.slice(0, 3).join("; ")}`);
    }
    const version = db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version ?? 0;
    if (version === 0) {
      const tables = db.query<{ n: number }, []>("SELECT count(*) AS n FROM sqlite_master").get()?.n ?? 0;
      if (tables > 0) throw new DamagedOutbox("it holds tables of another program (no schema version)");
      db.run("PRAGMA synchronous=FULL");
      db.transaction(() => {
        db.run(SCHEMA);
        db.run(`PRAGMA user_version=${OUTBOX_SCHEMA_VERSION}`);
      })();
    } else if (version !== OUTBOX_SCHEMA_VERSION) {
      throw new DamagedOutbox(`schema version ${version}, this entratool knows ${OUTBOX_SCHEMA_VERSION}`);
    }
    db.run(`PRAGMA journal_size_limit=${JOURNAL_SIZE_LIMIT}`);
    if (maxFileBytes !== undefined) {
      const pageSize = db.query<{ page_size: number }, []>("PRAGMA page_size").get()?.page_size ?? 4096;
      db.run(`PRAGMA max_page_count=${Math.max(1, Math.floor(maxFileBytes / pageSize))}`);
    }
  }

  #prepareStatements(): Statements {
    const db = this.#db;
    try {
      return {
        insert: db.prepare("INSERT INTO messages (created, bytes, body) VALUES (?, ?, ?)"),
        readAfter: db.prepare("SELECT seq, bytes, body FROM messages WHERE seq > ? ORDER BY seq LIMIT ?"),
        createdAfter: db.prepare("SELECT created FROM messages WHERE seq > ? ORDER BY seq LIMIT 1"),
        walkMessages: db.prepare(
          "SELECT seq, bytes, created FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
        ),
        sumUpTo: db.prepare("SELECT count(*) AS n, total(bytes) AS b FROM messages WHERE seq <= ?"),
        deleteUpTo: db.prepare("DELETE FROM messages WHERE seq <= ?"),
        walkDead: db.prepare("SELECT n, bytes, created FROM dead_letters WHERE n > ? ORDER BY n LIMIT ?"),
        deleteDeadUpTo: db.prepare("DELETE FROM dead_letters WHERE n <= ?"),
        insertDead: db.prepare(
          "INSERT INTO dead_letters (sink, seq, created, bytes, reason, body) VALUES (?, ?, ?, ?, ?, ?)",
        ),
        listDead: db.prepare(
          "SELECT n, sink, seq, bytes, reason, body FROM dead_letters WHERE sink = ? ORDER BY n DESC LIMIT ?",
        ),
        upsertCursor: db.prepare(
          "INSERT INTO cursors (sink, seq, dead_lettered) VALUES (?, ?, ?) ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, dead_lettered = excluded.dead_lettered",
        ),
        deleteCursor: db.prepare("DELETE FROM cursors WHERE sink = ?"),
        writeTotals: db.prepare(
          "UPDATE totals SET live_bytes = ?, dead_bytes = ?, dead_count = ?, dropped = ? WHERE id = 1",
        ),
        begin: db.prepare("BEGIN IMMEDIATE"),
        commit: db.prepare("COMMIT"),
        rollback: db.prepare("ROLLBACK"),
        syncFull: db.prepare("PRAGMA synchronous=FULL"),
        syncNormal: db.prepare("PRAGMA synchronous=NORMAL"),
      };
    } catch (error) {
      // The tables are not what this version made: another program's file, or a damaged one.
      throw damagedOr(error, true);
    }
  }

  #load(): Counters {
    const db = this.#db;
    const totals = db
      .query<{ live_bytes: number; dead_bytes: number; dead_count: number; dropped: number }, []>(
        "SELECT live_bytes, dead_bytes, dead_count, dropped FROM totals WHERE id = 1",
      )
      .get();
    if (totals === null) throw new DamagedOutbox("its totals row is missing");
    const last =
      db.query<{ seq: number }, []>("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").get()?.seq ??
      0;
    const first = db.query<{ seq: number | null }, []>("SELECT min(seq) AS seq FROM messages").get()?.seq;
    for (const row of db
      .query<{ sink: string; seq: number; dead_lettered: number }, []>(
        "SELECT sink, seq, dead_lettered FROM cursors",
      )
      .all()) {
      this.#cursors.set(row.sink, { seq: row.seq, deadLettered: row.dead_lettered });
    }
    return {
      last,
      first: first ?? last + 1,
      liveBytes: totals.live_bytes,
      deadBytes: totals.dead_bytes,
      deadCount: totals.dead_count,
      dropped: totals.dropped,
    };
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("The outbox is closed.");
  }

  #cursor(sink: string): Cursor {
    const cursor = this.#cursors.get(sink);
    if (cursor === undefined)
      throw new Error(`The outbox has no cursor for sink ${sink}: register it first.`);
    return cursor;
  }

  /**
   * Runs `body` in one transaction committed with `sync`. On failure the transaction is rolled
   * back, the counters are as before, and an E_OUTBOX error is thrown.
   */
  #write(sync: Sync, body: () => void): void {
    const s = this.#s;
    if (this.#sync !== sync) {
      (sync === "FULL" ? s.syncFull : s.syncNormal).run();
      this.#sync = sync;
    }
    const before = { ...this.#counters };
    try {
      s.begin.run();
      body();
      const c = this.#counters;
      s.writeTotals.run(c.liveBytes, c.deadBytes, c.deadCount, c.dropped);
      s.commit.run();
    } catch (error) {
      this.#counters = before;
      if (this.#db.inTransaction) {
        try {
          s.rollback.run();
        } catch {
          // SQLite may have rolled back itself (a full disk, an I/O error): nothing more to undo.
        }
      }
      throw outboxError(error, this.file, "write");
    }
  }

  #commitPending(): void {
    this.#appendScheduled = false;
    if (this.#closed || this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    const groups = this.#groupCommit ? [pending] : pending.map((entry) => [entry]);
    for (const group of groups) {
      const now = this.#clock.now();
      try {
        this.#write("FULL", () => {
          let added = 0;
          for (const entry of group) {
            for (let i = 0; i < entry.bodies.length; i++) {
              const result = this.#s.insert.run(now, entry.bytes[i] ?? 0, entry.bodies[i] ?? "");
              this.#counters.last = Number(result.lastInsertRowid);
              added += entry.bytes[i] ?? 0;
            }
          }
          // `first` needs no change: an empty outbox already has first = the seq just taken.
          this.#counters.liveBytes += added;
          this.#writeCursors();
          this.#trim(now);
        });
      } catch (error) {
        for (const entry of group) entry.reject(error);
        continue;
      }
      this.#commits++;
      for (const entry of group) entry.resolve(entry.messages);
      this.#notify();
    }
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch (error) {
        this.#logger.error({ err: error }, "An outbox listener failed.");
      }
    }
  }

  #scheduleMaintenance(): void {
    if (this.#maintenanceScheduled) return;
    this.#maintenanceScheduled = true;
    setImmediate(() => {
      this.#maintenanceScheduled = false;
      if (this.#closed) return;
      try {
        this.#maintain();
      } catch (error) {
        // The cursors stay marked and are written with the next commit; at worst a redelivery.
        this.#logger.warn({ err: error, file: this.file }, "The outbox could not record acknowledgements.");
      }
    });
  }

  /** Writes moved cursors and deletes what every sink has acknowledged (one transaction). */
  #maintain(): void {
    this.#write("NORMAL", () => {
      this.#writeCursors();
      this.#trim(this.#clock.now());
    });
  }

  #writeCursors(): void {
    for (const name of this.#dirty) {
      const cursor = this.#cursors.get(name);
      if (cursor !== undefined) this.#s.upsertCursor.run(name, cursor.seq, cursor.deadLettered);
    }
    this.#dirty.clear();
  }

  /**
   * Inside a transaction: deletes the messages every sink has acknowledged (a prefix: one
   * statement); then the oldest dead letters beyond their share of maxBytes or older than
   * maxAgeSeconds (since they were refused); then the oldest messages while the whole is beyond
   * maxBytes or they are older than maxAgeSeconds (since appended). Messages dropped before every
   * sink had them are counted in `dropped` (dead letters are not: they were counted as such).
   */
  #trim(now: number): void {
    const c = this.#counters;
    const s = this.#s;
    let acked = c.last;
    for (const cursor of this.#cursors.values()) acked = Math.min(acked, cursor.seq);
    if (acked >= c.first) {
      const sum = s.sumUpTo.get(acked);
      s.deleteUpTo.run(acked);
      c.liveBytes -= sum?.b ?? 0;
      c.first = acked + 1;
    }
    const cutoff = now - this.#maxAgeMs;
    // Dead letters (every sink is past them; they are kept for a person) get a share of the bound
    // of their own, newest kept: a full outbox neither loses a new one at once nor fills with them.
    let excess = c.deadBytes - Math.floor(this.#maxBytes * DEAD_LETTER_SHARE);
    if (c.deadCount > 0) {
      let upTo = -1;
      let after = -1;
      let count = 0;
      let bytes = 0;
      outer: for (;;) {
        const rows = s.walkDead.all(after, CHUNK_ROWS);
        for (const row of rows) {
          if (excess <= 0 && row.created >= cutoff) break outer;
          upTo = row.n;
          excess -= row.bytes;
          bytes += row.bytes;
          count++;
        }
        if (rows.length < CHUNK_ROWS) break;
        after = rows[rows.length - 1]?.n ?? after;
      }
      if (count > 0) {
        s.deleteDeadUpTo.run(upTo);
        c.deadBytes -= bytes;
        c.deadCount -= count;
      }
    }
    excess = c.liveBytes + c.deadBytes - this.#maxBytes;
    let upTo = c.first - 1;
    let dropped = 0;
    let bytes = 0;
    outer: for (;;) {
      const rows = s.walkMessages.all(upTo, CHUNK_ROWS);
      for (const row of rows) {
        if (excess <= 0 && row.created >= cutoff) break outer;
        upTo = row.seq;
        excess -= row.bytes;
        bytes += row.bytes;
        dropped++;
      }
      if (rows.length < CHUNK_ROWS) break;
    }
    if (dropped === 0) return;
    s.deleteUpTo.run(upTo);
    c.liveBytes -= bytes;
    c.first = upTo + 1;
    c.dropped += dropped;
    this.#unreportedDrops += dropped;
    // At most one line an hour, not one per commit while the outbox stays full.
    if (this.#lastDropWarning === undefined || now - this.#lastDropWarning >= DROP_WARNING_INTERVAL_MS) {
      this.#logger.warn(
        {
          dropped: this.#unreportedDrops,
          totalDropped: c.dropped,
          maxBytes: this.#maxBytes,
          maxAgeSeconds: this.#maxAgeMs / 1000,
        },
        "The outbox is full (or its oldest messages too old): dropping the oldest undelivered messages.",
      );
      this.#lastDropWarning = now;
      this.#unreportedDrops = 0;
    }
  }
}

function parseStored(seq: number, bytes: number, body: string): StoredMessage {
  const message = JSON.parse(body) as Message;
  return {
    id: message.id,
    ts: message.ts,
    device: message.device,
    topic: message.topic,
    data: message.data,
    seq,
    bytes,
  };
}

/** Creates the database file 0600 if missing (SQLite would use 0644), and makes an existing one 0600. */
async function makePrivate(file: string): Promise<void> {
  const { constants, open } = await import("node:fs/promises");
  const handle = await open(file, constants.O_RDWR | constants.O_CREAT, DB_FILE_MODE);
  try {
    if (((await handle.stat()).mode & 0o777) !== DB_FILE_MODE) await handle.chmod(DB_FILE_MODE);
  } finally {
    await handle.close();
  }
}

async function chmodIfExists(path: string, mode: number): Promise<void> {
  const { chmod } = await import("node:fs/promises");
  await chmod(path, mode).catch((error: unknown) => {
    if (errnoCode(error) !== "ENOENT") throw error;
  });
}

/** SQLite's error name ("SQLITE_FULL", "SQLITE_IOERR_WRITE"…), or undefined. */
function sqliteCode(error: unknown): string | undefined {
  const code = errnoCode(error);
  return code?.startsWith("SQLITE_") ? code : undefined;
}

/** A DamagedOutbox when SQLite says the file is not a (sound) database; else the error itself. */
function damagedOr(error: unknown, schemaMismatch = false): unknown {
  const code = sqliteCode(error);
  if (code === "SQLITE_NOTADB" || code?.startsWith("SQLITE_CORRUPT")) {
    return new DamagedOutbox(error instanceof Error ? error.message : String(error));
  }
  if (schemaMismatch && code === "SQLITE_ERROR") {
    return new DamagedOutbox(`its tables are not this version's (${(error as Error).message})`);
  }
  return error;
}

/** For the constructor: damage stays DamagedOutbox (for `open`), the rest becomes E_OUTBOX. */
function classify(error: unknown, file: string): unknown {
  const damaged = damagedOr(error);
  return damaged instanceof DamagedOutbox ? damaged : outboxError(error, file, "open");
}

/** One sentence for what went wrong writing (or opening) the outbox, and what to do. */
function outboxError(error: unknown, file: string, doing: "open" | "write"): EntraToolError {
  if (error instanceof EntraToolError) return error;
  const code = sqliteCode(error) ?? errnoCode(error);
  const what = doing === "open" ? "open" : "store messages in";
  let message: string;
  if (code === "SQLITE_FULL" || code === "ENOSPC") {
    message = `Cannot ${what} the outbox ${file}: the disk is full; free some space (the messages were not stored).`;
  } else if (
    code?.startsWith("SQLITE_READONLY") ||
    code?.startsWith("SQLITE_CANTOPEN") ||
    code === "SQLITE_PERM" ||
    code === "EACCES" ||
    code === "EPERM" ||
    code === "EROFS"
  ) {
    message = `Cannot ${what} the outbox ${file}: it cannot be written (read-only file system or permissions); check the state directory.`;
  } else if (code?.startsWith("SQLITE_IOERR") || code === "EIO") {
    message = `Cannot ${what} the outbox ${file}: the disk reported an I/O error; check the SD card or disk.`;
  } else {
    message = `Cannot ${what} the outbox ${file} (${code ?? (error instanceof Error ? error.message : String(error))}): check the free space and permissions of the state directory.`;
  }
  return new EntraToolError("E_OUTBOX", { message, cause: error, details: { file, code } });
}
