/**
 * The `http` sink: POSTs each batch to a URL of your own, with the board's bearer token.
 *
 * Request:
 * - `format: "json"` (default): `Content-Type: application/json`, a JSON array of messages
 *   (`{id, ts, device, topic, data}`, types.ts Message). `format: "ndjson"`:
 *   `Content-Type: application/x-ndjson`, one message per line, each line ending in "\n".
 * - `Content-Encoding: gzip` when the body is larger than `gzipAboveBytes` (default 1024).
 * - `Authorization: Bearer <token>` for `scopes` (default: the profile's).
 * - `Idempotency-Key`: the SHA-256 of the batch's message ids, in order, each followed by "\n",
 *   as base64url (43 characters). The same batch sent again (the runner's retry) carries the same
 *   key, so a receiver can answer a repeat without storing it twice; a 409 (the same key still
 *   being processed, as the IETF Idempotency-Key draft has it) is a "retry". A hash rather than
 *   the ids themselves keeps the header small whatever the batch (500 ids would be 18 KiB, past
 *   many servers' header limits); the ids are in the body for per-message de-duplication.
 * - `headers`: extra non-secret headers from the configuration, sent as they are.
 * Any 2xx accepts the batch; the other answers are classified as http-common.ts says.
 */
import { createHash } from "node:crypto";
import { type Message, type SendOptions, type Sink, wireMessage } from "../types.ts";
import { AzureMonitorLogsSink } from "./azure-monitor-logs.ts";
import { EventHubsSink } from "./eventhubs.ts";
import { type HttpSinkDeps, RequestSink, utf8 } from "./http-common.ts";
import type { HttpFamilySinkConfig, HttpSinkConfig } from "./http-schema.ts";

/** 409: a request with the same Idempotency-Key is still being processed (try again later). */
const IDEMPOTENCY_CONFLICT: ReadonlySet<number> = new Set([409]);

export interface HttpSinkOptions extends HttpSinkDeps {
  readonly config: HttpSinkConfig;
}

/** SHA-256 of the ids (each followed by "\n"), base64url: the same batch gives the same key. */
export function idempotencyKey(batch: readonly Message[]): string {
  const hash = createHash("sha256");
  for (const message of batch) hash.update(`${message.id}\n`);
  return hash.digest("base64url");
}

/** The body of a batch in the configured format (uncompressed). */
export function httpBody(batch: readonly Message[], format: "json" | "ndjson"): Uint8Array<ArrayBuffer> {
  const messages = batch.map(wireMessage);
  const text =
    format === "ndjson"
      ? messages.map((message) => `${JSON.stringify(message)}\n`).join("")
      : JSON.stringify(messages);
  return utf8.encode(text);
}

export class HttpSink extends RequestSink {
  readonly name: string;
  readonly maxBatchMessages: number;
  readonly maxBatchBytes: number;
  readonly #config: HttpSinkConfig;

  constructor(options: HttpSinkOptions) {
    super(options);
    const { config } = options;
    this.#config = config;
    const url = new URL(config.url);
    // Host and path: two http sinks to one host (other paths) keep separate cursors.
    this.name = `http:${url.host}${url.pathname === "/" ? "" : url.pathname}`;
    this.maxBatchMessages = config.maxBatchMessages;
    this.maxBatchBytes = config.maxBatchBytes;
  }

  async send(batch: readonly Message[], options: SendOptions): Promise<void> {
    const config = this.#config;
    await this.post(
      {
        url: config.url,
        scopes: config.scopes ?? this.deps.defaultScopes,
        contentType: config.format === "ndjson" ? "application/x-ndjson" : "application/json",
        body: httpBody(batch, config.format),
        gzipAboveBytes: config.gzipAboveBytes,
        headers: { ...config.headers, "Idempotency-Key": idempotencyKey(batch) },
        retryStatuses: IDEMPOTENCY_CONFLICT,
      },
      options,
    );
  }

  protected forbidden(): string {
    return "the signed-in identity may not post there: grant it access at the receiver (an app role, or the scope it checks); the batch waits meanwhile";
  }
}

/**
 * The sink a parsed configuration (./http-schema.ts) describes, built with its seams. Here rather
 * than beside the schemas, so that loading the configuration loads no sink code.
 */
export function createHttpFamilySink(config: HttpFamilySinkConfig, deps: HttpSinkDeps): Sink {
  switch (config.type) {
    case "http":
      return new HttpSink({ ...deps, config });
    case "eventhubs":
      return new EventHubsSink({ ...deps, config });
    case "azure-monitor-logs":
      return new AzureMonitorLogsSink({ ...deps, config });
  }
}
