import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from "@azure/msal-node";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, errnoCode, isEntraToolError } from "../core/errors.ts";
import { parseRetryAfter, shownUrl } from "../core/http.ts";
import { isRecord } from "../core/json.ts";
import type { Logger } from "../core/log.ts";
import type { Env } from "../core/paths.ts";
import { safeLine } from "../core/text.ts";
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

/** Where the identity provider wants its requests, from its OpenID configuration (./discovery.ts). */
export interface ProviderEndpoints {
  readonly tokenEndpoint: string;
  readonly deviceAuthorizationEndpoint: string;
  /**
   * Microsoft Entra ID (or its emulator): its token endpoint gets msal-node's polls unchanged
   * (`grant_type=device_code`); any other gets RFC 8628's URN.
   */
  readonly entra: boolean;
}

/** A device authorization response as it was validated, control characters removed. */
export interface DeviceCodeDetails {
  readonly userCode: string;
  /** An https URL. */
  readonly verificationUri: string;
  /** RFC 8628 §3.3.1, when the provider sent one (an https URL). */
  readonly verificationUriComplete?: string;
  /** The provider's own instruction, on one line, when it sent one. */
  readonly message?: string;
  readonly expiresInSeconds: number;
  readonly intervalSeconds: number;
}

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
  /** Longest back-off between those attempts when the server names no Retry-After, ms. Default 30 000. */
  readonly maxBackoffMs?: number;
  /** Longest Retry-After honoured between those attempts, ms. Default MAX_RETRY_AFTER_MS (10 min). */
  readonly maxRetryAfterMs?: number;
  /** Largest response body read from the identity provider, bytes. Default MAX_RESPONSE_BYTES. */
  readonly maxResponseBytes?: number;
  /**
   * How long a refresh request already sent may still finish after `signal` aborts, ms, so that
   * the tokens the provider has issued (and the refresh token it has rotated) are saved rather
   * than lost. Default DEFAULT_REFRESH_GRACE_MS.
   */
  readonly refreshGraceMs?: number;
  readonly onPoll?: (event: PollEvent) => void;
  /** Called when a refresh token is about to be sent (once per refresh, not per retry). */
  readonly onRefresh?: () => void;
}

/** RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default." */
export const DEFAULT_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: every slow_down adds 5 seconds to the interval, for all later polls. */
export const SLOW_DOWN_STEP_SECONDS = 5;
/** No answer of a sign-in is near this large (a token response is a few KiB); a larger one is refused. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;
export const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;
export const DEFAULT_REFRESH_GRACE_MS = 5000;
/** RFC 8628 §3.4's grant type. */
export const DEVICE_CODE_GRANT_URN = "urn:ietf:params:oauth:grant-type:device_code";
const DEFAULT_EXPIRES_IN_SECONDS = 900;
/** Back-off between failed polls grows to this and stays there (still bounded by the code's expiry). */
const MAX_POLL_BACKOFF_MS = 60_000;
/** A Retry-After longer than this outside polling is told at warn: the program seems to hang otherwise. */
const LONG_WAIT_MS = 30_000;
const MAX_USER_CODE_CHARS = 64;
const MAX_URL_CHARS = 2048;
const MAX_MESSAGE_CHARS = 1000;
const MAX_DEVICE_CODE_CHARS = 8192;

interface DeviceCodeFlow {
  intervalMs: number;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** One HTTP answer, read and capped; `body` is undefined when it is not JSON. */
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: unknown;
}

/** Thrown inside the client for a failed exchange that may succeed if repeated. */
class TransientFailure extends Error {
  constructor(
    readonly reason: string,
    readonly retryAfterMs: number | undefined,
    options?: ErrorOptions,
  ) {
    super(reason, options);
  }
}

const TLS_ERROR = /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY|HOSTNAME/i;

function errorCode(error: unknown): string {
  return errnoCode(error) ?? (error instanceof Error ? error.name : "unknown");
}

function isDeviceCodeGrant(grantType: string | null): boolean {
  return grantType === "device_code" || grantType === DEVICE_CODE_GRANT_URN;
}

function positiveNumber(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : undefined;
}

/**
 * `value` when it is an https URL fit to show a person (and to put in a QR code): no user name or
 * password, not absurdly long, no control characters; undefined otherwise.
 */
export function httpsUrl(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  // A URL with control characters or spaces inside is not cleaned up but refused: what a person
  // would read and what the link opens could differ.
  if (text.length > MAX_URL_CHARS || safeLine(text) !== text || /\s/.test(text)) return undefined;
  try {
    const url = new URL(text);
    return url.protocol === "https:" && url.username === "" && url.password === "" ? text : undefined;
  } catch {
    return undefined;
  }
}

/** E_AUTHORITY: what answered, and how, when it is not an OAuth endpoint's answer. */
export function authorityError(url: string, status: number, how = ""): EntraToolError {
  return new EntraToolError("E_AUTHORITY", {
    message: `${shownUrl(url)} answered ${status}${how}: check --authority-host and --tenant-id.`,
    details: { url: shownUrl(url), status },
  });
}

/**
 * Why a token endpoint's success answer cannot be used, or undefined when it can (RFC 6749 §5.1).
 * `token_type` may be absent and then means Bearer, as msal-node (and most clients) read it: some
 * providers leave it out, and a token of another type (PoP, MAC) is what must not pass, since
 * every caller of entratool sends the token as a Bearer token. `expires_in`, only RECOMMENDED by
 * the RFC, is required here: without it nobody knows when to refresh, and msal-node would count
 * the token as expired at once.
 */
export function tokenResponseProblem(body: Record<string, unknown>): string | undefined {
  const { access_token, token_type, expires_in, refresh_token, id_token } = body;
  if (typeof access_token !== "string" || access_token === "") return "no access_token";
  if (token_type !== undefined && (typeof token_type !== "string" || token_type.toLowerCase() !== "bearer")) {
    return "token_type is not Bearer";
  }
  const expiresIn =
    typeof expires_in === "string" && /^\d+$/.test(expires_in) ? Number(expires_in) : expires_in;
  if (positiveNumber(expiresIn) === undefined) return "no positive expires_in";
  if (refresh_token !== undefined && (typeof refresh_token !== "string" || refresh_token === "")) {
    return "refresh_token is not a string";
  }
  if (id_token !== undefined && (typeof id_token !== "string" || id_token.split(".").length !== 3)) {
    return "id_token is not a JWT";
  }
  return undefined;
}

/** Which of msal-node's POSTs a form body is. */
type RequestKind = "device-authorization" | "poll" | "refresh" | "other";

function requestKind(form: URLSearchParams): RequestKind {
  const grantType = form.get("grant_type");
  // RFC 8628 §3.1: the device authorization request is the only one with no grant type.
  if (grantType === null)
    return form.has("client_id") && form.has("scope") ? "device-authorization" : "other";
  if (isDeviceCodeGrant(grantType) && form.get("device_code")) return "poll";
  if (grantType === "refresh_token") return "refresh";
  return "other";
}

/**
 * msal-node's network seam, with the parts of RFC 8628 that msal-node gets wrong put right, and
 * every answer of the identity provider treated as hostile:
 *
 * - Requests are recognised by their body, not by msal-node's URL (it derives the device code URL
 *   as `token_endpoint.replace("/token", "/devicecode")`, which a tenant named `tokens.…` breaks):
 *   the device authorization request goes to the discovered `device_authorization_endpoint`,
 *   polls and refreshes to the discovered `token_endpoint` (see `useProvider`). Polls to a
 *   provider other than Entra carry RFC 8628's grant type URN.
 * - A device code poll is held here until it has an answer MSAL can act on: success or a terminal
 *   error. `authorization_pending` and `slow_down` are handled here, so MSAL's own loop (which
 *   ends on `slow_down`) never sees them.
 * - Polls are never closer than the interval (5 s when the server gives none); every `slow_down`
 *   adds 5 s for all later polls.
 * - 5xx, 429 (honouring Retry-After), connection resets and timeouts during polling are retried
 *   until the code expires: the person may already have typed it. When a poll's answer was lost
 *   that way and the retry says the code is spent, the approval itself was lost (E_CODE_LOST).
 * - No redirect is followed: a token endpoint that answers 3xx could otherwise send a refresh
 *   token or device code to another host, or in clear over http.
 * - Bodies are read as a stream and refused past `maxResponseBytes`; answers that are not JSON or
 *   not of the expected shape become one sentence naming the URL that answered; a token response
 *   without a usable access token is an error, not a token.
 * - Every request and wait is cut short by `signal`, and the request in flight is aborted, except
 *   a refresh already sent, which may finish within `refreshGraceMs` so that its tokens are saved.
 * - Proxies come from the injected environment.
 *
 * MSAL wraps any non-MSAL error thrown here into a generic `network_error`, so the precise
 * failure is kept on the client: after MSAL throws, `takeFailure()` says what really happened.
 * One client serves one sign-in operation (it holds that operation's abort signal).
 */
export class EntraNetworkClient implements INetworkModule {
  readonly #options: NetworkClientOptions;
  readonly #flows = new Map<string, DeviceCodeFlow>();
  readonly #codes = new Map<string, DeviceCodeDetails>();
  #provider: ProviderEndpoints | undefined;
  #failure: EntraToolError | undefined;

  constructor(options: NetworkClientOptions) {
    this.#options = options;
  }

  /** Routes the device authorization request, polls and refreshes to these endpoints. */
  useProvider(provider: ProviderEndpoints): void {
    this.#provider = provider;
  }

  /** The failure behind the last error MSAL reported, once; undefined if there was none. */
  takeFailure(): EntraToolError | undefined {
    const failure = this.#failure;
    this.#failure = undefined;
    return failure;
  }

  /** The device authorization response that issued `deviceCode`, as validated; undefined if none did. */
  deviceCode(deviceCode: string): DeviceCodeDetails | undefined {
    return this.#codes.get(deviceCode);
  }

  /**
   * GETs a JSON document (the OpenID configuration) with the same rules as every other request:
   * retries, caps, no redirects. Any status is returned (`body` undefined when it is not JSON);
   * a provider that stays unreachable or unavailable throws E_NETWORK (or E_TLS).
   */
  async getDocument(url: string): Promise<{ readonly status: number; readonly body: unknown }> {
    try {
      const answer = await this.#withRetry(url, "GET");
      return { status: answer.status, body: answer.body };
    } finally {
      // Not a failure behind one of MSAL's errors: discovery's caller has it already.
      this.#failure = undefined;
    }
  }

  async sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    this.#failure = undefined;
    try {
      const answer = await this.#withRetry(url, "GET", options, { timeoutMs: timeout });
      return this.#jsonObject(url, answer) as NetworkResponse<T>;
    } catch (error) {
      throw this.#fail(error);
    }
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    // What a failure means belongs to the request that failed; an earlier one MSAL got over is stale.
    this.#failure = undefined;
    const form = new URLSearchParams(options?.body ?? "");
    try {
      switch (requestKind(form)) {
        case "device-authorization": {
          const target = this.#route(url, this.#provider?.deviceAuthorizationEndpoint);
          return (await this.#deviceAuthorization(target, options)) as NetworkResponse<T>;
        }
        case "poll": {
          const target = this.#route(url, this.#provider?.tokenEndpoint);
          let pollOptions = options;
          if (this.#provider && !this.#provider.entra && form.get("grant_type") !== DEVICE_CODE_GRANT_URN) {
            form.set("grant_type", DEVICE_CODE_GRANT_URN);
            pollOptions = { ...options, body: form.toString() };
          }
          return (await this.#poll(target, pollOptions, form.get("device_code") ?? "")) as NetworkResponse<T>;
        }
        case "refresh": {
          const target = this.#route(url, this.#provider?.tokenEndpoint);
          this.#options.onRefresh?.();
          const answer = await this.#withRetry(target, "POST", options, { grace: true });
          return this.#tokenAnswer(target, answer, "refresh") as NetworkResponse<T>;
        }
        case "other": {
          const answer = await this.#withRetry(url, "POST", options);
          return this.#tokenAnswer(url, answer, "refresh") as NetworkResponse<T>;
        }
      }
    } catch (error) {
      throw this.#fail(error);
    }
  }

  /**
   * `endpoint` with msal-node's query parameters (its correlation id) added; `url` itself when
   * no provider was given (tests that drive the client without discovery).
   */
  #route(url: string, endpoint: string | undefined): string {
    if (endpoint === undefined) return url;
    const target = new URL(endpoint);
    for (const [name, value] of new URL(url).searchParams) {
      if (!target.searchParams.has(name)) target.searchParams.append(name, value);
    }
    return target.href;
  }

  /** The answer as MSAL takes it, once it is known to be a JSON object from an OAuth endpoint. */
  #jsonObject(url: string, answer: Answer): NetworkResponse<Record<string, unknown>> {
    // A 404 names a path that is not there, whatever JSON a web server wraps it in.
    if (answer.status === 404) throw authorityError(url, 404);
    if (answer.body === undefined)
      throw authorityError(url, answer.status, " with something that is not JSON");
    if (!isRecord(answer.body)) throw authorityError(url, answer.status, " with JSON that is not an object");
    return { status: answer.status, headers: answer.headers, body: answer.body };
  }

  /**
   * A token endpoint's answer: an OAuth error is handed to MSAL (and its meaning kept for
   * `takeFailure`), a success must be a usable token response.
   */
  #tokenAnswer(
    url: string,
    answer: Answer,
    phase: "device-code" | "refresh",
  ): NetworkResponse<Record<string, unknown>> {
    const response = this.#jsonObject(url, answer);
    const body = response.body;
    if (isOAuthErrorBody(body)) {
      this.#failure = classifyTokenError(body, phase);
      return response;
    }
    if (response.status >= 300) throw authorityError(url, response.status, " with no OAuth error");
    const problem = tokenResponseProblem(body);
    if (problem) {
      throw new EntraToolError("E_IDP", {
        message: `${shownUrl(url)} answered with an unusable token response (${problem}): try again later, and check --authority-host if it persists.`,
        details: { url: shownUrl(url), status: response.status, problem },
      });
    }
    const expiresIn = Number(body.expires_in);
    // Normalised for MSAL: a numeric string becomes a number, an absent token_type Bearer.
    return { ...response, body: { ...body, expires_in: expiresIn, token_type: body.token_type ?? "Bearer" } };
  }

  /** Sends the device authorization request, validates the answer and remembers its timing for the polls. */
  async #deviceAuthorization(url: string, options: NetworkRequestOptions | undefined) {
    const answer = await this.#withRetry(url, "POST", options);
    const response = this.#jsonObject(url, answer);
    const record = response.body;
    if (isOAuthErrorBody(record)) {
      // Thrown, not returned: MSAL would hand an error body to deviceCodeCallback as if it were a
      // code (a screen showing "undefined") and then poll with it.
      throw classifyTokenError(record, "device-code");
    }
    const deviceCode = record.device_code;
    // `verification_url`: the name used before RFC 8628 (Google still sends it).
    const rawUri = record.verification_uri ?? record.verification_url;
    if (
      typeof deviceCode !== "string" ||
      deviceCode === "" ||
      deviceCode.length > MAX_DEVICE_CODE_CHARS ||
      typeof record.user_code !== "string" ||
      typeof rawUri !== "string"
    ) {
      throw authorityError(url, response.status, " without a device code");
    }
    const userCode = safeLine(record.user_code);
    const verificationUri = httpsUrl(rawUri);
    if (userCode === "" || userCode.length > MAX_USER_CODE_CHARS || verificationUri === undefined) {
      throw new EntraToolError("E_IDP", {
        message: `${shownUrl(url)} answered with a device code that cannot be shown safely (the user code must be short and the verification address an https URL): check --authority-host.`,
        details: { url: shownUrl(url), userCodeChars: userCode.length, verificationUri: shownUrl(rawUri) },
      });
    }
    const verificationUriComplete = httpsUrl(record.verification_uri_complete);
    if (record.verification_uri_complete !== undefined && verificationUriComplete === undefined) {
      this.#options.logger.warn(
        { verificationUriComplete: shownUrl(String(record.verification_uri_complete)) },
        "the identity provider's verification_uri_complete is not an https URL; showing the plain URL instead",
      );
    }
    const message = typeof record.message === "string" ? safeLine(record.message) : "";
    const intervalSeconds = Math.max(1, positiveNumber(record.interval) ?? DEFAULT_INTERVAL_SECONDS);
    const expiresInSeconds = positiveNumber(record.expires_in) ?? DEFAULT_EXPIRES_IN_SECONDS;
    const details: DeviceCodeDetails = {
      userCode,
      verificationUri,
      ...(verificationUriComplete ? { verificationUriComplete } : {}),
      ...(message !== "" && message.length <= MAX_MESSAGE_CHARS ? { message } : {}),
      expiresInSeconds,
      intervalSeconds,
    };
    const now = this.#options.clock.now();
    this.#codes.set(deviceCode, details);
    this.#flows.set(deviceCode, {
      intervalMs: intervalSeconds * 1000,
      issuedAt: now,
      expiresAt: now + expiresInSeconds * 1000,
    });
    // MSAL sleeps `interval` itself between pending polls and spins without one: hand it a sane
    // value, and only what was validated.
    return {
      ...response,
      body: {
        device_code: deviceCode,
        user_code: userCode,
        verification_uri: verificationUri,
        interval: intervalSeconds,
        expires_in: expiresInSeconds,
        message: details.message ?? "",
      },
    };
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
    // Whether the last poll got no answer (or only a gateway's): the server may have acted on it.
    let answerLost = false;
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
      let answer: Answer;
      try {
        answer = await this.#exchange(url, "POST", options);
      } catch (error) {
        if (!(error instanceof TransientFailure)) throw error;
        failures += 1;
        answerLost = true;
        const backoff = Math.min(MAX_POLL_BACKOFF_MS, flow.intervalMs * 2 ** (failures - 1));
        const delayMs = Math.max(flow.intervalMs, error.retryAfterMs ?? backoff);
        logger.info(
          { reason: error.reason, delayMs, failures },
          "poll failed; retrying while the code is valid",
        );
        onPoll?.({ type: "retry", reason: error.reason, delayMs });
        nextAt = clock.now() + delayMs;
        continue;
      }
      failures = 0;
      const body = this.#jsonObject(url, answer).body;
      const continuation = isOAuthErrorBody(body) ? pollContinuation(body) : undefined;
      if (continuation === undefined) {
        const response = this.#tokenAnswer(url, answer, "device-code");
        const failure = this.#failure;
        if (answerLost && (failure?.code === "E_BAD_CODE" || failure?.code === "E_SIGN_IN_REQUIRED")) {
          // The code is spent although nobody here redeemed it: the lost answer was the tokens.
          this.#failure = new EntraToolError("E_CODE_LOST", {
            details: { ...failure.details, after: "lost poll" },
          });
        }
        this.#flows.delete(deviceCode);
        return response;
      }
      answerLost = false;
      if (continuation === "authorization_pending") {
        onPoll?.({ type: "pending" });
      } else {
        flow.intervalMs += SLOW_DOWN_STEP_SECONDS * 1000;
        logger.info(
          { intervalSeconds: flow.intervalMs / 1000 },
          "server asked to slow down; interval raised",
        );
        onPoll?.({ type: "slow-down", intervalSeconds: flow.intervalMs / 1000 });
      }
      // Counted from the answer, not the request: the server sees polls at least `interval` apart
      // however long the last one took on the wire.
      nextAt = clock.now() + flow.intervalMs;
    }
  }

  async #withRetry(
    url: string,
    method: "GET" | "POST",
    options?: NetworkRequestOptions,
    exchange: { readonly timeoutMs?: number | undefined; readonly grace?: boolean } = {},
  ): Promise<Answer> {
    const { clock, logger } = this.#options;
    const maxAttempts = this.#options.maxAttempts ?? 3;
    const maxBackoffMs = this.#options.maxBackoffMs ?? 30_000;
    const maxRetryAfterMs = this.#options.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#exchange(url, method, options, exchange);
      } catch (error) {
        if (!(error instanceof TransientFailure)) throw error;
        if (attempt >= maxAttempts) {
          // Still failing after every attempt. Thrown rather than handed to MSAL as a 429/5xx
          // answer: MSAL would record it as throttling in the token cache and refuse later calls.
          throw new EntraToolError("E_NETWORK", {
            cause: error,
            // The provider's last Retry-After goes with it: the agent's keeper waits that long.
            details: {
              reason: error.reason,
              url: shownUrl(url),
              ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
            },
            ...(error.reason.startsWith("HTTP ")
              ? {
                  message: `Microsoft Entra ID is unavailable (${error.reason}). Try again in a few minutes.`,
                }
              : {}),
          });
        }
        const delayMs =
          error.retryAfterMs === undefined
            ? Math.min(maxBackoffMs, 500 * 2 ** (attempt - 1))
            : Math.min(maxRetryAfterMs, error.retryAfterMs);
        const fields = { reason: error.reason, attempt, delayMs, url: shownUrl(url) };
        if (delayMs > LONG_WAIT_MS) {
          logger.warn(
            fields,
            `the identity provider asked to wait ${Math.round(delayMs / 1000)} s before trying again`,
          );
        } else {
          logger.info(fields, "request failed; retrying");
        }
        await clock.sleep(delayMs, this.#options.signal);
      }
    }
  }

  /**
   * One HTTP exchange, its body read (at most `maxResponseBytes`) and parsed. Returns the answer
   * for anything final (2xx, 4xx); throws TransientFailure for what may pass (5xx, 429, resets,
   * timeouts), EntraToolError otherwise (TLS, a redirect, a body too large), and the signal's
   * reason once cancelled.
   */
  async #exchange(
    url: string,
    method: "GET" | "POST",
    options?: NetworkRequestOptions,
    exchange: { readonly timeoutMs?: number | undefined; readonly grace?: boolean } = {},
  ): Promise<Answer> {
    const { fetch, clock, logger, env, signal } = this.#options;
    signal.throwIfAborted();
    const target = new URL(url);
    const proxy = proxyFor(target, env);
    const timeout = AbortSignal.timeout(exchange.timeoutMs ?? this.#options.requestTimeoutMs ?? 30_000);
    const grace = exchange.grace ? this.#grace() : undefined;
    const cancel = grace?.signal ?? signal;
    // Aborted by us when a body grows past the cap: stops reading and closes the connection.
    const refuse = new AbortController();
    const started = clock.now();
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: options?.headers ?? {},
        ...(options?.body === undefined ? {} : { body: options.body }),
        signal: AbortSignal.any([cancel, timeout, refuse.signal]),
        redirect: "manual",
        ...(proxy ? { proxy } : {}),
      });
      if (response.status >= 300 && response.status < 400 && response.status !== 304) {
        refuse.abort();
        throw this.#redirect(url, response);
      }
      text = await this.#readBody(url, response, refuse);
    } catch (error) {
      if (isEntraToolError(error)) throw error;
      if (cancel.aborted) throw signal.reason ?? error;
      const code = errorCode(error);
      if (timeout.aborted) throw new TransientFailure("timeout", undefined, { cause: error });
      if (TLS_ERROR.test(code)) {
        throw new EntraToolError("E_TLS", { cause: error, details: { code, host: target.host } });
      }
      throw new TransientFailure(`connection failed (${code})`, undefined, { cause: error });
    } finally {
      grace?.end();
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
    if (response.status === 429 || response.status >= 500) {
      const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), clock.now());
      throw new TransientFailure(`HTTP ${response.status}`, retryAfterMs);
    }
    return { status: response.status, headers, body };
  }

  /** E_REDIRECT for a 3xx answer: which URL sent us where (nothing is sent there). */
  #redirect(url: string, response: Response): EntraToolError {
    const location = response.headers.get("location") ?? "";
    let to = location;
    try {
      to = new URL(location, url).href;
    } catch {
      // An unparsable Location is shown as it is (made safe by shownUrl).
    }
    return new EntraToolError("E_REDIRECT", {
      message: `${shownUrl(url)} redirected to ${shownUrl(to) || "nowhere"}, and entratool follows no redirects from the identity provider (so that no secret leaves for another host or scheme): check --authority-host and any proxy.`,
      details: { url: shownUrl(url), status: response.status, location: shownUrl(to) },
    });
  }

  /** The body as text, read as a stream and refused past the cap (Content-Length or bytes seen). */
  async #readBody(url: string, response: Response, refuse: AbortController): Promise<string> {
    const max = this.#options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
    const tooLarge = (): EntraToolError => {
      refuse.abort();
      const limit = max % (1024 * 1024) === 0 ? `${max / (1024 * 1024)} MiB` : `${max} bytes`;
      return new EntraToolError("E_IDP", {
        message: `${shownUrl(url)} answered with more than ${limit}, far more than any sign-in answer: check --authority-host and any proxy.`,
        details: { url: shownUrl(url), status: response.status, maxBytes: max },
      });
    };
    const declared = Number(response.headers.get("content-length") ?? Number.NaN);
    if (Number.isFinite(declared) && declared > max) throw tooLarge();
    if (!response.body) return "";
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > max) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
    return new TextDecoder().decode(Buffer.concat(chunks));
  }

  /**
   * A signal for a refresh in flight: it aborts `refreshGraceMs` (on the injected clock) after the
   * client's own signal does, so that a refresh the provider may already have carried out can
   * still deliver its tokens for MSAL to save. `end()` when the exchange is over.
   */
  #grace(): { readonly signal: AbortSignal; end(): void } {
    const { signal, clock, logger } = this.#options;
    const graceMs = this.#options.refreshGraceMs ?? DEFAULT_REFRESH_GRACE_MS;
    const grace = new AbortController();
    const ended = new AbortController();
    const onAbort = (): void => {
      logger.info(
        { graceMs },
        "cancelled while a refresh is in flight; letting it finish so its tokens are saved",
      );
      clock.sleep(graceMs, ended.signal).then(
        () => grace.abort(signal.reason),
        () => {},
      );
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return {
      signal: grace.signal,
      end: () => {
        signal.removeEventListener("abort", onAbort);
        ended.abort();
      },
    };
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
