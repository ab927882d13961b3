/**
 * What the HTTP-family sinks (http, eventhubs, azure-monitor-logs) share: one POST of one batch,
 * with a token, and the classification of its outcome as a SinkError (types.ts). Batching,
 * retries, back-off and the cursor are the runner's; a sink only turns a batch into a request.
 *
 * Contract of `RequestSink.post`, the same for every HTTP sink:
 * - A token first: `tokens.get({ scopes, forceRefresh, signal })`. Its rejections (EntraToolError
 *   E_SIGN_IN_REQUIRED, E_NETWORK…, or the signal's reason) propagate as they are: the runner
 *   tells "nobody is signed in" from "the receiver is away" by them.
 * - The body is gzipped (`Content-Encoding: gzip`) when larger than `gzipAboveBytes`.
 * - No redirect is followed (`redirect: "manual"`): the token would go along to wherever the
 *   Location points. A 3xx is a "retry" whose message names the target, so the configuration can
 *   be fixed; the target never sees a request.
 * - 2xx: accepted. 401: "unauthorized" (the runner forces one refresh). 403: "retry", with the
 *   role the identity lacks (granting it fixes the sink without a restart; dead-lettering would
 *   throw away every message until someone notices). 408, 425, 429 and 5xx: "retry", with the
 *   Retry-After (seconds or an HTTP date) as `retryAfterMs`. Any other 4xx (400, 404, 413, 422…):
 *   "reject", the batch is dead-lettered. Network errors and timeouts: "retry".
 * - At most `maxResponseBytes` (64 KiB) of an answer are read; what a message quotes of it is
 *   one line without control characters, at most 300 characters.
 * - Each request times out after `requestTimeoutMs` (30 s) on the injected clock, besides the
 *   runner's signal. (A virtual clock in auto mode would end every request at once: give the sink
 *   a manual clock, or set `passiveSleepsFromMs` at or below the timeout.)
 * - The token and the Authorization header are never logged nor put in a message.
 */
import type { Clock } from "../../core/clock.ts";
import { errnoCode } from "../../core/errors.ts";
import { parseRetryAfter, shownUrl } from "../../core/http.ts";
import type { Logger } from "../../core/log.ts";
import { safeLine } from "../../core/text.ts";
import { type Message, type SendOptions, type Sink, SinkError, type TokenSource } from "../types.ts";

/** The part of `fetch` the sinks use (Bun's `fetch` is one; tests add `tls: { ca }` around it). */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** The seams every HTTP-family sink is built with (besides its `config`). */
export interface HttpSinkDeps {
  /** This board's device name. */
  readonly device: string;
  readonly tokens: TokenSource;
  readonly fetch: FetchLike;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The profile's scopes: what the `http` sink asks for when its config names none. */
  readonly defaultScopes: readonly string[];
  /** Per-request timeout, ms, on `clock`. Default REQUEST_TIMEOUT_MS. */
  readonly requestTimeoutMs?: number;
  /** Most bytes of an answer read. Default MAX_RESPONSE_BYTES. */
  readonly maxResponseBytes?: number;
}

export const REQUEST_TIMEOUT_MS = 30_000;
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** Most characters of a server's text quoted in a message. */
const MAX_DETAIL_CHARS = 300;
/** 4xx statuses that mean "not now" rather than "never". */
const RETRY_4XX: ReadonlySet<number> = new Set([408, 425, 429]);
const TLS_ERROR = /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY|HOSTNAME/i;
/** Characters a bearer token may carry in a header (RFC 6750 b64token, generously). */
const HEADER_SAFE = /^[!-~]+$/;

/** One request of a sink. */
export interface HttpPost {
  readonly url: string;
  readonly scopes: readonly string[];
  readonly contentType: string;
  /** The body as built (uncompressed). */
  readonly body: Uint8Array<ArrayBuffer>;
  /** Gzip the body when it is larger than this many bytes; undefined: never. */
  readonly gzipAboveBytes: number | undefined;
  /** Extra headers (never Authorization, Content-Type, Content-Encoding: those are set here). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Extra 4xx statuses that mean "retry" at this receiver (409 for an idempotency conflict). */
  readonly retryStatuses?: ReadonlySet<number>;
}

/** `base` without trailing slashes, so that `${base}/path` has exactly one. */
export function trimSlash(base: string): string {
  return base.replace(/\/+$/, "");
}

/**
 * What a server said, for a message: an Azure-style `{"error":{"code","message"}}` as
 * "code: message", other text as it is; one line, control characters removed, capped.
 */
function serverDetail(text: string): string {
  let detail = text;
  try {
    const parsed: unknown = JSON.parse(text);
    const error = (parsed as { error?: unknown } | null)?.error;
    if (typeof error === "object" && error !== null) {
      const { code, message } = error as { code?: unknown; message?: unknown };
      const parts = [code, message].filter((part): part is string => typeof part === "string");
      if (parts.length > 0) detail = parts.join(": ");
    } else if (typeof error === "string") {
      detail = error;
    }
  } catch {
    // Not JSON: the text itself.
  }
  const line = safeLine(detail);
  return line.length > MAX_DETAIL_CHARS ? `${line.slice(0, MAX_DETAIL_CHARS - 1)}…` : line;
}

/**
 * The base of the HTTP-family sinks: start/stop/connected and `post` (the contract above).
 * Subclasses build the request from the batch in `send`.
 */
export abstract class RequestSink implements Sink {
  abstract readonly name: string;
  abstract readonly maxBatchMessages: number;
  abstract readonly maxBatchBytes: number;
  protected readonly deps: HttpSinkDeps;
  /** Aborted by stop(): ends a request in flight. */
  #stop = new AbortController();
  #worked = false;

  protected constructor(deps: HttpSinkDeps) {
    this.deps = deps;
  }

  abstract send(batch: readonly Message[], options: SendOptions): Promise<void>;

  /** Nothing to connect: each send is one request. After stop(), start() makes the sink usable again. */
  async start(): Promise<void> {
    if (this.#stop.signal.aborted) this.#stop = new AbortController();
  }

  /** True once one send was accepted (request/response sinks hold no connection to lose). */
  connected(): boolean {
    return this.#worked;
  }

  /** Ends a request in flight (its send fails with "retry"). Idempotent. */
  async stop(): Promise<void> {
    this.#stop.abort(new SinkError("retry", `${this.name}: stopped`));
  }

  /** Sends one request and classifies its outcome (see the file's comment). */
  protected async post(post: HttpPost, options: SendOptions): Promise<void> {
    const { tokens, clock, logger } = this.deps;
    const stopped = this.#stop.signal;
    if (stopped.aborted) throw new SinkError("retry", `${this.name}: the sink is stopped`);
    options.signal.throwIfAborted();
    const signal = AbortSignal.any([options.signal, stopped]);
    // Not wrapped: the runner tells a missing sign-in from a failing receiver by these errors.
    const token = await tokens.get({ scopes: post.scopes, forceRefresh: options.forceRefresh, signal });
    if (!HEADER_SAFE.test(token.accessToken)) {
      throw new SinkError("unauthorized", `${this.name}: the token source gave a token unfit for a header`);
    }
    const gzip = post.gzipAboveBytes !== undefined && post.body.byteLength > post.gzipAboveBytes;
    const body = gzip ? Bun.gzipSync(post.body) : post.body;
    const headers: Record<string, string> = {
      ...post.headers,
      "Content-Type": post.contentType,
      Authorization: `Bearer ${token.accessToken}`,
      ...(gzip ? { "Content-Encoding": "gzip" } : {}),
    };
    const shown = shownUrl(post.url);
    const timeoutMs = this.deps.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    const timeout = new AbortController();
    const done = new AbortController();
    clock.sleep(timeoutMs, done.signal).then(
      () => timeout.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
      () => undefined,
    );
    const started = clock.now();
    let response: Response;
    let text: string;
    try {
      response = await this.deps.fetch(post.url, {
        method: "POST",
        headers,
        body,
        redirect: "manual",
        signal: AbortSignal.any([signal, timeout.signal]),
      });
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel().catch(() => undefined);
        throw this.#redirect(post.url, response);
      }
      text = await this.#readCapped(response);
    } catch (error) {
      if (options.signal.aborted) throw options.signal.reason ?? error;
      if (stopped.aborted)
        throw new SinkError("retry", `${this.name}: stopped while sending`, { cause: error });
      if (error instanceof SinkError) throw error;
      if (timeout.signal.aborted) {
        throw new SinkError("retry", `${shown} did not answer within ${timeoutMs / 1000} s`, {
          cause: error,
        });
      }
      const code = errnoCode(error) ?? (error instanceof Error ? error.name : "unknown");
      if (TLS_ERROR.test(code)) {
        throw new SinkError(
          "retry",
          `${shown}: its TLS certificate is not trusted (${safeLine(code)}): check the system time and the CA certificates`,
          { cause: error },
        );
      }
      throw new SinkError("retry", `cannot reach ${shown} (${safeLine(code)})`, { cause: error });
    } finally {
      done.abort();
    }
    const status = response.status;
    logger.debug(
      {
        sink: this.name,
        host: new URL(post.url).host,
        status,
        bytes: post.body.byteLength,
        sentBytes: body.byteLength,
        gzip,
        ms: clock.now() - started,
      },
      "telemetry request",
    );
    if (status >= 200 && status < 300) {
      this.#worked = true;
      return;
    }
    const detail = serverDetail(text);
    const said = `${shown} answered ${status}${detail === "" ? "" : `: ${detail}`}`;
    if (status === 401) throw new SinkError("unauthorized", `${said} (the token was refused)`, { status });
    if (status === 403) throw new SinkError("retry", `${said} (${this.forbidden()})`, { status });
    if (status >= 500 || RETRY_4XX.has(status) || post.retryStatuses?.has(status)) {
      const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), clock.now());
      throw new SinkError("retry", said, { status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
    }
    if (status >= 400) throw new SinkError("reject", `${said} (the batch is refused for good)`, { status });
    throw new SinkError("retry", `${said} (not an answer a receiver gives)`, { status });
  }

  /** What a 403 means at this receiver: the role the signed-in identity needs there. */
  protected abstract forbidden(): string;

  #redirect(url: string, response: Response): SinkError {
    const location = response.headers.get("location") ?? "";
    let to = location;
    try {
      to = new URL(location, url).href;
    } catch {
      // An unparsable Location is shown as it is (made safe by shownUrl).
    }
    return new SinkError(
      "retry",
      `${shownUrl(url)} redirected to ${shownUrl(to) || "nowhere"} (${response.status}); redirects are never followed, since the token would go along: put the final URL in the configuration`,
      { status: response.status },
    );
  }

  /** At most maxResponseBytes of the body, as text; the rest is never read. */
  async #readCapped(response: Response): Promise<string> {
    const max = this.deps.maxResponseBytes ?? MAX_RESPONSE_BYTES;
    if (!response.body) return "";
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = max - size;
      chunks.push(value.byteLength > room ? value.subarray(0, room) : value);
      size += Math.min(value.byteLength, room);
      if (size >= max) {
        await reader.cancel().catch(() => undefined);
        break;
      }
    }
    return new TextDecoder().decode(Buffer.concat(chunks));
  }
}

/**
 * Sends `batch` in as few requests as the receiver's size limit allows: one when its body fits
 * in `maxBodyBytes`, else the two halves in turn (recursively). The sinks' maxBatchBytes keep
 * bodies under the limit with headroom; this is the net for a batch whose encoding grows more than
 * expected (JSON-in-a-string escapes every quote). A single message over the limit is rejected
 * here, without a request: the receiver would refuse it (413) anyway. When a later part fails,
 * earlier parts were delivered and the runner resends the whole batch: the ids let receivers
 * drop the duplicates, as with any at-least-once delivery.
 */
export async function sendWithin(
  batch: readonly Message[],
  maxBodyBytes: number,
  encode: (part: readonly Message[]) => Uint8Array<ArrayBuffer>,
  sendOne: (body: Uint8Array<ArrayBuffer>) => Promise<void>,
  what: string,
): Promise<void> {
  const body = encode(batch);
  if (body.byteLength <= maxBodyBytes) return sendOne(body);
  if (batch.length === 1) {
    throw new SinkError(
      "reject",
      `message ${batch[0]?.id} is ${body.byteLength} bytes as sent, more than the ${maxBodyBytes} bytes ${what} takes in one request`,
      { status: 413 },
    );
  }
  const half = Math.ceil(batch.length / 2);
  await sendWithin(batch.slice(0, half), maxBodyBytes, encode, sendOne, what);
  await sendWithin(batch.slice(half), maxBodyBytes, encode, sendOne, what);
}

export const utf8 = new TextEncoder();
