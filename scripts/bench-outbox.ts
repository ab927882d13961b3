/**
 * The outbox's durable append rate (agent/telemetry/outbox.ts), with and without group commit.
 *
 *   group commit   8 appenders at once, each appending one message (about 200 bytes) and awaiting
 *                  it before the next, 20 000 messages in all: appends made in the same turn of
 *                  the event loop share one fsync'd transaction.
 *   one fsync each the same with `groupCommit: false` (one transaction, one fsync, per message),
 *                  2 000 messages.
 *   read + ack     one sink reading batches of 100 and acknowledging each, through the 20 000.
 *
 * Every append resolves only after its commit is fsync'd, so the figures depend on the disk: run
 * it on the file system the agent will use (a tmpfs has no fsync and flatters both).
 * `benchOutbox()` returns the figures for `npm run bench`; run directly, this prints a table and
 * `{ "outbox": { … } }`. Usage: bun scripts/bench-outbox.ts [--dir DIR]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemClock } from "../agent/core/clock.ts";
import { createLogger } from "../agent/pino-logger.ts";
import { SqliteOutbox } from "../agent/telemetry/outbox.ts";

const APPENDERS = 8;
const GROUP_MESSAGES = 20_000;
const FSYNC_MESSAGES = 2_000;
const READ_BATCH = 100;
/** Pads `data` so that the stored message is about 200 bytes of JSON. */
const PAD = "x".repeat(66);

export interface BenchOutboxOptions {
  /** Where the temporary databases go (default: the OS temp directory). */
  readonly dir?: string;
}

async function appendAll(outbox: SqliteOutbox, total: number): Promise<number> {
  let next = 0;
  const appender = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      await outbox.append([{ topic: "bench", data: { n, pad: PAD } }]);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: APPENDERS }, appender));
  return performance.now() - started;
}

/** Durable appends per second with and without group commit, and read + ack per second. */
export async function benchOutbox(options: BenchOutboxOptions = {}): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(options.dir ?? tmpdir(), "entratool-bench-outbox-"));
  const logger = createLogger({ level: "silent", destination: { write: () => undefined } });
  const open = (name: string, groupCommit: boolean) =>
    SqliteOutbox.open({
      file: join(dir, name, "outbox.db"),
      device: "bench",
      clock: systemClock,
      logger,
      groupCommit,
    });
  try {
    const grouped = await open("grouped", true);
    grouped.register("sink");
    const groupMs = await appendAll(grouped, GROUP_MESSAGES);
    const groupCommits = grouped.commits;
    const messageBytes = grouped.read("sink", 1, Number.MAX_SAFE_INTEGER)[0]?.bytes ?? 0;

    const readStarted = performance.now();
    let read = 0;
    for (;;) {
      const batch = grouped.read("sink", READ_BATCH, Number.MAX_SAFE_INTEGER);
      const last = batch.at(-1);
      if (last === undefined) break;
      read += batch.length;
      grouped.ack("sink", last.seq);
      grouped.flush();
    }
    const readMs = performance.now() - readStarted;
    grouped.close();

    const single = await open("single", false);
    single.register("sink");
    const fsyncMs = await appendAll(single, FSYNC_MESSAGES);
    single.close();

    const groupCommitPerSec = Math.round((GROUP_MESSAGES / groupMs) * 1000);
    const perMessageFsyncPerSec = Math.round((FSYNC_MESSAGES / fsyncMs) * 1000);
    return {
      groupCommitPerSec,
      perMessageFsyncPerSec,
      groupCommitSpeedup: Math.round((groupCommitPerSec / perMessageFsyncPerSec) * 10) / 10,
      messagesPerCommit: Math.round((GROUP_MESSAGES / groupCommits) * 10) / 10,
      readAckPerSec: Math.round((read / readMs) * 1000),
      messageBytes,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const dirArg = process.argv.indexOf("--dir");
  const figures = await benchOutbox(dirArg > 0 ? { dir: process.argv[dirArg + 1] } : {});
  const rows: Array<[string, string]> = [
    [`durable appends/s, group commit (${APPENDERS} appenders)`, String(figures.groupCommitPerSec)],
    ["durable appends/s, one fsync per message", String(figures.perMessageFsyncPerSec)],
    ["group commit speed-up", `${figures.groupCommitSpeedup}×`],
    ["messages per group commit", String(figures.messagesPerCommit)],
    [`read + ack/s (batches of ${READ_BATCH})`, String(figures.readAckPerSec)],
    ["bytes per message", String(figures.messageBytes)],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
  console.log(JSON.stringify({ outbox: figures }, null, 2));
}
