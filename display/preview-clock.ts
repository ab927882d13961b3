import { abortReason, type Clock } from "../agent/clock.ts";

interface Sleeper {
  readonly deadline: number;
  readonly resolve: () => void;
}

/**
 * Virtual time for previews: a preview drives the real driver into its simulator, and the
 * drivers wait (power-on delays, BUSY polling, LED patterns) on a Clock. Waiting for real would
 * make a preview of an e-ink refresh take seconds.
 *
 * `auto` (the default): a sleep moves the clock forward by its length at once, for drivers that
 * finish on their own. Otherwise sleeps wait for `advance`, for endless loops (an LED pattern
 * repeats forever, so auto-advance would never return).
 */
export class VirtualClock implements Clock {
  #now: number;
  #auto: boolean;
  readonly #sleepers: Sleeper[] = [];

  constructor(start: number, options: { readonly auto?: boolean } = {}) {
    this.#now = start;
    this.#auto = options.auto ?? true;
  }

  now(): number {
    return this.#now;
  }

  set auto(value: boolean) {
    this.#auto = value;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (this.#auto) {
        this.#now += Math.max(0, ms);
        // A macrotask later, as a timer would: callers may rely on other work running meanwhile.
        setImmediate(resolve);
        return;
      }
      const sleeper: Sleeper = {
        deadline: this.#now + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const at = this.#sleepers.indexOf(sleeper);
        if (at >= 0) this.#sleepers.splice(at, 1);
        reject(abortReason(signal as AbortSignal));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#sleepers.push(sleeper);
    });
  }

  /** Moves time forward and wakes every sleeper whose deadline has come. */
  advance(ms: number): void {
    this.#now += ms;
    const due = this.#sleepers.filter((sleeper) => sleeper.deadline <= this.#now);
    for (const sleeper of due) this.#sleepers.splice(this.#sleepers.indexOf(sleeper), 1);
    for (const sleeper of due.sort((a, b) => a.deadline - b.deadline)) sleeper.resolve();
  }
}
