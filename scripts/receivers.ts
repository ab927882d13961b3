/**
 * Receivers for the HTTP-family sinks (the tests and the demo), on 127.0.0.1: a plain HTTP sink receiver, an Event
 * Hubs emulation and a Logs Ingestion emulation. Each checks what the real one would (the bearer
 * token with jose against the signer's public key, RS256, its audience and expiry on the real
 * clock, as a real service judges them; the path, the content type, the body's shape and size),
 * records every request and every message id it accepted, and can be told to fail the next
 * requests in a given way (`fail`).
 *
 * HTTPS when `tls` is given (a certificate from scripts/emulator/tls.ts; the sink gets a fetch that
 * trusts its CA), plain HTTP otherwise. Built on node:http(s) rather than Bun.serve: a dropped
 * connection needs the socket, which Bun.serve does not hand out.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from "jose";

/** How the next request is answered instead of normally. */
export type Fault =
  /** This status, with a Retry-After header and a body when given. */
  | { readonly type: "status"; readonly status: number; readonly retryAfter?: string; readonly body?: string }
  /** The connection is closed without an answer. */
  | { readonly type: "drop" }
  /** No answer ever (until the server stops): for timeouts. */
  | { readonly type: "hang" }
  /** A redirect to `location`. */
  | { readonly type: "redirect"; readonly status: number; readonly location: string }
  /** This status and a body that never ends, written as fast as the client reads it. */
  | { readonly type: "endless"; readonly status: number };

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** Lower-case names; the Authorization header is left out (see `claims`). */
  readonly headers: Readonly<Record<string, string>>;
  /** The body as received (compressed when it was). */
  readonly wireBytes: number;
  /** The body after decompression, as text. */
  readonly body: string;
  /** The status answered; 0 while unanswered, for a dropped or hanging request. */
  status: number;
  /** "accepted", or why the request was refused or failed. */
  reason: string;
  /** The claims of a token that verified. */
  claims: JWTPayload | undefined;
  /** Ids of the messages accepted with this request. */
  ids: readonly string[];
  /** Body bytes written for an `endless` fault before the client hung up. */
  bytesSent: number;
}

export interface SinkServerOptions {
  /** HTTPS with this certificate; plain HTTP without. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The signer's public JWK (TokenSigner.publicJwk()). */
  readonly jwk: object;
  /** Largest body accepted after decompression, bytes (413 above). */
  readonly maxBodyBytes?: number;
}

/** What a receiver makes of a request that passed the token check: ids accepted, or a refusal. */
type Verdict = { readonly ids: readonly string[] } | { readonly status: number; readonly message: string };

/** A problem: the status and message a real service would answer with. */
function refuse(status: number, message: string): Verdict {
  return { status, message };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A telemetry message as every sink sends it (types.ts Message), or undefined. */
function messageId(value: unknown): string | undefined {
  if (!isRecord(value)) return undefined;
  const { id, ts, device, topic } = value;
  const fields = Object.keys(value).sort().join(",");
  if (fields !== "data,device,id,topic,ts") return undefined;
  if (typeof id !== "string" || typeof ts !== "string" || Number.isNaN(Date.parse(ts))) return undefined;
  if (typeof device !== "string" || typeof topic !== "string") return undefined;
  return id;
}

function mediaType(headers: Readonly<Record<string, string>>): string {
  return (headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

export abstract class SinkServer {
  /** `https://127.0.0.1:port` (or http://). */
  url = "";
  readonly requests: ReceivedRequest[] = [];
  /** Every message id accepted, once. */
  readonly accepted = new Set<string>();
  /** Every message id accepted, with duplicates, in order. */
  readonly acceptedList: string[] = [];
  readonly #options: SinkServerOptions;
  readonly #jwks: ReturnType<typeof createLocalJWKSet>;
  readonly #faults: Fault[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #waiters: Array<{ count: number; resolve: () => void }> = [];
  #server: Server | undefined;
  #stopping = false;

  protected constructor(options: SinkServerOptions) {
    this.#options = options;
    this.#jwks = createLocalJWKSet({ keys: [options.jwk] } as JSONWebKeySet);
  }

  /** The audiences a token may have here. */
  protected abstract readonly audiences: readonly string[];
  /** The status of a success. */
  protected abstract readonly successStatus: number;
  /** Checks path, query, content type and body (decompressed, as text). */
  protected abstract judge(request: ReceivedRequest): Verdict;

  /** The next `times` requests get `fault` instead of their normal answer. */
  fail(fault: Fault, times = 1): void {
    for (let i = 0; i < times; i++) this.#faults.push(fault);
  }

  /** Resolves once `count` requests have arrived (counted from the start), answered or not. */
  whenRequests(count: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise<void>((resolve) => this.#waiters.push({ count, resolve }));
  }

  async start(): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      void this.#handle(req, res);
    };
    const tls = this.#options.tls;
    const server = tls
      ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler)
      : createHttpServer(handler);
    server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");
    this.#server = server;
    this.url = `${tls ? "https" : "http"}://127.0.0.1:${address.port}`;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.#stopping = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (name !== "authorization" && typeof value === "string") headers[name] = value;
    }
    let body = "";
    let decodeProblem: string | undefined;
    const encoding = (headers["content-encoding"] ?? "identity").toLowerCase();
    try {
      if (encoding === "gzip") body = new TextDecoder().decode(Bun.gunzipSync(raw));
      else if (encoding === "identity") body = raw.toString("utf8");
      else decodeProblem = `unsupported Content-Encoding ${encoding}`;
    } catch {
      decodeProblem = "the gzip body does not decompress";
    }
    const entry: ReceivedRequest = {
      method: req.method ?? "",
      path: url.pathname,
      query: url.searchParams,
      headers,
      wireBytes: raw.byteLength,
      body,
      status: 0,
      reason: "unanswered",
      claims: undefined,
      ids: [],
      bytesSent: 0,
    };
    this.requests.push(entry);
    for (const waiter of [...this.#waiters]) {
      if (this.requests.length >= waiter.count) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }

    const fault = this.#faults.shift();
    if (fault) {
      await this.#fault(fault, entry, res);
      return;
    }
    const problem = await this.#verifyToken(req.headers.authorization, entry);
    if (problem !== undefined) {
      this.#answer(res, entry, 401, problem, { "www-authenticate": 'Bearer error="invalid_token"' });
      return;
    }
    if (entry.method !== "POST") {
      this.#answer(res, entry, 405, `method ${entry.method} not allowed`);
      return;
    }
    if (decodeProblem !== undefined) {
      this.#answer(res, entry, 400, decodeProblem);
      return;
    }
    const max = this.#options.maxBodyBytes ?? 1_000_000;
    if (Buffer.byteLength(body) > max) {
      this.#answer(res, entry, 413, `the body is ${Buffer.byteLength(body)} bytes, more than ${max}`);
      return;
    }
    const verdict = this.judge(entry);
    if ("status" in verdict) {
      this.#answer(res, entry, verdict.status, verdict.message);
      return;
    }
    entry.ids = verdict.ids;
    for (const id of verdict.ids) {
      this.accepted.add(id);
      this.acceptedList.push(id);
    }
    entry.status = this.successStatus;
    entry.reason = "accepted";
    res.writeHead(this.successStatus).end();
  }

  /** undefined when the token verifies here; why not otherwise. */
  async #verifyToken(authorization: string | undefined, entry: ReceivedRequest): Promise<string | undefined> {
    const match = /^Bearer ([!-~]+)$/.exec(authorization ?? "");
    if (!match?.[1]) return "no bearer token";
    try {
      const { payload } = await jwtVerify(match[1], this.#jwks, {
        algorithms: ["RS256"],
        audience: [...this.audiences],
      });
      entry.claims = payload;
      return undefined;
    } catch (error) {
      return `token refused: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  #answer(
    res: ServerResponse,
    entry: ReceivedRequest,
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    entry.status = status;
    entry.reason = message;
    const body = JSON.stringify({ error: { code: `Status${status}`, message } });
    res.writeHead(status, { "content-type": "application/json", ...headers }).end(body);
  }

  async #fault(fault: Fault, entry: ReceivedRequest, res: ServerResponse): Promise<void> {
    entry.reason = `fault ${fault.type}`;
    switch (fault.type) {
      case "status": {
        entry.status = fault.status;
        const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
        if (fault.retryAfter !== undefined) headers["retry-after"] = fault.retryAfter;
        res.writeHead(fault.status, headers).end(fault.body ?? "");
        return;
      }
      case "drop":
        res.socket?.destroy();
        return;
      case "hang":
        return;
      case "redirect":
        entry.status = fault.status;
        res.writeHead(fault.status, { location: fault.location }).end();
        return;
      case "endless":
        entry.status = fault.status;
        await this.#endless(res, entry, fault.status);
        return;
    }
  }

  /** Writes "x" forever, only as fast as the client reads, until it hangs up or the server stops. */
  async #endless(res: ServerResponse, entry: ReceivedRequest, status: number): Promise<void> {
    res.writeHead(status, { "content-type": "text/plain" });
    const chunk = Buffer.alloc(64 * 1024, "x");
    const closed = new Promise<void>((resolve) => res.once("close", resolve));
    while (!res.destroyed && !this.#stopping) {
      const flushed = res.write(chunk);
      entry.bytesSent += chunk.byteLength;
      if (!flushed) await Promise.race([new Promise<void>((resolve) => res.once("drain", resolve)), closed]);
    }
  }
}

/** A receiver of the `http` sink: JSON arrays or NDJSON of messages, gzipped or not; answers 200. */
export class HttpSinkServer extends SinkServer {
  protected readonly audiences: readonly string[];
  protected readonly successStatus = 200;

  private constructor(options: SinkServerOptions & { readonly audience: string }) {
    super(options);
    this.audiences = [options.audience];
  }

  static start(options: SinkServerOptions & { readonly audience: string }): Promise<HttpSinkServer> {
    return new HttpSinkServer(options).start();
  }

  protected judge(request: ReceivedRequest): Verdict {
    const type = mediaType(request.headers);
    let values: unknown[];
    try {
      if (type === "application/json") {
        const parsed: unknown = JSON.parse(request.body);
        if (!Array.isArray(parsed)) return refuse(400, "the body is not a JSON array");
        values = parsed;
      } else if (type === "application/x-ndjson") {
        if (!request.body.endsWith("\n")) return refuse(400, "the last NDJSON line has no newline");
        values = request.body
          .slice(0, -1)
          .split("\n")
          .map((line) => JSON.parse(line) as unknown);
      } else {
        return refuse(415, `unsupported Content-Type ${type}`);
      }
    } catch {
      return refuse(400, "the body is not valid JSON");
    }
    const ids = values.map(messageId);
    if (ids.some((id) => id === undefined)) return refuse(400, "an element is not a telemetry message");
    return { ids: ids as string[] };
  }
}

/** Azure Event Hubs' REST batch send (`POST /{hub}/messages`, vnd.microsoft.servicebus.json); answers 201. */
export class EventHubsServer extends SinkServer {
  protected readonly audiences = ["https://eventhubs.azure.net", "https://eventhubs.azure.net/"];
  protected readonly successStatus = 201;
  readonly #hub: string;

  private constructor(options: SinkServerOptions & { readonly hub: string }) {
    super(options);
    this.#hub = options.hub;
  }

  static start(options: SinkServerOptions & { readonly hub: string }): Promise<EventHubsServer> {
    return new EventHubsServer(options).start();
  }

  protected judge(request: ReceivedRequest): Verdict {
    if (request.path !== `/${this.#hub}/messages`) return refuse(404, `no event hub at ${request.path}`);
    if (request.query.get("api-version") !== "2014-01") return refuse(400, "api-version must be 2014-01");
    const type = mediaType(request.headers);
    if (type !== "application/vnd.microsoft.servicebus.json") {
      return refuse(415, `a batch needs Content-Type application/vnd.microsoft.servicebus.json, not ${type}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(request.body);
    } catch {
      return refuse(400, "the body is not valid JSON");
    }
    if (!Array.isArray(parsed) || parsed.length === 0)
      return refuse(400, "the body is not a JSON array of events");
    const ids: string[] = [];
    for (const event of parsed) {
      if (!isRecord(event) || typeof event.Body !== "string")
        return refuse(400, "an event has no string Body");
      const extra = Object.keys(event).filter(
        (key) => !["Body", "UserProperties", "BrokerProperties"].includes(key),
      );
      if (extra.length > 0) return refuse(400, `unknown event fields ${extra.join(", ")}`);
      if (event.UserProperties !== undefined && !isRecord(event.UserProperties)) {
        return refuse(400, "UserProperties is not an object");
      }
      let message: unknown;
      try {
        message = JSON.parse(event.Body);
      } catch {
        return refuse(400, "a Body is not JSON");
      }
      const id = messageId(message);
      if (id === undefined) return refuse(400, "a Body is not a telemetry message");
      ids.push(id);
    }
    return { ids };
  }
}

/** Azure Monitor's Logs Ingestion API (`POST /dataCollectionRules/{rule}/streams/{stream}`); answers 204. */
export class LogsIngestionServer extends SinkServer {
  protected readonly audiences = ["https://monitor.azure.com", "https://monitor.azure.com/"];
  protected readonly successStatus = 204;
  readonly #rule: string;
  readonly #stream: string;

  private constructor(options: SinkServerOptions & { readonly rule: string; readonly stream: string }) {
    super(options);
    this.#rule = options.rule;
    this.#stream = options.stream;
  }

  static start(
    options: SinkServerOptions & { readonly rule: string; readonly stream: string },
  ): Promise<LogsIngestionServer> {
    return new LogsIngestionServer(options).start();
  }

  protected judge(request: ReceivedRequest): Verdict {
    if (request.path !== `/dataCollectionRules/${this.#rule}/streams/${this.#stream}`) {
      return refuse(404, `no data collection rule stream at ${request.path}`);
    }
    if (request.query.get("api-version") !== "2023-01-01")
      return refuse(400, "api-version must be 2023-01-01");
    if (mediaType(request.headers) !== "application/json")
      return refuse(415, "Content-Type must be application/json");
    let parsed: unknown;
    try {
      parsed = JSON.parse(request.body);
    } catch {
      return refuse(400, "the body is not valid JSON");
    }
    if (!Array.isArray(parsed)) return refuse(400, "the body is not a JSON array of records");
    const ids: string[] = [];
    for (const record of parsed) {
      if (!isRecord(record)) return refuse(400, "a record is not an object");
      const { TimeGenerated, id } = record;
      if (typeof TimeGenerated !== "string" || Number.isNaN(Date.parse(TimeGenerated))) {
        return refuse(400, "a record has no TimeGenerated");
      }
      if (typeof id !== "string") return refuse(400, "a record has no id");
      ids.push(id);
    }
    return { ids };
  }
}
