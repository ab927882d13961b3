import { abortReason, type Clock } from "./clock.ts";

interface WaitingSleep {
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

export interface VirtualClockOptions {
  /**
   * true (the default): a sleep moves the clock forward by its own length at once and resolves a
   * macrotask later, so a poll loop with 5 s intervals runs in microseconds while every timestamp
   * it reads is what it would be in real time. Meant for one sleeper at a time (a poll loop, a
   * driver's power-on delays).
   * false: sleeps wait until `advance` carries the clock past their deadline, for loops that never
   * end by themselves (an LED pattern, a countdown ticker) or several sleepers at once.
   */
  readonly auto?: boolean;
}

/**
 * Virtual time: for tests, `display preview` (a preview drives the real driver into its
 * simulator, and an e-ink refresh must not take seconds) and benchmarks. One class for all of
 * them, so that what the tests prove about time is what the previews run on.
 *
 * Opt-in additions, all off by default:
 * - `passiveSleepsFromMs`: in auto mode, sleeps at least this long (an overall timeout next to a
 *   poll loop) do not move time themselves; they resolve once other sleeps or `advance` carry the
 *   clock past their deadline.
 * - `hold()`: later sleeps park without moving time until `release()`, so that a test can act
 *   while the code under test is waiting (`whenParked()`).
 * - `onTimeChange`: told every new time, e.g. to move a faked `Date` along.
 * Waiting sleeps (passive, parked, or in manual mode) reject at once when their signal aborts.
 * `sleeps` records every requested delay, ms.
 */
export class VirtualClock implements Clock {
  readonly sleeps: number[] = [];
  /** Sleeps of at least this many ms are passive in auto mode (see the class comment). */
  passiveSleepsFromMs = Number.POSITIVE_INFINITY;
  /** Called with the new time whenever the clock moves (to keep a faked `Date` in step, say). */
  onTimeChange: ((now: number) => void) | undefined;
  /** See VirtualClockOptions.auto. */
  auto: boolean;
  #now: number;
  #held = false;
  readonly #waiting = new Set<WaitingSleep>();
  readonly #parked = new Set<WaitingSleep>();
  readonly #parkWaiters: Array<() => void> = [];

  constructor(start = Date.UTC(2026, 10, 27, 12, 0, 0), options: VirtualClockOptions = {}) {
    this.#now = start;
    this.auto = options.auto ?? true;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward and wakes, in deadline order, every waiting sleep whose deadline has come. */
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
      if (!this.auto || ms >= this.passiveSleepsFromMs) {
        this.#wait(this.#waiting, ms, resolve, reject, signal);
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

  /** Parks every later auto-mode sleep (time stands still for it) until `release()`. */
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

  /** Sleeps waiting for `advance` (manual mode or passive) and not yet due or aborted. */
  get waitingSleeps(): number {
    return this.#waiting.size;
  }

  /** Resolves once at least one sleep is parked. */
  whenParked(): Promise<void> {
    if (this.#parked.size > 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#parkWaiters.push(resolve));
  }

  #drive(ms: number, resolve: () => void, reject: (reason: unknown) => void, signal?: AbortSignal): void {
    this.#move(ms);
    // A macrotask later, as a timer would: callers may rely on other work running meanwhile.
    setImmediate(() => (signal?.aborted ? reject(abortReason(signal)) : resolve()));
  }

  #move(ms: number): void {
    this.#now += Math.max(0, ms);
    this.onTimeChange?.(this.#now);
    const due = [...this.#waiting].filter((waiting) => waiting.deadline <= this.#now);
    for (const waiting of due.sort((a, b) => a.deadline - b.deadline)) {
      this.#waiting.delete(waiting);
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
