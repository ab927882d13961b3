import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EntraToolError } from "../../agent/core/errors.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { createLogger } from "../../agent/pino-logger.ts";
import { SqliteOutbox } from "../../agent/telemetry/outbox.ts";
import { SinkRunner } from "../../agent/telemetry/sinks/runner.ts";
import { type Message, type SendOptions, type Sink, SinkError } from "../../agent/telemetry/types.ts";
import { until } from "../auth/world.ts";

const logLines: string[] = [];
const logger = createLogger({
  level: "debug",
  destination: { write: (line: string) => void logLines.push(line) },
});

let dir: string;
let outbox: SqliteOutbox;
let clock: VirtualClock;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-runner-"));
  clock = new VirtualClock();
  outbox = await SqliteOutbox.open({ file: join(dir, "outbox", "outbox.db"), device: "pi-1", clock, logger });
});

afterEach(async () => {
  outbox.close();
  await rm(dir, { recursive: true, force: true });
});

type Step = "ok" | SinkError | EntraToolError | ((batch: readonly Message[]) => Promise<void>);

/** A sink that answers each send with the next scripted step (then "ok"), and records what it got. */
class ScriptedSink implements Sink {
  readonly maxBatchBytes = 1024 * 1024;
  readonly received: string[] = [];
  readonly sends: Array<{ ids: string[]; forceRefresh: boolean; at: number }> = [];
  readonly #script: Step[];
  stopped = false;

  constructor(
    readonly name: string,
    script: Step[] = [],
    readonly maxBatchMessages = 10,
  ) {
    this.#script = [...script];
  }

  async start(): Promise<void> {}

  async send(batch: readonly Message[], options: SendOptions): Promise<void> {
    this.sends.push({ ids: batch.map((m) => m.id), forceRefresh: options.forceRefresh, at: clock.now() });
    const step = this.#script.shift() ?? "ok";
    if (typeof step === "function") await step(batch);
    else if (step !== "ok") throw step;
    this.received.push(...batch.map((m) => m.id));
  }

  connected(): boolean {
    return true;
  }

  readonly #connected = new Set<() => void>();
  onConnected(listener: () => void): () => void {
    this.#connected.add(listener);
    return () => this.#connected.delete(listener);
  }
  /** The connection is back (a broker restarted). */
  reconnect(): void {
    for (const listener of this.#connected) listener();
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }
}

function runner(sink: Sink, random = 0.5): SinkRunner {
  return new SinkRunner({ sink, type: "test", outbox, clock, logger, random: () => random });
}

async function appendMany(n: number, topic = "t"): Promise<string[]> {
  const messages = await outbox.append(Array.from({ length: n }, (_, i) => ({ topic, data: { i } })));
  return messages.map((m) => m.id);
}

describe("SinkRunner", () => {
  it("delivers every message in order, in batches, and acknowledges them", async () => {
    const sink = new ScriptedSink("a", [], 4);
    const run = runner(sink);
    await run.start();
    const ids = await appendMany(10);
    await until(() => sink.received.length === 10, "all delivered");
    expect(sink.received).toEqual(ids);
    expect(sink.sends.map((send) => send.ids.length)).toEqual([4, 4, 2]);
    const health = run.health(clock.now());
    expect(health).toMatchObject({ name: "a", state: "ok", sent: 10, errors: 0, pending: 0 });
    await run.stop(1000);
    expect(sink.stopped).toBe(true);
  });

  it("retries with capped exponential back-off, and honours Retry-After (capped at 10 min)", async () => {
    const retry = (): SinkError => new SinkError("retry", "503 from the server", { status: 503 });
    const sink = new ScriptedSink("a", [
      retry(),
      retry(),
      retry(),
      new SinkError("retry", "429", { status: 429, retryAfterMs: 42_000 }),
      new SinkError("retry", "429", { status: 429, retryAfterMs: 24 * 3_600_000 }),
    ]);
    const run = runner(sink, 0.5);
    await run.start();
    const ids = await appendMany(1);
    await until(() => sink.received.length === 1, "delivered after the retries");
    expect(sink.received).toEqual(ids);
    const gaps = sink.sends.slice(1).map((send, i) => send.at - (sink.sends[i] as { at: number }).at);
    // 1 s, 2 s, 4 s steps with equal jitter at 0.5 (75 % of each), then Retry-After 42 s, then the cap.
    expect(gaps).toEqual([750, 1500, 3000, 42_000, 600_000]);
    expect(run.health(clock.now()).errors).toBe(5);
    await run.stop(0);
  });

  it("a connection that comes back cuts the back-off short", async () => {
    // Back-off waits for the test here, as a broker away for minutes would make it.
    clock.passiveSleepsFromMs = 1;
    const sink = new ScriptedSink("a", [
      new SinkError("retry", "broker away"),
      new SinkError("retry", "broker away"),
    ]);
    const run = runner(sink);
    await run.start();
    const ids = await appendMany(1);
    await until(() => sink.sends.length === 2 || clock.waitingSleeps > 0, "a back-off");
    while (sink.sends.length < 2) {
      clock.advance(60_000);
      await until(() => sink.sends.length === 2 || clock.waitingSleeps > 0, "the next try");
    }
    await until(() => clock.waitingSleeps > 0, "the second back-off");
    const before = clock.now();
    sink.reconnect();
    await until(() => sink.received.length === 1, "delivered at once");
    expect(sink.received).toEqual(ids);
    expect(clock.now()).toBe(before);
    await run.stop(0);
  });

  it("a refused token gets one forced refresh, then back-off", async () => {
    const unauthorized = (): SinkError => new SinkError("unauthorized", "401", { status: 401 });
    const sink = new ScriptedSink("a", [unauthorized(), unauthorized(), unauthorized()]);
    const run = runner(sink);
    await run.start();
    await appendMany(1);
    await until(() => sink.received.length === 1, "delivered");
    // Refused: a forced refresh at once. Refused again: back-off, then the same once more.
    expect(sink.sends.map((send) => send.forceRefresh)).toEqual([false, true, false, true]);
    const at = (i: number): number => (sink.sends[i] as { at: number }).at;
    expect(at(1) - at(0)).toBe(0);
    expect(at(2) - at(1)).toBeGreaterThan(0);
    expect(at(3) - at(2)).toBe(0);
    await run.stop(0);
  });

  it("a batch refused for good is dead-lettered, counted, and the next one goes on", async () => {
    const sink = new ScriptedSink("a", [new SinkError("reject", "400 bad request", { status: 400 })], 2);
    const run = runner(sink);
    await run.start();
    const ids = await appendMany(4);
    await until(() => sink.received.length === 2, "the rest delivered");
    expect(sink.received).toEqual(ids.slice(2));
    expect(run.health(clock.now())).toMatchObject({ deadLettered: 2, pending: 0 });
    expect(outbox.stats(clock.now()).sinks.a?.deadLettered).toBe(2);
    expect(
      outbox
        .deadLetters("a")
        .map((m) => m.id)
        .sort(),
    ).toEqual(ids.slice(0, 2).sort());
    await run.stop(0);
  });

  it("waits for a sign-in without counting errors, and goes on when woken", async () => {
    // The minute between tries for a token waits for the test (it would pass at once otherwise).
    clock.passiveSleepsFromMs = 30_000;
    const sink = new ScriptedSink("a", [new EntraToolError("E_SIGN_IN_REQUIRED")]);
    const run = runner(sink);
    await run.start();
    await appendMany(1);
    await until(() => run.health(clock.now()).state === "waiting-for-sign-in", "waiting");
    expect(run.health(clock.now()).errors).toBe(0);
    // New messages do not end a wait for a token (one request to the provider per message)…
    await outbox.append([{ topic: "t", data: 2 }]);
    expect(sink.sends).toHaveLength(1);
    // …a new token does.
    run.tokensChanged();
    await until(() => sink.received.length === 2, "delivered after the sign-in");
    await run.stop(0);
  });

  it("a failing sink never holds back another: each has its own cursor", async () => {
    const broken = new ScriptedSink(
      "broken",
      Array.from({ length: 1000 }, () => new SinkError("retry", "down")),
    );
    const good = new ScriptedSink("good");
    const runs = [runner(broken), runner(good)];
    for (const run of runs) await run.start();
    const ids = await appendMany(25);
    await until(() => good.received.length === 25, "the good sink has everything");
    expect(good.received).toEqual(ids);
    expect(broken.received).toEqual([]);
    expect(outbox.stats(clock.now()).sinks.broken?.pending).toBe(25);
    for (const run of runs) await run.stop(0);
    // What the broken sink did not get stays for its next start.
    expect(outbox.read("broken", 100, 1 << 20)).toHaveLength(25);
  });

  it("stop drains what is pending, within the bound; a sink that hangs is cut off", async () => {
    let release: (() => void) | undefined;
    const hanging = new ScriptedSink("hang", [
      (_batch) =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    ]);
    const run = runner(hanging);
    await run.start();
    await appendMany(1);
    await until(() => release !== undefined, "a send in flight");
    // The send never ends by itself: stop waits its 5 s (virtual), then aborts it.
    const stopping = run.stop(5000);
    await until(() => clock.waitingSleeps + clock.sleeps.length > 0, "the drain timer");
    release?.();
    await stopping;
    expect(hanging.stopped).toBe(true);
  });
});
