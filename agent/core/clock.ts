/**
 * Time as a seam. Everything that waits or reads the time takes a Clock, so that tests run on
 * virtual time (see ./virtual-clock.ts) and never sleep.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Resolves after `ms` milliseconds. Rejects at once with `signal.reason` (an AbortError by
   * default) when the signal is or becomes aborted.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

/**
 * Timers hold at most 2^31-1 ms (about 24.8 days); a longer delay would fire at once (with a
 * TimeoutOverflowWarning on stderr). Longer sleeps are taken in steps of this size.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** Real time. `maxStepMs` is for tests of the stepping; leave it at its default. */
export function createSystemClock(maxStepMs = MAX_TIMER_MS): Clock {
  const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const total = Math.max(0, ms);
      const step = Math.min(total, maxStepMs);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(abortReason(signal as AbortSignal));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        if (total > step) sleep(total - step, signal).then(resolve, reject);
        else resolve();
      }, step);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  return { now: () => Date.now(), sleep };
}

export const systemClock: Clock = createSystemClock();
