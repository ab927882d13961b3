import type { SignInService, TokenResult } from "../auth/signin.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, isEntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { SerialQueue } from "../core/serial.ts";
import type { Profile } from "../store/types.ts";
import type { AccessToken, TokenRequest, TokenSource } from "../telemetry/types.ts";

export interface AgentTokensOptions {
  readonly profile: Profile;
  /** The sign-in engine, called silently (never a device code: the keeper shows codes). */
  readonly engine: Pick<SignInService, "getToken">;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Whether the keeper holds a sign-in; while it does not, requests fail at once with E_SIGN_IN_REQUIRED. */
  readonly signedIn: () => boolean;
  /** Told when a silent request found the sign-in gone (the refresh token was refused): the keeper signs in again. */
  readonly onSignInLost: (error: EntraToolError) => void;
}

/** A forced refresh of one set of scopes at most this often, ms. */
const FORCE_REFRESH_EVERY_MS = 30_000;

/** A token this close to its expiry is renewed before it is handed out: min(5 min, a quarter of its life). */
export function renewalMarginMs(lifetimeMs: number): number {
  return Math.min(5 * 60_000, Math.max(0, lifetimeMs) / 4);
}

interface Entry {
  readonly result: TokenResult;
  /** Epoch ms when it was received: its lifetime is expiresAt - receivedAt. */
  readonly receivedAt: number;
}

/**
 * The tokens of one sign-in for everything in the agent that needs one: every sink (each with its
 * own scopes) and the socket's get-token. A person signs in once per board; every other token
 * comes silently from that sign-in's refresh token. Tokens are kept in memory per set of scopes
 * and renewed ahead of expiry, and concurrent requests for the same scopes share one request, so
 * ten sinks and a script asking every second cause one refresh, not eleven. The silent calls go to
 * the engine directly, not through the sign-in session, so that they do not change what the
 * displays show.
 */
export class AgentTokens implements TokenSource {
  readonly #options: AgentTokensOptions;
  readonly #cache = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<TokenResult>>();
  readonly #listeners = new Set<() => void>();
  /** One request to the engine at a time: they would only queue on the profile's lock. */
  readonly #queue = new SerialQueue();

  constructor(options: AgentTokensOptions) {
    this.#options = options;
  }

  async get(request: TokenRequest): Promise<AccessToken> {
    const result = await this.result(request);
    return { accessToken: result.accessToken, expiresAt: result.expiresAt };
  }

  /** Like `get`, with the account and scopes (for the socket's get-token). */
  async result(request: Partial<TokenRequest>): Promise<TokenResult> {
    if (!this.#options.signedIn()) throw new EntraToolError("E_SIGN_IN_REQUIRED");
    const scopes =
      request.scopes && request.scopes.length > 0 ? request.scopes : this.#options.profile.scopes;
    const key = scopeKey(scopes);
    const now = this.#options.clock.now();
    const cached = this.#cache.get(key);
    const usable = cached !== undefined && cached.result.expiresAt > now;
    const fresh =
      usable && cached.result.expiresAt - now > renewalMarginMs(cached.result.expiresAt - cached.receivedAt);
    // A forced refresh (a receiver refused the token) at most every FORCE_REFRESH_EVERY_MS per set
    // of scopes: a receiver that refuses every token must not make the board redeem its refresh
    // token at every retry, nor ten sinks ten times.
    const forced =
      request.forceRefresh === true && !(usable && now - cached.receivedAt < FORCE_REFRESH_EVERY_MS);
    if (fresh && !forced) return cached.result;
    const call = this.#inFlight.get(key) ?? this.#start(key, scopes, forced || cached !== undefined);
    return request.signal ? untilAborted(call, request.signal) : call;
  }

  /**
   * One request to the engine for `key`, shared by every caller that comes while it runs. It
   * carries no caller's signal: one caller giving up (a sink stopped by a reload) must not cancel
   * it for the others; the engine's own timeouts bound it.
   */
  #start(key: string, scopes: readonly string[], forceRefresh: boolean): Promise<TokenResult> {
    const call = this.#fetch(key, scopes, forceRefresh).then((result) => {
      this.#cache.set(key, { result, receivedAt: this.#options.clock.now() });
      return result;
    });
    this.#inFlight.set(key, call);
    const done = (): void => {
      if (this.#inFlight.get(key) === call) this.#inFlight.delete(key);
    };
    call.then(done, done);
    return call;
  }

  /** A new sign-in or a refresh by the keeper: cached tokens of other scopes may belong to an old account. */
  signedInWith(result: TokenResult): void {
    // Filed under the profile's scopes, where `result({})` looks (the keeper asks for those).
    const key = scopeKey(this.#options.profile.scopes);
    const previous = [...this.#cache.values()][0]?.result.account.homeAccountId;
    if (previous !== undefined && previous !== result.account.homeAccountId) this.#cache.clear();
    this.#cache.set(key, { result, receivedAt: this.#options.clock.now() });
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch (error) {
        this.#options.logger.warn({ err: error }, "token change listener failed");
      }
    }
  }

  /** Forgets every token (a sign-out). */
  clear(): void {
    this.#cache.clear();
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async #fetch(key: string, scopes: readonly string[], forceRefresh: boolean): Promise<TokenResult> {
    try {
      return await this.#queue.run(() =>
        this.#options.engine.getToken(this.#options.profile, {
          scopes,
          forceRefresh,
          allowDeviceCode: false,
        }),
      );
    } catch (error) {
      // Only the profile's own scopes speak for the sign-in. A sink's scope that needs consent or
      // MFA of its own is that sink's problem: the keeper's refresh would succeed, wake the sink,
      // and round it would go.
      if (isEntraToolError(error, "E_SIGN_IN_REQUIRED") && key === scopeKey(this.#options.profile.scopes)) {
        this.#options.onSignInLost(error);
      }
      throw error;
    }
  }
}

/** The cache key of a set of scopes: case and order do not matter. */
function scopeKey(scopes: readonly string[]): string {
  return [...scopes]
    .map((scope) => scope.toLowerCase())
    .sort()
    .join(" ");
}

/** Settles with `promise`, or rejects with E_CANCELLED as soon as `signal` aborts (`promise` goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new EntraToolError("E_CANCELLED"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new EntraToolError("E_CANCELLED"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
