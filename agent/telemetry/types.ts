/**
 * The telemetry path's contracts: sources → outbox → one cursor per sink → the sink runner (the
 * wrapper around every sink: batching, retry, back-off, health) → a sink. Nothing flows back from
 * sinks to sources. Each part is built with its seams (clock, logger, tokens) and nothing else.
 */

/** A JSON value, as it goes over the wire. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/**
 * One telemetry message: the object the MQTT payload and every HTTP record carry. `id` is a UUIDv7
 * given when the message is accepted and kept across retries, so that a receiver can drop the
 * duplicates at-least-once delivery brings.
 */
export interface Message {
  readonly id: string;
  /** When the message was collected, ISO 8601 in UTC (as the clock said: see `clockTrusted`). */
  readonly ts: string;
  readonly device: string;
  readonly topic: string;
  readonly data: JsonValue;
}

/** The message as it goes over the wire: only its own fields (the outbox adds seq and bytes). */
export function wireMessage(message: Message): Message {
  return { id: message.id, ts: message.ts, device: message.device, topic: message.topic, data: message.data };
}

/** What a source or `send` hands to the outbox: the outbox gives id and device. */
export interface NewMessage {
  readonly topic: string;
  readonly data: JsonValue;
  /** Epoch ms of collection; default: when appended. */
  readonly at?: number;
}

/** A message as the outbox keeps it: its position (strictly increasing) and size on the wire. */
export interface StoredMessage extends Message {
  readonly seq: number;
  /** Bytes of `JSON.stringify(message)` (without seq and bytes). */
  readonly bytes: number;
}

export interface OutboxStats {
  /** Messages kept (not yet delivered to every sink, or dead-lettered ones). */
  readonly messages: number;
  readonly bytes: number;
  /** Messages dropped (oldest first) to keep within maxBytes / maxAgeSeconds, since the outbox was created. */
  readonly dropped: number;
  /** Per sink: messages after its cursor, the age of the oldest one (ms; 0 when none), dead letters. */
  readonly sinks: Readonly<
    Record<string, { readonly pending: number; readonly lagMs: number; readonly deadLettered: number }>
  >;
}

/**
 * The durable queue between sources and sinks. `append` resolves once the messages are on disk
 * (fsync'd; appends close together share one commit); each sink reads after its own cursor and
 * acknowledges what its receiver accepted, so a slow sink never holds back another.
 */
export interface Outbox {
  append(messages: readonly NewMessage[]): Promise<readonly Message[]>;
  /** Registers a sink's cursor (at the current end for a new sink: it does not replay history). */
  register(sink: string): void;
  /** Forgets the cursors of sinks not in `sinks` (no longer configured), so they pin no messages. */
  retain(sinks: readonly string[]): void;
  /** Up to `maxMessages` / `maxBytes` (at least one message) after the sink's cursor, oldest first. */
  read(sink: string, maxMessages: number, maxBytes: number): readonly StoredMessage[];
  /** Moves the sink's cursor past `seq` (messages up to it were accepted). */
  ack(sink: string, seq: number): void;
  /** Keeps messages the sink's receiver refused for good, counted, and moves the cursor past them. */
  deadLetter(sink: string, messages: readonly StoredMessage[], reason: string): void;
  stats(now: number): OutboxStats;
  /** Called after every append that stored something; returns the unsubscribe. */
  onAppend(listener: () => void): () => void;
  close(): void;
}

/** A token for a sink: silent only (a code is never shown for a sink; the sign-in session does that). */
export interface AccessToken {
  readonly accessToken: string;
  /** Epoch ms. */
  readonly expiresAt: number;
}

export interface TokenRequest {
  readonly scopes: readonly string[];
  /** Redeem the refresh token even when the cached token looks valid (after a 401). */
  readonly forceRefresh?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * Where sinks get tokens: from the board's one sign-in, silently. Rejects with EntraToolError
 * E_SIGN_IN_REQUIRED while nobody is signed in (the sign-in session shows a code meanwhile), and
 * with the session's other errors (E_NETWORK…) when the identity provider cannot be reached.
 */
export interface TokenSource {
  get(request: TokenRequest): Promise<AccessToken>;
  /** Called whenever a new sign-in or refresh gave new tokens (sinks then rotate); returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

/** How a failed send is handled by the runner. */
export type SinkFailure =
  /** Try again after back-off (5xx, network errors, broker away), or after `retryAfterMs` when given. */
  | "retry"
  /** The receiver refused the token (HTTP 401, MQTT bad credentials): one forced refresh, then retry. */
  | "unauthorized"
  /** The receiver refused the batch for good (other 4xx): keep it as a dead letter, count it, move on. */
  | "reject";

export class SinkError extends Error {
  override readonly name = "SinkError";
  readonly failure: SinkFailure;
  /** The server's Retry-After, ms (capped by the runner). */
  readonly retryAfterMs: number | undefined;
  /** HTTP status or MQTT reason code, for the log and health. */
  readonly status: number | undefined;

  constructor(
    failure: SinkFailure,
    message: string,
    options: { retryAfterMs?: number; status?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.failure = failure;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }
}

export function isSinkError(value: unknown): value is SinkError {
  return value instanceof Error && value.name === "SinkError" && "failure" in value;
}

export interface SendOptions {
  readonly signal: AbortSignal;
  /** The last send was refused with "unauthorized": ask for a new token, not the cached one. */
  readonly forceRefresh: boolean;
}

/**
 * One destination. A sink only talks to its receiver; batching, retry, back-off, the cursor and
 * health are the runner's (./sinks/runner.ts), so every sink behaves the same.
 */
export interface Sink {
  /** Stable name: the cursor's key in the outbox and the name in `status` ("mqtt:broker.local"). */
  readonly name: string;
  /** Most messages and bytes (the body as sent, before compression) in one send. */
  readonly maxBatchMessages: number;
  readonly maxBatchBytes: number;
  /** Connects where the protocol has connections; may resolve before connected (sends wait). Idempotent. */
  start(): Promise<void>;
  /** Resolves once the receiver accepted every message (MQTT PUBACK, HTTP 2xx); throws SinkError otherwise. */
  send(batch: readonly Message[], options: SendOptions): Promise<void>;
  /** Whether the connection is up (always true for request/response sinks once one send worked). */
  connected(): boolean;
  /**
   * Calls `listener` each time a connection is (re)established, so that the runner retries at once
   * instead of waiting out its back-off (a broker back after minutes). Sinks without connections
   * leave it out. Returns the unsubscribe.
   */
  onConnected?(listener: () => void): () => void;
  /** Closes connections. Idempotent. */
  stop(): Promise<void>;
}

/** A sink's health, for `status`, the MQTT health message and the log. */
export interface SinkHealth {
  readonly name: string;
  readonly type: string;
  readonly connected: boolean;
  /** "ok" | "retrying" | "waiting-for-sign-in" | "stopped" */
  readonly state: string;
  /** Epoch ms of the last accepted batch. */
  readonly lastSuccess: number | undefined;
  readonly pending: number;
  /** Age of the oldest pending message, ms. */
  readonly lagMs: number;
  readonly sent: number;
  readonly errors: number;
  readonly deadLettered: number;
  readonly lastError: string | undefined;
}

/** A source: collects messages on its own schedule and appends them to the outbox. */
export interface Source {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
