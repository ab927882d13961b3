import type { Clock } from "../../core/clock.ts";
import { isAbortError, isEntraToolError } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import { safeLine } from "../../core/text.ts";
import { backoffDelay } from "../backoff.ts";
import { isSinkError, type Outbox, type Sink, type SinkHealth, type StoredMessage } from "../types.ts";

export interface SinkRunnerOptions {
  readonly sink: Sink;
  /** The sink's config type ("mqtt", "http"…), for status. */
  readonly type: string;
  readonly outbox: Outbox;
  readonly clock: Clock;
  readonly logger: Logger;
  /** First retry delay after a failure, ms; default 1000. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay, ms; default 300 000 (5 min). */
  readonly maxBackoffMs?: number;
  /** A server's Retry-After is honoured up to this, ms; default 600 000 (10 min). */
  readonly maxRetryAfterMs?: number;
  /**
   * While nobody is signed in, how long until the runner asks for a token again by itself, ms
   * (a sign-in wakes it at once through `wake()`); default 60 000.
   */
  readonly signInPollMs?: number;
  /** [0, 1) for the back-off's jitter; default Math.random. */
  readonly random?: () => number;
}

/** Codes of the sign-in that mean "nobody is signed in": wait for a person, do not count errors. */
const SIGN_IN_CODES = new Set(["E_SIGN_IN_REQUIRED", "E_SIGNED_OUT", "E_WRONG_ACCOUNT", "E_EXPIRED"]);

/** "idle" until the first batch was delivered; then "ok" until a send fails. */
type RunnerState = "idle" | "ok" | "retrying" | "waiting-for-sign-in" | "stopped";

/**
 * The one wrapper around every sink (in the manner of Telegraf's running output): reads batches
 * after the sink's cursor in the outbox, sends them, and acknowledges what the receiver accepted;
 * retries with capped exponential back-off (a server's Retry-After first), forces one token
 * refresh when the receiver refuses the token, dead-letters batches refused for good, and keeps
 * the sink's health. Each sink has its own runner and cursor: a slow or failing sink never holds
 * back another. Delivery is at-least-once (a batch whose acknowledgement was lost is sent again;
 * the receiver drops duplicates by message id).
 */
export class SinkRunner {
  readonly #options: SinkRunnerOptions;
  readonly #stop = new AbortController();
  #wakeup: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #draining = false;
  #state: RunnerState = "idle";
  #lastSuccess: number | undefined;
  #sent = 0;
  #errors = 0;
  #deadLettered = 0;
  #lastError: string | undefined;
  #offAppend: (() => void) | undefined;
  #woken = false;
  #offConnected: (() => void) | undefined;
  /** Aborted to cut a back-off short (the sink connected again). */
  #backoff: AbortController | undefined;
  #waitingForToken = false;
  #started = false;

  constructor(options: SinkRunnerOptions) {
    this.#options = options;
  }

  get name(): string {
    return this.#options.sink.name;
  }

  /** Registers the cursor, starts the sink and the send loop. Idempotent. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const { sink, outbox } = this.#options;
    outbox.register(sink.name);
    this.#offAppend = outbox.onAppend(() => this.wake());
    // A connection back (a broker away for minutes): retry now, not at the end of the back-off.
    this.#offConnected = sink.onConnected?.(() => this.#backoff?.abort());
    // The sink first: messages left from the last run are sent as soon as the loop starts.
    try {
      await sink.start();
    } finally {
      this.#loop = this.#run();
    }
  }

  /**
   * Ends a wait for new messages or for a sign-in at once (new messages, new tokens). A wake that
   * comes while no wait is under way (a send in flight) ends the next wait, so none is lost.
   */
  wake(): void {
    // New messages change nothing for a runner that waits for a token: asking again at every
    // append would make a request to the identity provider per message.
    if (this.#waitingForToken) return;
    if (this.#wakeup) this.#wakeup.abort();
    else this.#woken = true;
  }

  /** New tokens (a sign-in, a refresh): ends a wait for a token, or any other wait. */
  tokensChanged(): void {
    if (this.#wakeup) this.#wakeup.abort();
    else this.#woken = true;
  }

  /**
   * Sends what is pending for at most `drainMs` (a receiver that is away is not waited for
   * longer), then stops the loop and the sink. Idempotent.
   */
  async stop(drainMs = 0): Promise<void> {
    if (!this.#loop) {
      this.#state = "stopped";
      return;
    }
    this.#draining = true;
    this.tokensChanged();
    const timer = new AbortController();
    const loop = this.#loop.then(
      () => true,
      () => true,
    );
    const drained = await Promise.race([
      loop,
      this.#options.clock.sleep(drainMs, timer.signal).then(
        () => false,
        () => false,
      ),
    ]);
    timer.abort();
    if (!drained) this.#stop.abort();
    try {
      await loop;
    } finally {
      this.#offAppend?.();
      this.#offConnected?.();
      this.#state = "stopped";
      await this.#options.sink.stop();
    }
  }

  health(now: number): SinkHealth {
    const { sink, type, outbox } = this.#options;
    const cursor = outbox.stats(now).sinks[sink.name];
    return {
      name: sink.name,
      type,
      connected: sink.connected(),
      state: this.#state,
      lastSuccess: this.#lastSuccess,
      pending: cursor?.pending ?? 0,
      lagMs: cursor?.lagMs ?? 0,
      sent: this.#sent,
      errors: this.#errors,
      deadLettered: this.#deadLettered,
      lastError: this.#lastError,
    };
  }

  async #run(): Promise<void> {
    const { sink, outbox, logger } = this.#options;
    let failures = 0;
    let forceRefresh = false;
    while (!this.#stop.signal.aborted) {
      let batch: readonly StoredMessage[];
      try {
        batch = outbox.read(sink.name, sink.maxBatchMessages, sink.maxBatchBytes);
      } catch (error) {
        // The outbox could not be read (a disk error): say so, and try again after a while.
        failures += 1;
        const delay = backoffDelay(failures, { initialMs: 1000, maxMs: 60_000 });
        logger.error(
          { sink: sink.name, err: error, delayMs: delay },
          `sink ${sink.name} cannot read the outbox`,
        );
        await this.#options.clock.sleep(delay, this.#stop.signal).catch(() => {});
        continue;
      }
      if (batch.length === 0) {
        if (this.#draining) return;
        await this.#idle();
        continue;
      }
      // A forced refresh is asked for once per refusal, not for every retry after it.
      const forced = forceRefresh;
      forceRefresh = false;
      try {
        await sink.send(batch, { signal: this.#stop.signal, forceRefresh: forced });
        outbox.ack(sink.name, (batch.at(-1) as StoredMessage).seq);
        this.#sent += batch.length;
        this.#lastSuccess = this.#options.clock.now();
        if (failures > 0) logger.info({ sink: sink.name }, `sink ${sink.name} delivers again`);
        failures = 0;
        forceRefresh = false;
        this.#state = "ok";
      } catch (error) {
        if (this.#stop.signal.aborted || isAbortError(error)) return;
        const next = this.#failed(batch, error, forced);
        if (next.kind === "dead-letter") {
          try {
            outbox.deadLetter(sink.name, batch, next.reason);
            this.#deadLettered += batch.length;
          } catch (deadLetterError) {
            // Not kept aside: the batch stays after the cursor and is sent again later.
            logger.error(
              { sink: sink.name, err: deadLetterError },
              `sink ${sink.name} cannot keep a dead letter`,
            );
            await this.#options.clock.sleep(60_000, this.#stop.signal).catch(() => {});
          }
          continue;
        }
        if (next.kind === "refresh") {
          forceRefresh = true;
          continue;
        }
        if (next.kind === "sign-in") {
          // Waits for a token: a sign-in or a refresh wakes the runner (tokensChanged), or the poll.
          this.#state = "waiting-for-sign-in";
          if (this.#draining) return;
          this.#waitingForToken = true;
          try {
            await this.#idle(this.#options.signInPollMs ?? 60_000);
          } finally {
            this.#waitingForToken = false;
          }
          continue;
        }
        failures += 1;
        this.#state = "retrying";
        // Draining a sink that fails: what is left waits in the outbox for the next start.
        if (this.#draining) return;
        const delay =
          next.retryAfterMs !== undefined
            ? Math.min(next.retryAfterMs, this.#options.maxRetryAfterMs ?? 600_000)
            : backoffDelay(failures, {
                initialMs: this.#options.initialBackoffMs ?? 1000,
                maxMs: this.#options.maxBackoffMs ?? 300_000,
                ...(this.#options.random ? { random: this.#options.random } : {}),
              });
        logger.debug({ sink: sink.name, delayMs: delay, failures }, "sink send will be retried");
        const backoff = new AbortController();
        this.#backoff = backoff;
        await this.#options.clock
          .sleep(delay, AbortSignal.any([this.#stop.signal, backoff.signal]))
          .catch(() => {});
        if (this.#backoff === backoff) this.#backoff = undefined;
      }
    }
  }

  /** Classifies a failed send (and logs it once per kind of failure, not once per retry). */
  #failed(
    batch: readonly StoredMessage[],
    error: unknown,
    refreshed: boolean,
  ):
    | { kind: "dead-letter"; reason: string }
    | { kind: "refresh" }
    | { kind: "sign-in" }
    | { kind: "retry"; retryAfterMs: number | undefined } {
    const { sink, logger } = this.#options;
    if (isEntraToolError(error) && SIGN_IN_CODES.has(error.code)) {
      if (this.#state !== "waiting-for-sign-in")
        logger.info({ sink: sink.name, code: error.code }, `sink ${sink.name} waits for a sign-in`);
      return { kind: "sign-in" };
    }
    if (isEntraToolError(error)) {
      // No token now (the identity provider is away, a scope not consented): the keeper retries
      // with its own back-off and every new token wakes this runner; a back-off of its own would
      // only grow while the provider is away and delay the delivery after it is back.
      const message = safeLine(error.message);
      if (message !== this.#lastError)
        logger.warn({ sink: sink.name, code: error.code }, `sink ${sink.name} has no token: ${message}`);
      this.#errors += 1;
      this.#lastError = message;
      return { kind: "sign-in" };
    }
    const message = safeLine(error instanceof Error ? error.message : String(error));
    const changed = message !== this.#lastError;
    this.#errors += 1;
    this.#lastError = message;
    if (isSinkError(error)) {
      if (error.failure === "reject") {
        logger.warn(
          { sink: sink.name, status: error.status, messages: batch.length, firstId: batch[0]?.id },
          `sink ${sink.name} refused a batch for good; it is kept as a dead letter: ${message}`,
        );
        return { kind: "dead-letter", reason: message };
      }
      if (error.failure === "unauthorized" && !refreshed) {
        logger.info(
          { sink: sink.name, status: error.status },
          `sink ${sink.name} refused the token; refreshing it once`,
        );
        return { kind: "refresh" };
      }
      if (changed) logger.warn({ sink: sink.name, status: error.status }, `sink ${sink.name}: ${message}`);
      return { kind: "retry", retryAfterMs: error.retryAfterMs };
    }
    // The sink failed unexpectedly.
    if (changed) logger.warn({ sink: sink.name, err: error }, `sink ${sink.name}: ${message}`);
    return { kind: "retry", retryAfterMs: undefined };
  }

  /** Waits for `wake()` (or `ms`, when given), or the stop. */
  async #idle(ms?: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return;
    }
    const wakeup = new AbortController();
    this.#wakeup = wakeup;
    const signal = AbortSignal.any([wakeup.signal, this.#stop.signal]);
    if (this.#draining) return;
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
      if (ms !== undefined) this.#options.clock.sleep(ms, signal).then(resolve, resolve);
    });
    if (this.#wakeup === wakeup) this.#wakeup = undefined;
  }
}
