import type { Clock } from "../../core/clock.ts";
import { isAbortError } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import type { NewMessage, Source } from "../types.ts";
import { ExecCollector, execTopic } from "./exec.ts";
import type { SourceConfig } from "./schema.ts";
import { type StatFs, SystemCollector } from "./system.ts";

/**
 * The sources of the configuration's `sources` list, built by `createSource`. Every source runs the
 * same schedule (`ScheduledSource`): a collection at start, then one every `intervalSeconds` on a
 * fixed cadence of the injected clock; its collector (./system.ts, ./exec.ts) only collects.
 */

/** A source's seams. */
export interface SourceDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  /** The outbox's append. A rejection is logged and counted; the source goes on. */
  readonly append: (messages: readonly NewMessage[]) => Promise<unknown>;
  /** The `system` source's file system root (default "/"): tests give a tree shaped like /proc and /sys. */
  readonly root?: string;
  /** The `system` source's disk figures (default: statfs(2) of `root`). */
  readonly statfs?: StatFs;
}

/**
 * Something that went wrong in one collection, for the log (warn) and the source's stats. `code` is
 * stable (see the list in ./exec.ts); `details` go into the log line as fields.
 */
export interface Problem {
  readonly code: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/** What a source's collector does; `report` is how it tells of a problem while it goes on. */
export interface Collector {
  /**
   * Collects once. `at` is the epoch ms the collection started (the messages' default `at`).
   * Resolves early, with what it has, when `signal` aborts (the source is stopping).
   */
  collect(signal: AbortSignal, at: number): Promise<readonly NewMessage[]>;
}

export type Report = (problem: Problem) => void;

export interface SourceStats {
  /** Collections finished (whatever their outcome). */
  readonly runs: number;
  /** Messages the outbox accepted. */
  readonly messages: number;
  /** Problems reported, including failed appends. */
  readonly errors: number;
  readonly lastError: (Problem & { readonly at: number }) | undefined;
  /** Epoch ms of the last collection's start. */
  readonly lastRun: number | undefined;
}

export interface ScheduledSourceOptions {
  /** Stable name, for the log and `status` ("exec:temperature"). */
  readonly name: string;
  /** Seconds between collections (1-86400). */
  readonly intervalSeconds: number;
  readonly deps: SourceDeps;
  readonly collector: (report: Report) => Collector;
}

/**
 * A source on a fixed cadence: collections start at t0, t0 + interval, t0 + 2·interval… where t0
 * is `start()`. A collection that overruns its slot, a clock jump forward or a suspend skips the
 * ticks that were missed (one collection on waking, never a burst); a jump back further than an
 * interval starts the cadence again from now (rather than waiting for the old time to come back).
 * Collections never overlap: the next one starts only after the last one ended.
 */
export class ScheduledSource implements Source {
  readonly name: string;
  readonly #intervalMs: number;
  readonly #deps: SourceDeps;
  readonly #logger: Logger;
  readonly #collector: Collector;
  #controller: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #runs = 0;
  #messages = 0;
  #errors = 0;
  #lastError: SourceStats["lastError"];
  #lastRun: number | undefined;

  constructor(options: ScheduledSourceOptions) {
    this.name = options.name;
    this.#intervalMs = options.intervalSeconds * 1000;
    this.#deps = options.deps;
    this.#logger = options.deps.logger.child({ source: options.name });
    this.#collector = options.collector((problem) => this.#report(problem));
  }

  /**
   * Starts the schedule (the first collection begins at once) and resolves without waiting for it.
   * Idempotent; a stopped source does not start again (build a new one).
   */
  async start(): Promise<void> {
    if (this.#loop !== undefined) return;
    const controller = new AbortController();
    this.#controller = controller;
    this.#loop = this.#run(controller.signal);
  }

  /** Stops the schedule: aborts the wait, ends a running collection (a command is killed), resolves once it ended. */
  async stop(): Promise<void> {
    this.#controller?.abort();
    await this.#loop;
  }

  stats(): SourceStats {
    return {
      runs: this.#runs,
      messages: this.#messages,
      errors: this.#errors,
      lastError: this.#lastError,
      lastRun: this.#lastRun,
    };
  }

  #report(problem: Problem): void {
    this.#errors++;
    this.#lastError = { ...problem, at: this.#deps.clock.now() };
    this.#logger.warn({ code: problem.code, ...problem.details }, problem.message);
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { clock } = this.#deps;
    const interval = this.#intervalMs;
    let tick = clock.now();
    while (!signal.aborted) {
      await this.#collectOnce(signal);
      if (signal.aborted) break;
      const now = clock.now();
      let next = tick + interval;
      if (next <= now) {
        const missed = Math.floor((now - tick) / interval);
        next = tick + (missed + 1) * interval;
        this.#logger.debug(
          { skipped: missed },
          "ticks missed (a long collection, a clock jump or a suspend) skipped",
        );
      } else if (next - now > interval) {
        next = now + interval;
        this.#logger.debug({ backMs: tick - now }, "the clock went back: the cadence starts again from now");
      }
      tick = next;
      try {
        await clock.sleep(next - now, signal);
      } catch (error) {
        if (signal.aborted || isAbortError(error)) break;
        throw error;
      }
    }
  }

  async #collectOnce(signal: AbortSignal): Promise<void> {
    const at = this.#deps.clock.now();
    this.#lastRun = at;
    let messages: readonly NewMessage[] = [];
    try {
      messages = await this.#collector.collect(signal, at);
    } catch (error) {
      // Collectors report their own problems; anything thrown is a bug, logged and survived.
      this.#errors++;
      this.#lastError = { code: "source-failed", message: String(error), at: this.#deps.clock.now() };
      this.#logger.error({ code: "source-failed", err: error }, "the collection failed unexpectedly");
    }
    if (messages.length > 0) {
      try {
        await this.#deps.append(messages);
        this.#messages += messages.length;
      } catch (error) {
        this.#report({
          code: "source-append-failed",
          message: "the outbox refused the messages; they are lost, the source goes on",
          details: { err: error, count: messages.length },
        });
      }
    }
    this.#runs++;
  }
}

/** Builds the source one entry of the configuration's `sources` describes. */
export function createSource(config: SourceConfig, deps: SourceDeps): ScheduledSource {
  switch (config.type) {
    case "system":
      return new ScheduledSource({
        name: `system:${config.topic}`,
        intervalSeconds: config.intervalSeconds,
        deps,
        collector: () =>
          new SystemCollector(config, {
            logger: deps.logger.child({ source: `system:${config.topic}` }),
            root: deps.root ?? "/",
            ...(deps.statfs === undefined ? {} : { statfs: deps.statfs }),
          }),
      });
    case "exec": {
      const name = `exec:${execTopic(config)}`;
      return new ScheduledSource({
        name,
        intervalSeconds: config.intervalSeconds,
        deps,
        collector: (report) =>
          new ExecCollector(config, {
            clock: deps.clock,
            logger: deps.logger.child({ source: name }),
            report,
          }),
      });
    }
  }
}
