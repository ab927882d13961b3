import type { ButtonPress, SignInSession } from "../auth/session.ts";
import type { SessionState } from "../auth/session-state.ts";
import type { TokenResult } from "../auth/signin.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, isEntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { backoffDelay } from "../telemetry/backoff.ts";
import type { AgentTokens } from "./tokens.ts";

export interface KeeperOptions {
  readonly session: SignInSession;
  readonly tokens: AgentTokens;
  readonly clock: Clock;
  readonly logger: Logger;
  /**
   * Milliseconds on a clock that never jumps (CLOCK_MONOTONIC: `performance.now()`). Set against
   * the wall clock, it shows a clock that was set back or forward, and a resume from suspend.
   */
  readonly monotonic: () => number;
  /** [0, 1), for the jitter; default Math.random. */
  readonly random?: () => number;
  /** Codes shown in a row that nobody used before the keeper waits for a button press; default 3. */
  readonly maxUnusedCodes?: number;
  /** Then, how long until the next code without a press, ms; default 1 h. */
  readonly unusedCodesPauseMs?: number;
  /** The longest wait between checks of the clock, ms; default 60 000. */
  readonly checkEveryMs?: number;
}

/** How far ahead of expiry a token is refreshed: a quarter of its life, at most 10 min. */
export function refreshAheadMs(lifetimeMs: number): number {
  return Math.min(10 * 60_000, Math.max(0, lifetimeMs) / 4);
}

/** The spread added ahead of that, so that a fleet does not refresh in lock-step: up to a tenth of the life, at most 5 min. */
export function refreshJitterMs(lifetimeMs: number, random: number): number {
  return Math.min(5 * 60_000, Math.max(0, lifetimeMs) / 10) * random;
}

const NETWORK_BACKOFF = { initialMs: 5_000, maxMs: 5 * 60_000 };
/** Blocked by a Conditional Access policy (AADSTS53003): asking again soon changes nothing. */
const POLICY_BACKOFF = { initialMs: 60 * 60_000, maxMs: 12 * 60 * 60_000 };
/** An app registration or consent problem: an administrator must act; check now and then. */
const CONFIG_BACKOFF = { initialMs: 5 * 60_000, maxMs: 60 * 60_000 };
/** A wall clock that moved this much more (or less) than the monotonic clock has jumped. */
const JUMP_MS = 30_000;

const CONFIG_CODES = new Set([
  "E_APP_REGISTRATION",
  "E_NOT_PUBLIC_CLIENT",
  "E_CONSENT_REQUIRED",
  "E_AUTHORITY",
]);
const UNUSED_CODES = new Set(["E_EXPIRED", "E_DECLINED", "E_BAD_CODE", "E_TIMEOUT"]);

/**
 * Keeps the board signed in, for as long as the agent runs: signs in with a device code when it
 * has to (the session shows the code on every display), refreshes ahead of expiry with jitter,
 * retries an identity provider that is away with capped back-off while the old token lasts,
 * backs off for hours when a policy blocks the sign-in, and stops showing codes after three that
 * nobody used until a button press or an hour has passed. States go to whoever subscribed (the
 * displays, status, the MQTT state topic, sd_notify); they are the session's, plus the keeper's
 * own "sign-in-required" while it waits.
 */
export class Keeper {
  readonly #options: KeeperOptions;
  readonly #stop = new AbortController();
  readonly #listeners = new Set<(state: SessionState) => void>();
  #state: SessionState;
  #loop: Promise<void> | undefined;
  #wakeup: AbortController | undefined;
  #token:
    | { readonly expiresAt: number; readonly lifetimeMs: number; readonly monoExpiresAt: number }
    | undefined;
  #forceRefresh = false;
  #offSession: (() => void) | undefined;

  constructor(options: KeeperOptions) {
    this.#options = options;
    this.#state = options.session.state;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Whether a token is held that has not expired (by both clocks). */
  signedIn(): boolean {
    const token = this.#token;
    if (token === undefined) return false;
    return token.expiresAt > this.#options.clock.now() && token.monoExpiresAt > this.#options.monotonic();
  }

  subscribe(listener: (state: SessionState) => void): () => void {
    this.#listeners.add(listener);
    this.#deliver(listener, this.#state);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  start(): void {
    if (this.#loop) return;
    this.#offSession = this.#options.session.subscribe((state) => {
      // Signed out with the button while the keeper was waiting for the next refresh: the tokens
      // in memory go too, and the next person gets a code at once.
      if (state.kind === "signed-out" && this.#token !== undefined) {
        this.#token = undefined;
        this.#options.tokens.clear();
        this.#wakeup?.abort();
      }
      this.#publish(state);
    });
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort(new EntraToolError("E_CANCELLED"));
    this.#options.session.cancel();
    await this.#loop;
    this.#offSession?.();
  }

  /** The sign-in button: a press also ends a pause after unused codes. */
  press(action: ButtonPress): void {
    if (action === "new-code" && this.#wakeup !== undefined && !this.signedIn()) {
      this.#options.logger.info("new code asked for with the button");
      this.#wakeup.abort();
      return;
    }
    this.#options.session.press(action);
  }

  /** A sink or a client found the refresh token refused: sign in again now. */
  signInLost(error: EntraToolError): void {
    if (this.#token === undefined) return;
    this.#options.logger.warn({ code: error.code }, "the sign-in was lost; signing in again");
    this.#token = undefined;
    this.#forceRefresh = true;
    this.#wakeup?.abort();
  }

  async #run(): Promise<void> {
    const { session, logger } = this.#options;
    const random = this.#options.random ?? Math.random;
    let failures = 0;
    let unusedCodes = 0;
    let policyFailures = 0;
    let configFailures = 0;
    while (!this.#stop.signal.aborted) {
      let result: TokenResult;
      try {
        const forceRefresh = this.#forceRefresh;
        this.#forceRefresh = false;
        result = await session.getToken({ forceRefresh, signal: this.#stop.signal });
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        const code = isEntraToolError(error) ? error.code : "E_INTERNAL";
        if (code === "E_SIGNED_OUT") {
          // A long press on the button: the tokens are gone; the next person signs in at once.
          this.#token = undefined;
          this.#options.tokens.clear();
          continue;
        }
        if (UNUSED_CODES.has(code)) {
          unusedCodes += 1;
          if (unusedCodes >= (this.#options.maxUnusedCodes ?? 3)) {
            const pauseMs = this.#options.unusedCodesPauseMs ?? 60 * 60_000;
            logger.info(
              { codes: unusedCodes },
              "no one signed in with the last codes; waiting for the button",
            );
            this.#publish({
              kind: "sign-in-required",
              profile: session.profile.name,
              reason: {
                code: "E_EXPIRED",
                message: `No one signed in with the last ${unusedCodes} codes: press the button for a new code, or wait ${Math.round(pauseMs / 60_000)} min.`,
              },
            });
            await this.#wait(pauseMs);
            unusedCodes = 0;
          }
          continue;
        }
        let delay: number;
        if (code === "E_POLICY_BLOCKED") {
          policyFailures += 1;
          delay = backoffDelay(policyFailures, { ...POLICY_BACKOFF, random });
          logger.warn(
            { code, delayMs: delay },
            "the sign-in is blocked by a Conditional Access policy; trying again later",
          );
        } else if (CONFIG_CODES.has(code)) {
          configFailures += 1;
          delay = backoffDelay(configFailures, { ...CONFIG_BACKOFF, random });
          logger.error({ code, delayMs: delay }, (error as Error).message);
        } else {
          // The identity provider is away (network, 5xx, throttled): the old token serves meanwhile.
          failures += 1;
          const retryAfter = isEntraToolError(error) ? error.details.retryAfterMs : undefined;
          delay =
            typeof retryAfter === "number"
              ? Math.min(retryAfter, 10 * 60_000)
              : backoffDelay(failures, { ...NETWORK_BACKOFF, random });
          logger.warn(
            { code, delayMs: delay, signedIn: this.signedIn() },
            "getting a token failed; trying again",
          );
          // While the old token lasts, the next try is a refresh again.
          if (this.#token !== undefined) this.#forceRefresh = true;
        }
        await this.#wait(delay);
        continue;
      }
      failures = 0;
      unusedCodes = 0;
      policyFailures = 0;
      configFailures = 0;
      const now = this.#options.clock.now();
      const lifetimeMs = Math.max(0, result.expiresAt - now);
      this.#token = {
        expiresAt: result.expiresAt,
        lifetimeMs,
        monoExpiresAt: this.#options.monotonic() + lifetimeMs,
      };
      this.#options.tokens.signedInWith(result);
      await this.#untilRefreshDue(refreshAheadMs(lifetimeMs) + refreshJitterMs(lifetimeMs, random()));
      this.#forceRefresh = true;
    }
  }

  /**
   * Waits until the token is `aheadMs` from its expiry by either clock, checking at least every
   * `checkEveryMs`: a wall clock set back a day would otherwise postpone the refresh by a day, and
   * one set forward (or a resume from suspend) finds the token expired at the next check.
   */
  async #untilRefreshDue(aheadMs: number): Promise<void> {
    const { clock, monotonic, logger } = this.#options;
    const check = this.#options.checkEveryMs ?? 60_000;
    let wall = clock.now();
    let mono = monotonic();
    while (!this.#stop.signal.aborted && this.#token !== undefined) {
      const token = this.#token;
      const left = Math.min(token.expiresAt - clock.now(), token.monoExpiresAt - monotonic()) - aheadMs;
      if (left <= 0) return;
      const woken = await this.#wait(Math.min(left, check));
      if (woken) return;
      const wallNow = clock.now();
      const monoNow = monotonic();
      const skew = wallNow - wall - (monoNow - mono);
      if (Math.abs(skew) > JUMP_MS) {
        logger.warn({ jumpMs: Math.round(skew) }, "the system clock jumped; checking the token now");
        // The expiry was reckoned on the old clock: refresh, which sets it on the new one.
        return;
      }
      wall = wallNow;
      mono = monoNow;
    }
  }

  /** Sleeps `ms`; true when woken early (button, sign-in lost), false at the end or on stop. */
  async #wait(ms: number): Promise<boolean> {
    const wakeup = new AbortController();
    this.#wakeup = wakeup;
    try {
      await this.#options.clock.sleep(ms, AbortSignal.any([wakeup.signal, this.#stop.signal]));
      return false;
    } catch {
      return wakeup.signal.aborted && !this.#stop.signal.aborted;
    } finally {
      if (this.#wakeup === wakeup) this.#wakeup = undefined;
    }
  }

  #publish(state: SessionState): void {
    this.#state = state;
    for (const listener of [...this.#listeners]) this.#deliver(listener, state);
  }

  #deliver(listener: (state: SessionState) => void, state: SessionState): void {
    try {
      listener(state);
    } catch (error) {
      this.#options.logger.warn({ err: error, state: state.kind }, "state listener failed");
    }
  }
}
