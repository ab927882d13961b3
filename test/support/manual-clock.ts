import { abortReason, type Clock } from "../../agent/clock.ts";

interface WaitingSleep {
  readonly ms: number;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * Virtual time for tests. `sleep(ms)` advances the clock by `ms` at once and resolves on the next
 * macrotask, so a poll loop with 5 s intervals runs in microseconds while every timestamp it reads
 * is what it would be in real time. Meant for one sleeper at a time (a poll loop, a refresh timer);
 * `advance` moves time by hand (expiry, clock skew). `sleeps` records every requested delay.
 *
 * Opt-in additions, all off by default:
 * - `passiveSleepsFromMs`: sleeps at least this long (an overall timeout next to a poll loop) do
 *   not move time themselves; they resolve once other sleeps or `advance` carry the clock past
 *   their deadline.
 * - `hold()`: later sleeps park without moving time until `release()`, so that a test can act
 *   while the code under test is waiting (`whenParked()`).
 * - `onTimeChange`: told every new time, e.g. to move a faked `Date` along.
 * Waiting sleeps (passive or parked) reject at once when their signal aborts.
 */
export class ManualClock implements Clock {
  readonly sleeps: number[] = [];
  /** Sleeps of at least this many ms are passive (see the class comment). */
  passiveSleepsFromMs = Number.POSITIVE_INFINITY;
  /** Called with the new time whenever the clock moves (to keep a faked `Date` in step, say). */
  onTimeChange: ((now: number) => void) | undefined;
  #now: number;
  #held = false;
  readonly #passive = new Set<WaitingSleep>();
  readonly #parked = new Set<WaitingSleep>();
  readonly #parkWaiters: Array<() => void> = [];

  constructor(start = Date.UTC(2026, 10, 27, 12, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  advance(ms: number): void {
    this.#move(ms);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (ms >= this.passiveSleepsFromMs) {
        this.#wait(this.#passive, ms, resolve, reject, signal);
        return;
      }
      if (this.#held) {
        this.#wait(this.#parked, ms, resolve, reject, signal);
        for (const wake of this.#parkWaiters.splice(0)) wake();
        return;
      }
      this.#drive(ms, resolve, reject, signal);
    });
  }

  /** Parks every later sleep (time stands still for it) until `release()`. */
  hold(): void {
    this.#held = true;
  }

  /**
   * Stops holding and lets parked sleeps end, in the order they were made: each moves the clock
   * to its deadline (time already `advance`d past it is not counted twice).
   */
  release(): void {
    this.#held = false;
    for (const parked of [...this.#parked]) {
      this.#parked.delete(parked);
      parked.signal?.removeEventListener("abort", parked.onAbort);
      this.#drive(Math.max(0, parked.deadline - this.#now), parked.resolve, parked.reject, parked.signal);
    }
  }

  /** Sleeps parked by `hold()` and not yet released or aborted. */
  get parkedSleeps(): number {
    return this.#parked.size;
  }

  /** Resolves once at least one sleep is parked. */
  whenParked(): Promise<void> {
    if (this.#parked.size > 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#parkWaiters.push(resolve));
  }

  #drive(ms: number, resolve: () => void, reject: (reason: unknown) => void, signal?: AbortSignal): void {
    this.#move(ms);
    setImmediate(() => (signal?.aborted ? reject(abortReason(signal)) : resolve()));
  }

  #move(ms: number): void {
    this.#now += Math.max(0, ms);
    this.onTimeChange?.(this.#now);
    for (const waiting of [...this.#passive]) {
      if (waiting.deadline > this.#now) continue;
      this.#passive.delete(waiting);
      waiting.signal?.removeEventListener("abort", waiting.onAbort);
      waiting.resolve();
    }
  }

  #wait(
    into: Set<WaitingSleep>,
    ms: number,
    resolve: () => void,
    reject: (reason: unknown) => void,
    signal: AbortSignal | undefined,
  ): void {
    const waiting: WaitingSleep = {
      ms,
      deadline: this.#now + Math.max(0, ms),
      resolve,
      reject,
      signal,
      onAbort: () => {
        into.delete(waiting);
        reject(abortReason(signal as AbortSignal));
      },
    };
    into.add(waiting);
    signal?.addEventListener("abort", waiting.onAbort, { once: true });
  }
}
