import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from "@azure/msal-node";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, isEntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Env } from "../core/paths.ts";
import {
  classifyTokenError,
  isOAuthErrorBody,
  type OAuthErrorBody,
  pollContinuation,
} from "./entra-errors.ts";
import { proxyFor } from "./proxy.ts";
import type { PollEvent } from "./session-state.ts";

/** The subset of `fetch` we use; Bun's `proxy` option is how a proxy is applied per request. */
export type FetchLike = (url: string, init: RequestInit & { proxy?: string }) => Promise<Response>;

export type { PollEvent };

export interface NetworkClientOptions {
  readonly fetch: FetchLike;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Proxy variables are read from here (HTTPS_PROXY, NO_PROXY…), not from process.env. */
  readonly env: Env;
  /** Aborts every request and every wait of this client at once (Ctrl+C, --timeout, shutdown). */
  readonly signal: AbortSignal;
  /** Timeout of one HTTP request, ms. Default 30 000. */
  readonly requestTimeoutMs?: number;
  /** Attempts for a request outside device code polling (discovery, device code, refresh). Default 3. */
  readonly maxAttempts?: number;
  /** Longest single back-off outside polling, Retry-After included, ms. Default 30 000. */
  readonly maxBackoffMs?: number;
  readonly onPoll?: (event: PollEvent) => void;
}

/** RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default." */
export const DEFAULT_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: every slow_down adds 5 seconds to the interval, for all later polls. */
export const SLOW_DOWN_STEP_SECONDS = 5;
const DEFAULT_EXPIRES_IN_SECONDS = 900;
/** Back-off between failed polls grows to this and stays there (still bounded by the code's expiry). */
const MAX_POLL_BACKOFF_MS = 60_000;

interface DeviceCodeFlow {
  intervalMs: number;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** Thrown inside the client for a failed exchange that may succeed if repeated. */
class TransientFailure extends Error {
  constructor(
    readonly reason: string,
    readonly retryAfterMs: number | undefined,
    readonly response: NetworkResponse<unknown> | undefined,
    options?: ErrorOptions,
  ) {
    super(reason, options);
  }
}

const TLS_ERROR = /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY|HOSTNAME/i;

function errorCode(error: unknown): string {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return error instanceof Error ? error.name : "unknown";
}

/** Retry-After as seconds or an HTTP date, in ms from `now`; undefined when absent or invalid. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function formField(body: string | undefined, name: string): string | undefined {
  if (!body) return undefined;
  return new URLSearchParams(body).get(name) ?? undefined;
}

function isDeviceCodeGrant(grantType: string | undefined): boolean {
  return grantType === "device_code" || grantType === "urn:ietf:params:oauth:grant-type:device_code";
}

function positiveNumber(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : undefined;
}

/**
 * msal-node's network seam, with the parts of RFC 8628 that msal-node gets wrong put right
 * (FACTS.md "Where msal-node departs from RFC 8628"):
 *
 * - A device code poll (`grant_type=device_code`) is held here until it has an answer MSAL can
 *   act on: success or a terminal error. `authorization_pending` and `slow_down` are handled
 *   here, so MSAL's own loop (which ends on `slow_down`) never sees them.
 * - Polls are never closer than the interval (5 s when the server gives none); every `slow_down`
 *   adds 5 s for all later polls.
 * - 5xx, 429 (honouring Retry-After), connection resets and timeouts during polling are retried
 *   until the code expires: the person may already have typed it.
 * - Every request and wait is cut short by `signal`, and the request in flight is aborted.
 * - Proxies come from the injected environment.
 *
 * MSAL wraps any non-MSAL error thrown here into a generic `network_error`, so the precise
 * failure is kept on the client: after MSAL throws, `takeFailure()` says what really happened.
 * One client serves one sign-in operation (it holds that operation's abort signal).
 */
export class EntraNetworkClient implements INetworkModule {
  readonly #options: NetworkClientOptions;
  readonly #flows = new Map<string, DeviceCodeFlow>();
  #failure: EntraToolError | undefined;

  constructor(options: NetworkClientOptions) {
    this.#options = options;
  }

  /** The failure behind the last error MSAL reported, once; undefined if there was none. */
  takeFailure(): EntraToolError | undefined {
    const failure = this.#failure;
    this.#failure = undefined;
    return failure;
  }

  async sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    this.#failure = undefined;
    return (await this.#withRetry(url, "GET", options, timeout)) as NetworkResponse<T>;
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    // What a failure means belongs to the request that failed; an earlier one MSAL got over is stale.
    this.#failure = undefined;
    const grantType = formField(options?.body, "grant_type");
    const deviceCode = formField(options?.body, "device_code");
    if (isDeviceCodeGrant(grantType) && deviceCode) {
      return (await this.#poll(url, options, deviceCode)) as NetworkResponse<T>;
    }
    const response = await this.#withRetry(url, "POST", options);
    if (new URL(url).pathname.endsWith("/devicecode")) {
      return this.#acceptDeviceCode(response) as NetworkResponse<T>;
    }
    if (isOAuthErrorBody(response.body)) {
      this.#failure = classifyTokenError(
        response.body,
        grantType === "refresh_token" ? "refresh" : "device-code",
      );
    }
    return response as NetworkResponse<T>;
  }

  /** Validates a device authorization response and remembers its timing for the polls that follow. */
  #acceptDeviceCode(response: NetworkResponse<unknown>): NetworkResponse<unknown> {
    const body = response.body;
    if (isOAuthErrorBody(body)) {
      // Thrown, not returned: MSAL would hand an error body to deviceCodeCallback as if it were a
      // code (a screen showing "undefined") and then poll with it. A failure #withRetry already
      // recorded (retries used up on 429/5xx) says more than the body does.
      throw this.#fail(this.#failure ?? classifyTokenError(body, "device-code"));
    }
    const record = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    const { device_code: deviceCode, user_code: userCode, verification_uri: verificationUri } = record;
    if (
      typeof deviceCode !== "string" ||
      typeof userCode !== "string" ||
      typeof verificationUri !== "string"
    ) {
      throw this.#fail(
        new EntraToolError("E_IDP", {
          message:
            "Microsoft Entra ID sent an incomplete device code response. Check the authority host in the profile.",
          details: { status: response.status },
        }),
      );
    }
    const intervalSeconds = Math.max(1, positiveNumber(record.interval) ?? DEFAULT_INTERVAL_SECONDS);
    const expiresIn = positiveNumber(record.expires_in) ?? DEFAULT_EXPIRES_IN_SECONDS;
    const now = this.#options.clock.now();
    this.#flows.set(deviceCode, {
      intervalMs: intervalSeconds * 1000,
      issuedAt: now,
      expiresAt: now + expiresIn * 1000,
    });
    // MSAL sleeps `interval` itself between pending polls and spins without one: hand it a sane value.
    return { ...response, body: { ...record, interval: intervalSeconds, expires_in: expiresIn } };
  }

  async #poll(url: string, options: NetworkRequestOptions | undefined, deviceCode: string) {
    const { clock, logger, onPoll } = this.#options;
    const flow = this.#flows.get(deviceCode) ?? {
      intervalMs: DEFAULT_INTERVAL_SECONDS * 1000,
      issuedAt: clock.now(),
      expiresAt: clock.now() + DEFAULT_EXPIRES_IN_SECONDS * 1000,
    };
    let nextAt = flow.issuedAt + flow.intervalMs;
    let failures = 0;
    for (;;) {
      if (nextAt >= flow.expiresAt) {
        await this.#sleepUntil(flow.expiresAt);
        const body: OAuthErrorBody = {
          error: "expired_token",
          error_description: "device code expired (client)",
        };
        this.#failure = classifyTokenError(body, "device-code");
        return { status: 400, headers: {}, body };
      }
      await this.#sleepUntil(nextAt);
      try {
        const response = await this.#exchange(url, "POST", options);
        failures = 0;
        const body = response.body;
        const continuation = isOAuthErrorBody(body) ? pollContinuation(body) : undefined;
        if (continuation === "authorization_pending") {
          onPoll?.({ type: "pending" });
        } else if (continuation === "slow_down") {
          flow.intervalMs += SLOW_DOWN_STEP_SECONDS * 1000;
          logger.info(
            { intervalSeconds: flow.intervalMs / 1000 },
            "server asked to slow down; interval raised",
          );
          onPoll?.({ type: "slow-down", intervalSeconds: flow.intervalMs / 1000 });
        } else {
          if (isOAuthErrorBody(body)) this.#failure = classifyTokenError(body, "device-code");
          this.#flows.delete(deviceCode);
          return response;
        }
        // Counted from the answer, not the request: the server sees polls at least `interval` apart
        // however long the last one took on the wire.
        nextAt = clock.now() + flow.intervalMs;
      } catch (error) {
        if (!(error instanceof TransientFailure)) throw this.#fail(error);
        failures += 1;
        const backoff = Math.min(MAX_POLL_BACKOFF_MS, flow.intervalMs * 2 ** (failures - 1));
        const delayMs = Math.max(flow.intervalMs, error.retryAfterMs ?? backoff);
        logger.info(
          { reason: error.reason, delayMs, failures },
          "poll failed; retrying while the code is valid",
        );
        onPoll?.({ type: "retry", reason: error.reason, delayMs });
        nextAt = clock.now() + delayMs;
      }
    }
  }

  async #withRetry(url: string, method: "GET" | "POST", options?: NetworkRequestOptions, timeoutMs?: number) {
    const { clock, logger } = this.#options;
    const maxAttempts = this.#options.maxAttempts ?? 3;
    const maxBackoffMs = this.#options.maxBackoffMs ?? 30_000;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#exchange(url, method, options, timeoutMs);
      } catch (error) {
        if (!(error instanceof TransientFailure)) throw this.#fail(error);
        if (attempt >= maxAttempts) {
          // Out of attempts: an HTTP answer goes to MSAL (it throttles and reports it); a dead link fails here.
          if (error.response) {
            // Still 429/5xx after every attempt: the service is unavailable, whatever the body
            // says (Entra's are JSON `server_error` / `temporarily_unavailable`).
            const body = error.response.body;
            this.#failure = new EntraToolError("E_NETWORK", {
              message: `Microsoft Entra ID is unavailable (${error.reason}). Try again in a few minutes.`,
              details: {
                reason: error.reason,
                ...(isOAuthErrorBody(body) ? { error: body.error, error_codes: body.error_codes } : {}),
              },
            });
            return error.response;
          }
          throw this.#fail(
            new EntraToolError("E_NETWORK", { cause: error, details: { reason: error.reason } }),
          );
        }
        const delayMs = Math.min(maxBackoffMs, error.retryAfterMs ?? 500 * 2 ** (attempt - 1));
        logger.info({ reason: error.reason, attempt, delayMs }, "request failed; retrying");
        await clock.sleep(delayMs, this.#options.signal);
      }
    }
  }

  /**
   * One HTTP exchange. Returns a parsed response for anything final (2xx, 4xx); throws
   * TransientFailure for what may pass (5xx, 429, resets, timeouts), EntraToolError otherwise.
   */
  async #exchange(
    url: string,
    method: "GET" | "POST",
    options?: NetworkRequestOptions,
    timeoutMs?: number,
  ): Promise<NetworkResponse<unknown>> {
    const { fetch, clock, logger, env, signal } = this.#options;
    signal.throwIfAborted();
    const target = new URL(url);
    const proxy = proxyFor(target, env);
    const timeout = AbortSignal.timeout(timeoutMs ?? this.#options.requestTimeoutMs ?? 30_000);
    const started = clock.now();
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: options?.headers ?? {},
        ...(options?.body === undefined ? {} : { body: options.body }),
        signal: AbortSignal.any([signal, timeout]),
        ...(proxy ? { proxy } : {}),
      });
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      const code = errorCode(error);
      if (timeout.aborted) throw new TransientFailure("timeout", undefined, undefined, { cause: error });
      if (TLS_ERROR.test(code)) {
        throw new EntraToolError("E_TLS", { cause: error, details: { code, host: target.host } });
      }
      throw new TransientFailure(`connection failed (${code})`, undefined, undefined, { cause: error });
    }
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      headers[name.toLowerCase()] = value;
    });
    logger.debug(
      {
        method,
        host: target.host,
        path: target.pathname,
        status: response.status,
        ms: clock.now() - started,
      },
      "identity provider request",
    );
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = undefined;
    }
    const result = { status: response.status, headers, body };
    if (response.status === 429 || response.status >= 500) {
      const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), clock.now());
      throw new TransientFailure(
        `HTTP ${response.status}`,
        retryAfterMs,
        body === undefined ? undefined : result,
      );
    }
    if (body === undefined || typeof body !== "object" || body === null) {
      throw new EntraToolError("E_IDP", {
        message: `The identity provider sent a response that is not JSON (HTTP ${response.status}). Check the authority host and any proxy in between.`,
        details: { status: response.status, contentType: headers["content-type"] },
      });
    }
    return result;
  }

  async #sleepUntil(at: number): Promise<void> {
    const { clock, signal } = this.#options;
    const delay = at - clock.now();
    if (delay > 0) await clock.sleep(delay, signal);
    signal.throwIfAborted();
  }

  /** Records an error as the failure behind MSAL's next exception and returns it for throwing. */
  #fail(error: unknown): unknown {
    if (isEntraToolError(error)) this.#failure = error;
    return error;
  }
}
