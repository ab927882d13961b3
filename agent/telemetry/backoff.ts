/**
 * Capped exponential back-off with jitter, shared by the sink runner and the sign-in keeper: a
 * fleet that lost its network at the same moment must not come back in lock-step.
 */
export interface BackoffOptions {
  /** First delay, ms. */
  readonly initialMs: number;
  /** Largest delay, ms. */
  readonly maxMs: number;
  /** [0, 1): injected for tests; default Math.random. */
  readonly random?: () => number;
}

/**
 * The delay before attempt `failures` + 1 after `failures` failures in a row (≥ 1): the capped
 * exponential value, less up to half of it at random ("equal jitter": never less than half the
 * step, so a failing receiver is not hammered).
 */
export function backoffDelay(failures: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random;
  const exponent = Math.max(0, Math.min(failures - 1, 30));
  const step = Math.min(options.maxMs, options.initialMs * 2 ** exponent);
  return Math.round(step / 2 + (step / 2) * random());
}
