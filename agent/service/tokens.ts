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
    const key = [...scopes]
      .map((scope) => scope.toLowerCase())
      .sort()
      .join(" ");
    const now = this.#options.clock.now();
    const cached = this.#cache.get(key);
    const fresh =
      cached !== undefined &&
      cached.result.expiresAt - now > renewalMarginMs(cached.result.expiresAt - cached.receivedAt);
    if (fresh && !request.forceRefresh) return cached.result;
    const pending = this.#inFlight.get(key);
    if (pending && !request.forceRefresh) return pending;
    // A cached token close to its expiry would come back from the engine's cache as it is: ask
    // for a new one then.
    const call = this.#fetch(scopes, request.forceRefresh === true || cached !== undefined, request.signal);
    this.#inFlight.set(key, call);
    try {
      const result = await call;
      this.#cache.set(key, { result, receivedAt: this.#options.clock.now() });
      return result;
    } finally {
      if (this.#inFlight.get(key) === call) this.#inFlight.delete(key);
    }
  }

  /** A new sign-in or a refresh by the keeper: cached tokens of other scopes may belong to an old account. */
  signedInWith(result: TokenResult): void {
    const key = [...result.scopes]
      .map((scope) => scope.toLowerCase())
      .sort()
      .join(" ");
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

  async #fetch(scopes: readonly string[], forceRefresh: boolean, signal?: AbortSignal): Promise<TokenResult> {
    try {
      return await this.#queue.run(() =>
        this.#options.engine.getToken(this.#options.profile, {
          scopes,
          forceRefresh,
          allowDeviceCode: false,
          ...(signal ? { signal } : {}),
        }),
      );
    } catch (error) {
      if (isEntraToolError(error, "E_SIGN_IN_REQUIRED")) this.#options.onSignInLost(error);
      throw error;
    }
  }
}
