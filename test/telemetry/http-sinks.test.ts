import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import * as v from "valibot";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { EntraToolError } from "../../agent/core/errors.ts";
import { formatIssues } from "../../agent/core/schema.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { AzureMonitorLogsSink } from "../../agent/telemetry/sinks/azure-monitor-logs.ts";
import { EventHubsSink } from "../../agent/telemetry/sinks/eventhubs.ts";
import { createHttpFamilySink, HttpSink } from "../../agent/telemetry/sinks/http.ts";
import type { FetchLike, HttpSinkDeps } from "../../agent/telemetry/sinks/http-common.ts";
import {
  AzureMonitorLogsSinkSchema,
  EventHubsSinkSchema,
  HttpSinkSchema,
} from "../../agent/telemetry/sinks/http-schema.ts";
import {
  type AccessToken,
  isSinkError,
  type JsonValue,
  type Message,
  type SendOptions,
  type Sink,
  type SinkError,
  type StoredMessage,
  type TokenRequest,
  type TokenSource,
} from "../../agent/telemetry/types.ts";
import { type EmulatorTls, ensureTls } from "../../scripts/emulator/tls.ts";
import { accessTokenTarget, TokenSigner } from "../../scripts/emulator/tokens.ts";
import {
  EventHubsServer,
  HttpSinkServer,
  LogsIngestionServer,
  type SinkServer,
} from "../../scripts/receivers.ts";

const ISSUER = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
const TELEMETRY_SCOPES = ["api://entratool-telemetry/.default"];
const TELEMETRY_AUDIENCE = "api://entratool-telemetry";
const HUB = "telemetry";
const RULE = "dcr-0123456789abcdef0123456789abcdef";
const STREAM = "Custom-Telemetry";

let dir: string;
let tls: EmulatorTls;
let signer: TokenSigner;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-http-sinks-"));
  tls = await ensureTls(dir);
  signer = await TokenSigner.create();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const servers: SinkServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

function serverOptions(extra: { readonly maxBodyBytes?: number } = {}) {
  return { tls: { cert: tls.certPem, key: tls.keyPem }, jwk: signer.publicJwk(), ...extra };
}

async function httpServer(
  options: { readonly plain?: boolean; readonly maxBodyBytes?: number } = {},
): Promise<HttpSinkServer> {
  const base = serverOptions(options);
  const server = await HttpSinkServer.start({
    ...base,
    ...(options.plain ? { tls: undefined } : {}),
    audience: TELEMETRY_AUDIENCE,
  });
  servers.push(server);
  return server;
}

async function eventHubsServer(): Promise<EventHubsServer> {
  const server = await EventHubsServer.start({ ...serverOptions(), hub: HUB });
  servers.push(server);
  return server;
}

async function logsServer(options: { readonly maxBodyBytes?: number } = {}): Promise<LogsIngestionServer> {
  const server = await LogsIngestionServer.start({ ...serverOptions(options), rule: RULE, stream: STREAM });
  servers.push(server);
  return server;
}

/**
 * Tokens as the board's sign-in would give them, signed for the requested scope's resource and
 * judged by the servers on the real clock. `expireNext` makes the next token an expired one.
 */
class FakeTokens implements TokenSource {
  readonly calls: TokenRequest[] = [];
  readonly issued: string[] = [];
  failWith: unknown;
  expireNext = false;

  async get(request: TokenRequest): Promise<AccessToken> {
    this.calls.push(request);
    if (this.failWith !== undefined) throw this.failWith;
    const now = Math.floor(Date.now() / 1000);
    const exp = this.expireNext ? now - 600 : now + 3600;
    this.expireNext = false;
    const accessToken = signer.sign({
      aud: accessTokenTarget(request.scopes).aud,
      iss: ISSUER,
      iat: now - 60,
      nbf: now - 60,
      exp,
    });
    this.issued.push(accessToken);
    return { accessToken, expiresAt: exp * 1000 };
  }

  onChange(): () => void {
    return () => {};
  }
}

interface World {
  readonly clock: VirtualClock;
  readonly tokens: FakeTokens;
  readonly lines: string[];
  readonly deps: HttpSinkDeps;
}

/** Seams for a sink: a manual virtual clock (timeouts fire only on `advance`), a fetch trusting the CA. */
function world(fetchOverride?: FetchLike): World {
  const clock = new VirtualClock(undefined, { auto: false });
  const tokens = new FakeTokens();
  const lines: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
  const trusting: FetchLike = (url, init) => fetch(url, { ...init, tls: { ca: tls.caPem } });
  return {
    clock,
    tokens,
    lines,
    deps: {
      device: "pi-kitchen",
      tokens,
      fetch: fetchOverride ?? trusting,
      clock,
      logger,
      defaultScopes: TELEMETRY_SCOPES,
    },
  };
}

let counter = 0;
/** A message as the outbox hands it to a runner: with seq and bytes, which must not go on the wire. */
function message(data: JsonValue = { celsius: 21.5 }, topic = "sensors/kitchen"): StoredMessage {
  counter += 1;
  const base: Message = {
    id: randomUUID(),
    ts: new Date(Date.UTC(2026, 10, 27, 12, 0, counter % 60)).toISOString(),
    device: "pi-kitchen",
    topic,
    data,
  };
  return { ...base, seq: counter, bytes: Buffer.byteLength(JSON.stringify(base)) };
}

function messages(count: number, data?: (i: number) => JsonValue): StoredMessage[] {
  return Array.from({ length: count }, (_, i) => message(data ? data(i) : { i }));
}

/** What the runner would take from the outbox for this sink: up to its message and byte limits. */
function fill(sink: Sink, pool: readonly StoredMessage[]): StoredMessage[] {
  const batch: StoredMessage[] = [];
  let bytes = 0;
  for (const item of pool) {
    if (batch.length >= sink.maxBatchMessages) break;
    if (batch.length > 0 && bytes + item.bytes > sink.maxBatchBytes) break;
    batch.push(item);
    bytes += item.bytes;
  }
  return batch;
}

function options(extra: Partial<SendOptions> = {}): SendOptions {
  return { signal: new AbortController().signal, forceRefresh: false, ...extra };
}

/** The SinkError a send rejects with (fails the test when it resolves or throws something else). */
async function sinkError(promise: Promise<void>): Promise<SinkError> {
  try {
    await promise;
  } catch (error) {
    if (isSinkError(error)) return error;
    throw error;
  }
  throw new Error("the send was accepted, but a SinkError was expected");
}

function httpSink(w: World, server: SinkServer, config: Record<string, unknown> = {}): HttpSink {
  const parsed = v.parse(HttpSinkSchema, { type: "http", url: `${server.url}/ingest`, ...config });
  return new HttpSink({ ...w.deps, config: parsed });
}

const ids = (batch: readonly Message[]): string[] => batch.map((item) => item.id);

describe("http sink", () => {
  test("delivers a JSON array with a token the receiver verifies, and never logs the token", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    await sink.start();
    expect(sink.connected()).toBe(false);
    const batch = messages(3);

    await sink.send(batch, options());

    expect([...server.accepted]).toEqual(ids(batch));
    const [request] = server.requests;
    expect(request?.status).toBe(200);
    expect(request?.path).toBe("/ingest");
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(request?.headers["content-encoding"]).toBeUndefined();
    expect(request?.claims?.aud).toBe(TELEMETRY_AUDIENCE);
    expect(JSON.parse(request?.body ?? "")).toEqual(
      batch.map(({ id, ts, device, topic, data }) => ({ id, ts, device, topic, data })),
    );
    expect(w.tokens.calls[0]?.scopes).toEqual(TELEMETRY_SCOPES);
    expect(sink.connected()).toBe(true);
    expect(sink.name).toBe(`http:${new URL(server.url).host}/ingest`);
    const log = w.lines.join("");
    expect(log).toContain("telemetry request");
    for (const token of w.tokens.issued) expect(log).not.toContain(token);
    expect(log).not.toMatch(/bearer|authorization/i);
    await sink.stop();
  });

  test("sends NDJSON, one message per line, when configured", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server, { format: "ndjson", gzipAboveBytes: 1_000_000 });
    const batch = messages(4);

    await sink.send(batch, options());

    const [request] = server.requests;
    expect(request?.headers["content-type"]).toBe("application/x-ndjson");
    expect(request?.body.split("\n")).toHaveLength(5);
    expect(server.acceptedList).toEqual(ids(batch));
  });

  test("gzips a body larger than gzipAboveBytes, and only then", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server, { gzipAboveBytes: 1024 });
    const small = messages(2);
    const large = messages(40, (i) => ({ reading: i, note: "the same words again and again" }));

    await sink.send(small, options());
    await sink.send(large, options());

    const [first, second] = server.requests;
    expect(first?.headers["content-encoding"]).toBeUndefined();
    expect(first?.wireBytes).toBeLessThanOrEqual(1024);
    expect(second?.headers["content-encoding"]).toBe("gzip");
    expect(Buffer.byteLength(second?.body ?? "")).toBeGreaterThan(1024);
    expect(second?.wireBytes).toBeLessThan(Buffer.byteLength(second?.body ?? ""));
    expect(server.acceptedList).toEqual([...ids(small), ...ids(large)]);
  });

  test("gives the same Idempotency-Key to the same batch sent again, another to another batch", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server, { headers: { "X-Fleet": "kitchen" } });
    const batch = messages(5);

    server.fail({ type: "status", status: 500 });
    await sinkError(sink.send(batch, options()));
    await sink.send(batch, options());
    await sink.send(messages(5), options());

    const keys = server.requests.map((request) => request.headers["idempotency-key"]);
    expect(keys[0]).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(keys[1]).toBe(keys[0]);
    expect(keys[2]).not.toBe(keys[0]);
    expect(server.requests.every((request) => request.headers["x-fleet"] === "kitchen")).toBe(true);
  });

  test("401 is 'unauthorized'; the send after it asks the token source for a forced refresh", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    const batch = messages(2);
    // A real refusal: the token has expired by the server's own clock.
    w.tokens.expireNext = true;

    const error = await sinkError(sink.send(batch, options()));
    expect(error.failure).toBe("unauthorized");
    expect(error.status).toBe(401);
    expect(server.requests[0]?.reason).toMatch(/exp/);

    await sink.send(batch, options({ forceRefresh: true }));
    expect(w.tokens.calls.map((call) => call.forceRefresh)).toEqual([false, true]);
    expect([...server.accepted]).toEqual(ids(batch));
  });

  test("429 is 'retry' after Retry-After given in seconds", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "status", status: 429, retryAfter: "7" });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error).toMatchObject({ failure: "retry", status: 429, retryAfterMs: 7000 });
  });

  test("503 is 'retry' after Retry-After given as an HTTP date", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "status", status: 503, retryAfter: new Date(w.clock.now() + 120_000).toUTCString() });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error).toMatchObject({ failure: "retry", status: 503, retryAfterMs: 120_000 });
  });

  test("500 and a dropped connection are 'retry' without a Retry-After; the batch then goes through", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    const batch = messages(2);
    server.fail({ type: "status", status: 500, body: "database away" });
    server.fail({ type: "drop" });

    const failed = await sinkError(sink.send(batch, options()));
    const dropped = await sinkError(sink.send(batch, options()));
    await sink.send(batch, options());

    expect(failed).toMatchObject({ failure: "retry", status: 500, retryAfterMs: undefined });
    expect(failed.message).toContain("database away");
    expect(dropped).toMatchObject({ failure: "retry", status: undefined });
    expect(dropped.message).toMatch(/cannot reach/);
    expect(server.acceptedList).toEqual(ids(batch));
  });

  test("400 and 413 are 'reject' (the batch is refused for good)", async () => {
    const server = await httpServer({ maxBodyBytes: 2000 });
    const w = world();
    const sink = httpSink(w, server, { gzipAboveBytes: 1_000_000 });
    server.fail({ type: "status", status: 400, body: "bad batch" });

    const bad = await sinkError(sink.send(messages(1), options()));
    const tooLarge = await sinkError(sink.send(messages(30), options()));

    expect(bad).toMatchObject({ failure: "reject", status: 400 });
    expect(tooLarge).toMatchObject({ failure: "reject", status: 413 });
    expect(server.accepted.size).toBe(0);
  });

  test("403 is 'retry' with a message that says which access is missing", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "status", status: 403 });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error).toMatchObject({ failure: "retry", status: 403 });
    expect(error.message).toMatch(/grant it access/);
  });

  test("a request without an answer times out after 30 s on the sink's clock: 'retry'", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "hang" });

    const sending = sinkError(sink.send(messages(1), options()));
    await server.whenRequests(1);
    w.clock.advance(29_999);
    w.clock.advance(1);
    const error = await sending;

    expect(error).toMatchObject({ failure: "retry", status: undefined });
    expect(error.message).toMatch(/did not answer within 30 s/);
  });

  test("the runner's signal ends a request in flight with the signal's reason, not a SinkError", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "hang" });
    const controller = new AbortController();
    const reason = new Error("agent stopping");

    const sending = sink.send(messages(1), options({ signal: controller.signal }));
    await server.whenRequests(1);
    controller.abort(reason);

    await expect(sending).rejects.toBe(reason);
  });

  test("stop() ends a request in flight ('retry'); start() makes the sink usable again", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "hang" });
    const batch = messages(1);

    const sending = sinkError(sink.send(batch, options()));
    await server.whenRequests(1);
    await sink.stop();
    expect((await sending).failure).toBe("retry");
    expect((await sinkError(sink.send(batch, options()))).message).toMatch(/stopped/);

    await sink.start();
    await sink.send(batch, options());
    expect([...server.accepted]).toEqual(ids(batch));
  });

  test("a redirect is not followed, and its target never sees a request (nor the token)", async () => {
    const server = await httpServer();
    const elsewhere = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "redirect", status: 307, location: `${elsewhere.url}/collect` });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error).toMatchObject({ failure: "retry", status: 307 });
    expect(error.message).toContain(`${elsewhere.url}/collect`);
    expect(error.message).toMatch(/never followed/);
    expect(server.requests).toHaveLength(1);
    expect(elsewhere.requests).toHaveLength(0);
  });

  test("an endless error body is read only up to the cap: the send still ends", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({ type: "endless", status: 500 });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error).toMatchObject({ failure: "retry", status: 500 });
    // The message quotes at most 300 characters of it.
    expect(error.message.length).toBeLessThan(500);
    expect(error.message).toContain("xxxx");
  });

  test("control characters in a server's text are removed from the message", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    server.fail({
      type: "status",
      status: 400,
      body: "bad\u001b]0;owned\u0007 input\r\n\u001b[2Jmore\u202e",
    });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error.failure).toBe("reject");
    expect(error.message).toContain("bad]0;owned input [2Jmore");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the point.
    expect(error.message).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
  });

  test("E_SIGN_IN_REQUIRED from the token source propagates as it is, and nothing is sent", async () => {
    const server = await httpServer();
    const w = world();
    const sink = httpSink(w, server);
    const signIn = new EntraToolError("E_SIGN_IN_REQUIRED");
    w.tokens.failWith = signIn;

    await expect(sink.send(messages(1), options())).rejects.toBe(signIn);
    expect(server.requests).toHaveLength(0);
  });

  test("sends over plain http to a loopback receiver, with the scopes of its configuration", async () => {
    const server = await httpServer({ plain: true });
    const w = world();
    const sink = httpSink(w, server, { scopes: ["api://entratool-telemetry/Telemetry.Send"] });
    const batch = messages(2);

    await sink.send(batch, options());

    expect(server.url.startsWith("http://127.0.0.1:")).toBe(true);
    expect(w.tokens.calls[0]?.scopes).toEqual(["api://entratool-telemetry/Telemetry.Send"]);
    expect([...server.accepted]).toEqual(ids(batch));
  });
});

describe("eventhubs sink", () => {
  function eventHubsSink(w: World, server: SinkServer): EventHubsSink {
    const config = v.parse(EventHubsSinkSchema, { type: "eventhubs", namespace: server.url, hub: HUB });
    return new EventHubsSink({ ...w.deps, config });
  }

  test("delivers a batch in Event Hubs' JSON batch format with an Event Hubs token", async () => {
    const server = await eventHubsServer();
    const w = world();
    const sink = eventHubsSink(w, server);
    const batch = messages(3);

    await sink.send(batch, options());

    const [request] = server.requests;
    expect(request?.status).toBe(201);
    expect(request?.path).toBe(`/${HUB}/messages`);
    expect(request?.query.get("api-version")).toBe("2014-01");
    expect(request?.headers["content-type"]).toBe("application/vnd.microsoft.servicebus.json");
    expect(request?.claims?.aud).toBe("https://eventhubs.azure.net");
    const events = JSON.parse(request?.body ?? "") as Array<{ Body: string; UserProperties: unknown }>;
    expect(events.map((event) => JSON.parse(event.Body))).toEqual(
      batch.map(({ id, ts, device, topic, data }) => ({ id, ts, device, topic, data })),
    );
    expect(events[0]?.UserProperties).toEqual({ topic: "sensors/kitchen" });
    expect([...server.accepted]).toEqual(ids(batch));
    expect(w.tokens.calls[0]?.scopes).toEqual(["https://eventhubs.azure.net/.default"]);
  });

  test("a full batch of quote-heavy messages stays within the 1 MB limit in one request", async () => {
    const server = await eventHubsServer();
    const w = world();
    const sink = eventHubsSink(w, server);
    // Every quote doubles when the message becomes a string Body: the worst case for the size.
    const pool = messages(1000, () => ({ quoted: '"'.repeat(2000) }));
    const batch = fill(sink, pool);
    expect(batch.length).toBeGreaterThan(50);
    expect(batch.length).toBeLessThan(pool.length);

    await sink.send(batch, options());

    expect(server.requests).toHaveLength(1);
    expect(Buffer.byteLength(server.requests[0]?.body ?? "")).toBeGreaterThan(700_000);
    expect(server.acceptedList).toEqual(ids(batch));
  });

  test("a batch past the limit goes in parts; a single message past it is refused without a request", async () => {
    const server = await eventHubsServer();
    const w = world();
    const sink = eventHubsSink(w, server);
    const big = messages(3, () => ({ blob: "a".repeat(400_000) }));

    await sink.send(big, options());
    expect(server.requests.length).toBeGreaterThan(1);
    expect(server.requests.every((request) => request.status === 201)).toBe(true);
    expect(server.acceptedList).toEqual(ids(big));

    const huge = messages(1, () => ({ blob: "a".repeat(1_100_000) }));
    const before = server.requests.length;
    const error = await sinkError(sink.send(huge, options()));
    expect(error).toMatchObject({ failure: "reject" });
    expect(error.message).toContain(huge[0]?.id);
    expect(server.requests).toHaveLength(before);
  });

  test("403 is 'retry' naming the role to grant", async () => {
    const server = await eventHubsServer();
    const w = world();
    const sink = eventHubsSink(w, server);
    server.fail({
      type: "status",
      status: 403,
      body: '{"error":{"code":"Unauthorized","message":"no claim"}}',
    });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error).toMatchObject({ failure: "retry", status: 403 });
    expect(error.message).toContain("Unauthorized: no claim");
    expect(error.message).toContain('"Azure Event Hubs Data Sender"');
  });

  test("a bare namespace name means {name}.servicebus.windows.net", async () => {
    const urls: string[] = [];
    const w = world(async (url) => {
      urls.push(url);
      return new Response(null, { status: 201 });
    });
    const config = v.parse(EventHubsSinkSchema, {
      type: "eventhubs",
      namespace: "contoso-telemetry",
      hub: HUB,
    });
    const sink = new EventHubsSink({ ...w.deps, config });

    await sink.send(messages(1), options());

    expect(urls).toEqual([
      `https://contoso-telemetry.servicebus.windows.net/${HUB}/messages?api-version=2014-01`,
    ]);
    expect(sink.name).toBe(`eventhubs:contoso-telemetry.servicebus.windows.net/${HUB}`);
  });
});

describe("azure-monitor-logs sink", () => {
  function logsSink(w: World, server: SinkServer): AzureMonitorLogsSink {
    const config = v.parse(AzureMonitorLogsSinkSchema, {
      type: "azure-monitor-logs",
      endpoint: server.url,
      rule: RULE,
      stream: STREAM,
    });
    return new AzureMonitorLogsSink({ ...w.deps, config });
  }

  test("delivers records with TimeGenerated, gzipped, with a Monitor token (audience with its slash)", async () => {
    const server = await logsServer();
    const w = world();
    const sink = logsSink(w, server);
    const batch = messages(30);

    await sink.send(batch, options());

    const [request] = server.requests;
    expect(request?.status).toBe(204);
    expect(request?.path).toBe(`/dataCollectionRules/${RULE}/streams/${STREAM}`);
    expect(request?.query.get("api-version")).toBe("2023-01-01");
    expect(request?.headers["content-encoding"]).toBe("gzip");
    expect(request?.claims?.aud).toBe("https://monitor.azure.com/");
    expect(JSON.parse(request?.body ?? "")).toEqual(
      batch.map(({ id, ts, device, topic, data }) => ({ TimeGenerated: ts, id, device, topic, data })),
    );
    expect([...server.accepted]).toEqual(ids(batch));
    expect(sink.name).toBe(`azure-monitor-logs:${RULE}/${STREAM}`);
  });

  test("full batches (by bytes, and by count) stay within the API's 1 MB per call", async () => {
    const server = await logsServer();
    const w = world();
    const sink = logsSink(w, server);
    const byBytes = fill(
      sink,
      messages(400, (i) => ({ i, text: "z".repeat(4000) })),
    );
    const byCount = fill(
      sink,
      messages(600, (i) => ({ i, text: "y".repeat(1700) })),
    );
    expect(byBytes.length).toBeLessThan(400);
    expect(byCount).toHaveLength(sink.maxBatchMessages);

    await sink.send(byBytes, options());
    await sink.send(byCount, options());

    expect(server.requests).toHaveLength(2);
    for (const request of server.requests) {
      expect(request.status).toBe(204);
      expect(Buffer.byteLength(request.body)).toBeGreaterThan(900_000);
      expect(Buffer.byteLength(request.body)).toBeLessThanOrEqual(1_000_000);
    }
    expect(server.acceptedList).toEqual([...ids(byBytes), ...ids(byCount)]);
  });

  test("413 from the service is 'reject'", async () => {
    const server = await logsServer({ maxBodyBytes: 10_000 });
    const w = world();
    const sink = logsSink(w, server);

    const error = await sinkError(
      sink.send(
        messages(20, (i) => ({ i, text: "q".repeat(1000) })),
        options(),
      ),
    );

    expect(error).toMatchObject({ failure: "reject", status: 413 });
    expect(server.accepted.size).toBe(0);
  });

  test("429 is 'retry' after the service's Retry-After", async () => {
    const server = await logsServer();
    const w = world();
    const sink = logsSink(w, server);
    server.fail({ type: "status", status: 429, retryAfter: "30" });
    const batch = messages(2);

    const error = await sinkError(sink.send(batch, options()));
    await sink.send(batch, options());

    expect(error).toMatchObject({ failure: "retry", status: 429, retryAfterMs: 30_000 });
    expect([...server.accepted]).toEqual(ids(batch));
  });

  test("403 is 'retry' naming the role to grant on the rule", async () => {
    const server = await logsServer();
    const w = world();
    const sink = logsSink(w, server);
    server.fail({ type: "status", status: 403 });

    const error = await sinkError(sink.send(messages(1), options()));

    expect(error).toMatchObject({ failure: "retry", status: 403 });
    expect(error.message).toContain('"Monitoring Metrics Publisher"');
  });
});

describe("configuration", () => {
  function problems(schema: v.GenericSchema, input: unknown): string[] {
    const result = v.safeParse(schema, input);
    return result.success ? [] : formatIssues(result.issues, "sinks[0]");
  }

  test("good configurations parse, with their defaults", () => {
    expect(v.parse(HttpSinkSchema, { type: "http", url: "https://telemetry.contoso.com/ingest" })).toEqual({
      type: "http",
      url: "https://telemetry.contoso.com/ingest",
      format: "json",
      gzipAboveBytes: 1024,
      maxBatchMessages: 500,
      maxBatchBytes: 1024 * 1024,
    });
    expect(
      v.parse(EventHubsSinkSchema, { type: "eventhubs", namespace: "contoso-telemetry", hub: "pi" }),
    ).toEqual({
      type: "eventhubs",
      namespace: "contoso-telemetry",
      hub: "pi",
      scopes: ["https://eventhubs.azure.net/.default"],
    });
    expect(
      v.parse(AzureMonitorLogsSinkSchema, {
        type: "azure-monitor-logs",
        endpoint: "https://telemetry-a1b2.westeurope-1.ingest.monitor.azure.com",
        rule: RULE,
        stream: STREAM,
      }),
    ).toEqual({
      type: "azure-monitor-logs",
      endpoint: "https://telemetry-a1b2.westeurope-1.ingest.monitor.azure.com",
      rule: RULE,
      stream: STREAM,
      scopes: ["https://monitor.azure.com//.default"],
    });
    const full = {
      type: "http",
      url: "http://127.0.0.1:8080/ingest",
      format: "ndjson",
      scopes: ["api://x/.default"],
      gzipAboveBytes: 0,
      headers: { "X-Fleet": "kitchen" },
      maxBatchMessages: 100,
      maxBatchBytes: 65536,
    };
    expect(v.parse(HttpSinkSchema, full)).toEqual(full);
  });

  test("plain http is refused except to this machine", () => {
    const allowed = [
      "http://127.0.0.1:8080/x",
      "http://127.8.9.10/",
      "http://localhost:1/",
      "http://[::1]:9/",
    ];
    for (const url of allowed) expect(problems(HttpSinkSchema, { type: "http", url })).toEqual([]);
    for (const url of [
      "http://10.0.0.1/ingest",
      "http://telemetry.contoso.com/",
      "http://127.0.0.1.nip.io/",
    ]) {
      expect(problems(HttpSinkSchema, { type: "http", url })).toEqual([
        `sinks[0].url: must be an https:// URL (http:// only to 127.0.0.1, ::1 or localhost, as the request carries a token) (found "${url}")`,
      ]);
    }
    expect(problems(HttpSinkSchema, { type: "http", url: "https://user:secret@contoso.com/" })).toHaveLength(
      1,
    );
    expect(
      problems(AzureMonitorLogsSinkSchema, {
        type: "azure-monitor-logs",
        endpoint: "http://ingest.contoso.com",
        rule: RULE,
        stream: STREAM,
      }),
    ).toEqual([expect.stringMatching(/^sinks\[0\]\.endpoint: must be an https:\/\/ URL/)]);
  });

  test("a bad http sink gets every problem at once, each with its path", () => {
    expect(
      problems(HttpSinkSchema, {
        type: "http",
        url: "ftp://contoso.com",
        format: "xml",
        scopes: [],
        gzipAboveBytes: -1,
        headers: { Authorization: "Bearer x", "X-Ok": "line\nbreak" },
        maxBatchMessages: 0,
        retries: 3,
        timeout: 5,
      }),
    ).toEqual([
      'sinks[0].url: must be an https:// URL (http:// only to 127.0.0.1, ::1 or localhost, as the request carries a token) (found "ftp://contoso.com")',
      'sinks[0].format: must be "json" or "ndjson" (found "xml")',
      'sinks[0].scopes: must be a non-empty list of scopes, e.g. ["api://telemetry/.default"] (found [])',
      "sinks[0].gzipAboveBytes: must be a whole number of bytes 0-67108864 (found -1)",
      expect.stringMatching(
        /^sinks\[0\]\.headers\.Authorization: must be a header name .* \(found "Authorization"\)$/,
      ),
      'sinks[0].headers.X-Ok: must be a header value of printable ASCII (found "line\\nbreak")',
      "sinks[0].maxBatchMessages: must be a whole number 1-10000 (found 0)",
      "sinks[0].retries: unknown field",
      "sinks[0].timeout: unknown field",
    ]);
  });

  test("bad eventhubs and azure-monitor-logs sinks get every problem with its path", () => {
    expect(
      problems(EventHubsSinkSchema, { type: "eventhubs", namespace: "http://eh.contoso.com", scopes: [""] }),
    ).toEqual([
      expect.stringMatching(
        /^sinks\[0\]\.namespace: must be an Event Hubs namespace name .* \(found "http:\/\/eh\.contoso\.com"\)$/,
      ),
      expect.stringMatching(/^sinks\[0\]\.hub: is required \(an event hub name/),
      'sinks[0].scopes[0]: must be a scope without spaces, e.g. "api://telemetry/.default" (found "")',
    ]);
    expect(
      problems(AzureMonitorLogsSinkSchema, {
        type: "azure-monitor-logs",
        endpoint: "https://ingest.contoso.com",
        rule: "dcr-123",
        stream: "Telemetry",
      }),
    ).toEqual([
      `sinks[0].rule: must be a data collection rule's immutable id, "dcr-" and 32 hex digits (found "dcr-123")`,
      'sinks[0].stream: must be a stream the data collection rule declares, e.g. "Custom-Telemetry" (found "Telemetry")',
    ]);
  });

  test("createHttpFamilySink builds the sink each configuration names", () => {
    const w = world();
    const http = createHttpFamilySink(
      v.parse(HttpSinkSchema, { type: "http", url: "https://contoso.com/ingest", maxBatchMessages: 50 }),
      w.deps,
    );
    const eventHubs = createHttpFamilySink(
      v.parse(EventHubsSinkSchema, { type: "eventhubs", namespace: "contoso-telemetry", hub: "pi" }),
      w.deps,
    );
    const logs = createHttpFamilySink(
      v.parse(AzureMonitorLogsSinkSchema, {
        type: "azure-monitor-logs",
        endpoint: "https://ingest.contoso.com",
        rule: RULE,
        stream: STREAM,
      }),
      w.deps,
    );
    expect(http).toBeInstanceOf(HttpSink);
    expect([http.name, http.maxBatchMessages, http.maxBatchBytes]).toEqual([
      "http:contoso.com/ingest",
      50,
      1048576,
    ]);
    expect(eventHubs).toBeInstanceOf(EventHubsSink);
    expect(eventHubs.maxBatchBytes).toBeLessThanOrEqual(500_000);
    expect(logs).toBeInstanceOf(AzureMonitorLogsSink);
    expect(logs.maxBatchBytes).toBeLessThan(1_000_000);
  });
});
