import { abortReason, type Clock } from "../../agent/clock.ts";

/**
 * Virtual time for tests. `sleep(ms)` advances the clock by `ms` at once and resolves on the next
 * macrotask, so a poll loop with 5 s intervals runs in microseconds while every timestamp it reads
 * is what it would be in real time. Meant for one sleeper at a time (a poll loop, a refresh timer);
 * `advance` moves time by hand (expiry, clock skew). `sleeps` records every requested delay.
 */
export class ManualClock implements Clock {
  readonly sleeps: number[] = [];
  #now: number;

  constructor(start = Date.UTC(2026, 10, 27, 12, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  advance(ms: number): void {
    this.#now += ms;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      this.#now += Math.max(0, ms);
      setImmediate(() => (signal?.aborted ? reject(abortReason(signal)) : resolve()));
    });
  }
}
