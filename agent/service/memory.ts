import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";

export interface MemoryKeeperOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** The JavaScript heap in use, bytes (`process.memoryUsage().heapUsed`). */
  readonly heapUsed: () => number;
  /** A full, synchronous collection (`Bun.gc(true)`). */
  readonly collect: () => void;
  /** How often the heap is looked at, ms; default 10 000. */
  readonly everyMs?: number;
  /** Growth since the last collection that calls for one, bytes; default 16 MiB. */
  readonly growthBytes?: number;
}

/**
 * Keeps the agent's memory near its working set. The garbage collector lets the heap grow to tens
 * of MiB of garbage between full collections when telemetry pours in (a `send` of 20 000 messages
 * is 2.4 MB of JSON to parse), which a board with 512 MB cannot spare for long: every 10 s, a heap
 * that grew by 16 MiB since the last look gets a full collection (a few ms for a heap this size).
 */
export class MemoryKeeper {
  readonly #options: MemoryKeeperOptions;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #baseline = 0;
  collections = 0;

  constructor(options: MemoryKeeperOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#loop) return;
    this.#baseline = this.#options.heapUsed();
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  /** Looks at the heap now (also called by the loop). */
  check(): void {
    const growth = this.#options.growthBytes ?? 16 * 1024 * 1024;
    const used = this.#options.heapUsed();
    if (used - this.#baseline < growth) return;
    const started = performance.now();
    this.#options.collect();
    this.collections += 1;
    this.#baseline = this.#options.heapUsed();
    this.#options.logger.debug(
      { before: used, after: this.#baseline, ms: Math.round(performance.now() - started) },
      "heap collected",
    );
  }

  async #run(): Promise<void> {
    const every = this.#options.everyMs ?? 10_000;
    while (!this.#stop.signal.aborted) {
      try {
        await this.#options.clock.sleep(every, this.#stop.signal);
      } catch {
        return;
      }
      this.check();
    }
  }
}
