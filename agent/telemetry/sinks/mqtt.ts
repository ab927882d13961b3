/**
 * The MQTT sink: publishes each telemetry message as one QoS 1 PUBLISH (the payload is the whole
 * Message as JSON), keeps a retained state topic ("online" / "awaiting-sign-in" / "offline", the
 * last also as Last Will) and a periodic health message, and keeps its connection authenticated
 * with the board's sign-in: every (re)connect takes a fresh token, and the token is rotated
 * before it expires without losing or reordering a message.
 *
 * Contracts (see ../types.ts `Sink`): batching, retry, back-off between sends and the cursor are
 * the runner's. `send` publishes one batch and resolves once the broker acknowledged every
 * message, or throws SinkError ("retry": not connected, connection lost, a transient PUBACK
 * reason; "unauthorized": the broker refused the credentials; "reject": a PUBACK reason that will
 * never succeed) or, while the token source cannot give a token (E_SIGN_IN_REQUIRED…), that
 * source's error as it is, so that the runner knows it waits for a sign-in.
 *
 * The connection is managed here, not by mqtt.js (its `reconnectPeriod` is 0): each connection is
 * a new mqtt.js client, connected with a token taken just before, and a lost connection is
 * retried with capped exponential back-off and jitter on the injected clock.
 *
 * Token rotation happens at `expiresAt - min(5 min, a quarter of the token's lifetime)` and when
 * the token source says it has new tokens. It takes the same lock as `send`, so it never falls in
 * the middle of a batch: every QoS 1 message of a batch is acknowledged before the connection
 * changes. With auth oauth2-jwt the new token is first presented in-band (MQTT 5 AUTH, reason
 * 0x19, re-authenticate); when the broker does not take that, rotation reconnects from then on.
 * With auth token the connection ends cleanly (DISCONNECT, so the Last Will is not sent) and a new
 * one starts with the new token.
 */
import type { IClientOptions, IClientPublishOptions, MqttClient, PacketCallback } from "mqtt";
import { abortReason, type Clock } from "../../core/clock.ts";
import type { Logger } from "../../core/log.ts";
import { backoffDelay } from "../backoff.ts";
import {
  type AccessToken,
  isSinkError,
  type JsonValue,
  type Message,
  type SendOptions,
  type Sink,
  SinkError,
  type TokenSource,
  wireMessage,
} from "../types.ts";
import type { MqttSinkConfig } from "./mqtt-schema.ts";

/** mqtt.js's `connect`, the seam for tests; loaded lazily when none is given. */
export type MqttConnect = typeof import("mqtt")["connect"];

/** mqtt.js's AUTH packet (its type lives in mqtt-packet, which mqtt does not re-export). */
type AuthPacket = Parameters<MqttClient["handleAuth"]>[0];

/** What the retained state topic says while connected. */
export type MqttDeviceState = "online" | "awaiting-sign-in";

export interface MqttStateSource {
  current(): MqttDeviceState;
  /** Called on every change; returns the unsubscribe. */
  subscribe(listener: (state: MqttDeviceState) => void): () => void;
}

export interface MqttSinkOptions {
  readonly config: MqttSinkConfig;
  /** The device id: {device} in topics and the client id, and the default user name. */
  readonly device: string;
  readonly tokens: TokenSource;
  /** Scopes of the token when the configuration names none. */
  readonly defaultScopes: readonly string[];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly connect?: MqttConnect;
  /** Reads the ca/cert/key files (at every connect, so a renewed certificate is picked up). */
  readonly readFile?: (path: string) => Promise<Uint8Array>;
  readonly state: MqttStateSource;
  /** The body of the periodic health message. */
  readonly health: () => JsonValue;
  /** Reconnect back-off, ms: the first delay and the cap (defaults 1 s and 60 s); each delay is jittered to 50-100 %. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** In [0, 1): the jitter's source (default Math.random). */
  readonly random?: () => number;
}

/** Counters for `status` and tests. */
export interface MqttSinkStats {
  /** Connections that reached CONNACK success. */
  readonly connects: number;
  readonly rotationsInBand: number;
  readonly rotationsByReconnect: number;
  /** Whether the broker took an in-band re-authentication: undefined until one was tried. */
  readonly inBandReauth: boolean | undefined;
}

/** How long mqtt.js waits for CONNACK, ms. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long a send waits for a connection attempt under way (or a rotation) before it throws "retry", ms. */
const SEND_WAIT_MS = 15_000;
/** How long the broker has to answer an in-band re-authentication, ms. */
const REAUTH_TIMEOUT_MS = 5_000;
/** How long a clean end (the last acknowledgements, DISCONNECT) may take before the socket is destroyed, ms. */
const END_TIMEOUT_MS = 3_000;
/** Rotation happens this long before expiry at most (a quarter of the lifetime for shorter tokens), ms. */
const ROTATION_MARGIN_MS = 5 * 60_000;
/** A token within this much of its expiry is not used at all (a tenth of the lifetime for shorter tokens), ms. */
const EXPIRY_MARGIN_MS = 30_000;
/** When a rotation could not get a token, it is tried again after at most this long, ms. */
const ROTATION_RETRY_MS = 30_000;
/** The most bytes one send carries (each message is its own PUBLISH; this bounds memory). */
const MAX_BATCH_BYTES = 1024 * 1024;
/** MQTT 5 PUBACK reasons that no retry will change (the batch is kept as a dead letter). */
const REJECT_REASONS: ReadonlySet<number> = new Set([0x90, 0x95, 0x99, 0x9a, 0x9b]);
/** Reasons that mean "these credentials are refused": MQTT 3.1.1 CONNACK 4/5, MQTT 5 134/135. */
const UNAUTHORIZED_REASONS: ReadonlySet<number> = new Set([4, 5, 0x86, 0x87]);
/** MQTT 5 AUTH reasons. */
const AUTH_SUCCESS = 0x00;
const AUTH_REAUTHENTICATE = 0x19;

/** A token with the lifetime it had when we got it (the margins are fractions of it). */
interface HeldToken {
  readonly token: AccessToken;
  readonly lifetimeMs: number;
}

/** One network connection: one mqtt.js client, from CONNECT to close. */
interface Link {
  readonly client: MqttClient;
  token: HeldToken | undefined;
  readonly closed: Promise<void>;
  isClosed: boolean;
  /** The last error mqtt.js reported on it. */
  error: unknown;
  /** The reason code of a DISCONNECT the broker sent (MQTT 5). */
  disconnectReason: number | undefined;
  /** Set while it is ended on purpose to rotate the token: the next connection follows at once. */
  rotating: boolean;
  /** Settles an in-band re-authentication under way (with an error when it failed). */
  reauth: ((error?: Error) => void) | undefined;
  /** Called once when it closes (sends under way fail then). */
  readonly onClose: Set<() => void>;
}

type ErrorWithCode = Error & { code?: unknown };

export class MqttSink implements Sink {
  readonly name: string;
  readonly maxBatchMessages: number;
  readonly maxBatchBytes = MAX_BATCH_BYTES;

  readonly #options: MqttSinkOptions;
  readonly #config: MqttSinkConfig;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #needsToken: boolean;
  readonly #stateTopic: string;
  readonly #healthTopic: string;
  readonly #clientId: string;
  readonly #life = new AbortController();

  #started = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #link: Link | undefined;
  /** Why there is no connection: what a send throws meanwhile. */
  #failure: unknown;
  /** The token the next connection uses (taken by a rotation). */
  #pendingToken: HeldToken | undefined;
  /** The next connection asks the token source for a new token, not the cached one. */
  #forceRefresh = false;
  #attempting = false;
  readonly #attemptWaiters = new Set<() => void>();
  #pause: AbortController | undefined;
  /** The token source announced new tokens since the last connection attempt took one. */
  #tokensMoved = false;
  #rotationTimer: AbortController | undefined;
  /** Sends and rotations, one at a time, in call order. */
  #lock: Promise<void> = Promise.resolve();
  #unsubscribe: Array<() => void> = [];
  #inBand: boolean | undefined;
  #stats = { connects: 0, rotationsInBand: 0, rotationsByReconnect: 0 };
  /** The last "waits for a token" reason logged (cleared once a token came). */
  #lastWait: string | undefined;
  /** The last connection failure logged (cleared once connected). */
  #lastFailure: string | undefined;
  readonly #connectedListeners = new Set<() => void>();

  constructor(options: MqttSinkOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#clock = options.clock;
    this.#log = options.logger;
    this.#needsToken = options.config.auth === "token" || options.config.auth === "oauth2-jwt";
    this.name = `mqtt:${new URL(options.config.url).host}`;
    this.maxBatchMessages = options.config.maxBatchMessages;
    const fill = (template: string) => template.replaceAll("{device}", options.device);
    this.#stateTopic = fill(options.config.stateTopic);
    this.#healthTopic = fill(options.config.healthTopic);
    this.#clientId = fill(options.config.clientId);
  }

  /** Starts connecting in the background; resolves at once (sends wait for a connection under way). */
  start(): Promise<void> {
    if (this.#started || this.#stopping) return Promise.resolve();
    this.#started = true;
    this.#unsubscribe.push(this.#options.tokens.onChange(() => this.#tokensChanged()));
    this.#unsubscribe.push(
      this.#options.state.subscribe(() => {
        const link = this.#live();
        if (link) this.#publishState(link);
      }),
    );
    this.#loop = this.#run();
    void this.#healthLoop();
    return Promise.resolve();
  }

  connected(): boolean {
    return this.#live() !== undefined;
  }

  onConnected(listener: () => void): () => void {
    this.#connectedListeners.add(listener);
    return () => {
      this.#connectedListeners.delete(listener);
    };
  }

  stats(): MqttSinkStats {
    return { ...this.#stats, inBandReauth: this.#inBand };
  }

  async send(batch: readonly Message[], options: SendOptions): Promise<void> {
    if (options.signal.aborted) throw abortReason(options.signal);
    if (!this.#started || this.#stopping) throw new SinkError("retry", "The MQTT sink is not running.");
    const packets = this.#prepare(batch);
    await this.#exclusive(async () => {
      if (options.forceRefresh && this.#needsToken) await this.#refreshAfterRefusal(options.signal);
      let link = await this.#connection(options.signal);
      if (this.#needsToken && !this.#usable(link.token)) {
        // Never publish with an expired token: rotate first (this send holds the lock already).
        await this.#rotateLocked("expiry");
        link = await this.#connection(options.signal);
      }
      await this.#publishBatch(link, packets, options.signal);
    }, options.signal);
  }

  /** Publishes "offline" (retained) and ends the connection cleanly, within bounded time. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    this.#life.abort(new SinkError("retry", "The MQTT sink is stopping."));
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    const link = this.#link;
    if (link) await this.#close(link);
    // The loop ends at once unless the token source ignores the abort; it closes what it opens late.
    const timer = new AbortController();
    await Promise.race([this.#loop, this.#clock.sleep(END_TIMEOUT_MS, timer.signal).catch(() => {})]);
    timer.abort();
    this.#log.info({ sink: this.name }, "MQTT sink stopped");
  }

  /** Says "offline" (retained) and ends the connection cleanly, all within bounded time. */
  async #close(link: Link): Promise<void> {
    if (link.isClosed) return;
    const offline = new Promise<void>((resolve) =>
      link.client.publish(this.#stateTopic, "offline", { qos: 1, retain: true }, () => resolve()),
    );
    await this.#bounded(offline, link, END_TIMEOUT_MS);
    await this.#end(link);
  }

  // --- the connection loop -------------------------------------------------------------------

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      const outcome = await this.#attempt();
      if (this.#stopping) break;
      if (outcome === "rotated") {
        failures = 0;
        continue;
      }
      failures = outcome === "lost" ? 1 : failures + 1;
      await this.#sleepBackoff(failures);
    }
  }

  /** One connection: its token, CONNECT, its life, and how it ended. Never throws. */
  async #attempt(): Promise<"failed" | "lost" | "rotated"> {
    this.#attempting = true;
    let link: Link;
    try {
      let token: HeldToken | undefined;
      if (this.#needsToken) {
        const pending = this.#pendingToken;
        this.#pendingToken = undefined;
        const force = this.#forceRefresh;
        this.#forceRefresh = false;
        this.#tokensMoved = false;
        try {
          token = pending && this.#usable(pending) ? pending : await this.#freshToken(force);
          this.#lastWait = undefined;
        } catch (error) {
          // E_SIGN_IN_REQUIRED and the like: sends throw it as it is until a token comes.
          this.#failure = error;
          // Said once per kind of wait (every retry would repeat it while a person signs in).
          const said = describe(error);
          if (!this.#stopping && JSON.stringify(said) !== this.#lastWait) {
            this.#lastWait = JSON.stringify(said);
            this.#log.info({ sink: this.name, err: said }, "MQTT sink waits for a token");
          }
          return "failed";
        }
      }
      try {
        link = await this.#open(token);
      } catch (error) {
        const refusedBefore = isSinkError(this.#failure) && this.#failure.failure === "unauthorized";
        this.#failure = this.#classifyConnectError(error);
        // A refused token: the next connection asks for a refreshed one (once in a row; the
        // runner's forceRefresh sends ask again), so a broker that refuses every token does not
        // make the device redeem its refresh token at every back-off step.
        if (isSinkError(this.#failure) && this.#failure.failure === "unauthorized" && !refusedBefore) {
          this.#forceRefresh = true;
        }
        // Said once per kind of failure: a broker away for an hour is one line, not sixty.
        const said = JSON.stringify(describe(this.#failure));
        if (!this.#stopping && said !== this.#lastFailure) {
          this.#lastFailure = said;
          this.#log.warn({ sink: this.name, err: describe(this.#failure) }, "MQTT connection failed");
        }
        return "failed";
      }
      this.#link = link;
      this.#failure = undefined;
      this.#stats.connects += 1;
    } finally {
      this.#attempting = false;
      for (const wake of [...this.#attemptWaiters]) wake();
    }
    if (this.#stopping) {
      // stop() came while this connection was being made.
      await this.#close(link);
      return "lost";
    }
    this.#lastFailure = undefined;
    this.#log.info(
      { sink: this.name, url: this.#config.url, protocolVersion: this.#config.protocolVersion },
      "MQTT connected",
    );
    for (const listener of [...this.#connectedListeners]) listener();
    this.#publishState(link);
    this.#scheduleRotation(link);
    await link.closed;
    if (this.#link === link) this.#link = undefined;
    if (link.rotating) return "rotated";
    const reason = link.disconnectReason === undefined ? "" : ` (DISCONNECT reason ${link.disconnectReason})`;
    this.#failure = new SinkError("retry", `The connection to the MQTT broker was lost${reason}.`, {
      status: link.disconnectReason,
      cause: link.error,
    });
    if (!this.#stopping)
      this.#log.warn({ sink: this.name, err: describe(this.#failure) }, "MQTT connection lost");
    return "lost";
  }

  /** Connects one mqtt.js client; resolves at CONNACK success, rejects when it closes before. */
  async #open(token: HeldToken | undefined): Promise<Link> {
    const connect = this.#options.connect ?? (await import("mqtt")).connect;
    const options = await this.#clientOptions(token);
    if (this.#stopping) throw new SinkError("retry", "The MQTT sink is stopping.");
    // The URL taken apart here: given a string, mqtt.js parses it with node's deprecated url.parse,
    // which prints a deprecation warning into the journal.
    const url = new URL(this.#config.url);
    const client = connect({
      ...options,
      protocol: url.protocol.slice(0, -1) as "mqtt" | "mqtts" | "ws" | "wss",
      host: url.hostname.replace(/^\[|\]$/g, ""),
      ...(url.port === "" ? {} : { port: Number(url.port) }),
      path: `${url.pathname}${url.search}`,
    });
    let markClosed: () => void = () => {};
    const link: Link = {
      client,
      token,
      closed: new Promise<void>((resolve) => {
        markClosed = resolve;
      }),
      isClosed: false,
      error: undefined,
      disconnectReason: undefined,
      rotating: false,
      reauth: undefined,
      onClose: new Set(),
    };
    // The broker's answer to an in-band re-authentication arrives here (mqtt.js calls handleAuth
    // for every AUTH packet). Only reason 0 ends one; mqtt.js closes the connection on an error.
    client.handleAuth = (packet: AuthPacket, callback: PacketCallback) => {
      const settle = link.reauth;
      if (packet.reasonCode === AUTH_SUCCESS) {
        settle?.();
        callback();
        return;
      }
      const error = new Error(`The broker answered the authentication with reason ${packet.reasonCode}.`);
      settle?.(error);
      callback(error);
    };
    client.on("error", (error) => {
      link.error = error;
      link.reauth?.(error);
    });
    client.on("disconnect", (packet) => {
      link.disconnectReason = packet.reasonCode;
    });
    client.on("close", () => {
      if (link.isClosed) return;
      link.isClosed = true;
      link.reauth?.(new Error("The connection closed during re-authentication."));
      for (const listener of [...link.onClose]) listener();
      markClosed();
      // Releases mqtt.js's timers; the socket is gone already.
      client.end(true);
    });
    const stop = () => client.end(true);
    this.#life.signal.addEventListener("abort", stop, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        void link.closed.then(() =>
          reject(link.error ?? new Error("The broker closed the connection before CONNACK.")),
        );
      });
    } finally {
      this.#life.signal.removeEventListener("abort", stop);
    }
    return link;
  }

  async #clientOptions(token: HeldToken | undefined): Promise<IClientOptions> {
    const config = this.#config;
    const files: Pick<IClientOptions, "ca" | "cert" | "key"> = {};
    for (const key of ["ca", "cert", "key"] as const) {
      const path = config[key];
      if (path === undefined) continue;
      try {
        files[key] = Buffer.from(await this.#readFile(path));
      } catch (error) {
        throw new SinkError("retry", `Cannot read the MQTT ${key} file ${path}: ${describe(error)}.`, {
          cause: error,
        });
      }
    }
    const options: IClientOptions = {
      protocolVersion: config.protocolVersion,
      clientId: this.#clientId,
      keepalive: config.keepaliveSeconds,
      clean: true,
      // Reconnecting is ours: every connection needs a fresh token (see the file comment).
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      resubscribe: false,
      // Nothing waits offline inside mqtt.js: a send without a connection throws "retry".
      queueQoSZero: false,
      rejectUnauthorized: true,
      // mqtt.js's debug output would print the CONNECT packet, password included.
      log: () => {},
      will: { topic: this.#stateTopic, payload: Buffer.from("offline"), qos: 1, retain: true },
      ...files,
    };
    if (config.auth === "token" && token) {
      options.username = config.username ?? this.#options.device;
      options.password = token.token.accessToken;
    } else if (config.auth === "oauth2-jwt" && token) {
      options.properties = {
        authenticationMethod: config.method,
        authenticationData: Buffer.from(token.token.accessToken),
      };
    }
    return options;
  }

  async #readFile(path: string): Promise<Uint8Array> {
    if (this.#options.readFile) return this.#options.readFile(path);
    const { readFile } = await import("node:fs/promises");
    return readFile(path);
  }

  #classifyConnectError(error: unknown): unknown {
    if (isSinkError(error)) return error;
    if (!(error instanceof Error)) return error;
    const code = (error as ErrorWithCode).code;
    // mqtt.js: CONNACK refusals are ErrorWithReasonCode with the reason as a number.
    if (typeof code === "number" && /refused/i.test(error.message)) {
      if (UNAUTHORIZED_REASONS.has(code)) {
        return new SinkError("unauthorized", `The MQTT broker refused the credentials (${error.message}).`, {
          status: code,
          cause: error,
        });
      }
      return new SinkError("retry", `The MQTT broker refused the connection (${error.message}).`, {
        status: code,
        cause: error,
      });
    }
    // Network errors (ECONNREFUSED, TLS) and everything else from mqtt.js: try again later.
    const where = typeof code === "string" ? ` (${code})` : "";
    return new SinkError(
      "retry",
      `Cannot connect to the MQTT broker ${this.#config.url}${where}: ${error.message}`,
      {
        cause: error,
      },
    );
  }

  /** Waits out the back-off; ends early on stop, on new tokens, and for a send that asks to refresh. */
  async #sleepBackoff(failures: number): Promise<void> {
    if (this.#tokensMoved) return;
    const delay = backoffDelay(failures, {
      initialMs: this.#options.backoff?.initialMs ?? 1_000,
      maxMs: this.#options.backoff?.maxMs ?? 60_000,
      ...(this.#options.random ? { random: this.#options.random } : {}),
    });
    const pause = new AbortController();
    this.#pause = pause;
    const onStop = () => pause.abort();
    this.#life.signal.addEventListener("abort", onStop, { once: true });
    try {
      await this.#clock.sleep(delay, pause.signal);
    } catch {
      // Woken early: go on at once.
    } finally {
      this.#life.signal.removeEventListener("abort", onStop);
      if (this.#pause === pause) this.#pause = undefined;
    }
  }

  #wake(): void {
    this.#pause?.abort();
  }

  /** Resolves when the connection attempt under way (or the next one) settles, or after `ms`. */
  async #waitAttempt(ms: number, signal: AbortSignal): Promise<void> {
    const timer = new AbortController();
    const settled = new Promise<void>((resolve) => {
      const wake = () => {
        this.#attemptWaiters.delete(wake);
        resolve();
      };
      this.#attemptWaiters.add(wake);
      timer.signal.addEventListener("abort", wake, { once: true });
    });
    const onAbort = () => timer.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    this.#life.signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([settled, this.#clock.sleep(ms, timer.signal).catch(() => {})]);
    } finally {
      timer.abort();
      signal.removeEventListener("abort", onAbort);
      this.#life.signal.removeEventListener("abort", onAbort);
    }
    if (signal.aborted) throw abortReason(signal);
  }

  /** The live connection, waiting (bounded) for an attempt under way; else throws why there is none. */
  async #connection(signal: AbortSignal): Promise<Link> {
    if (!this.#live() && this.#attempting) await this.#waitAttempt(SEND_WAIT_MS, signal);
    const link = this.#live();
    if (link) return link;
    if (this.#stopping) throw new SinkError("retry", "The MQTT sink is stopping.");
    // A token source's error (E_SIGN_IN_REQUIRED…) goes to the runner as it is.
    throw this.#failure ?? new SinkError("retry", "Not connected to the MQTT broker yet.");
  }

  #live(): Link | undefined {
    const link = this.#link;
    return link && !link.isClosed && link.client.connected ? link : undefined;
  }

  /** After the runner saw "unauthorized": the next token is a refreshed one. */
  async #refreshAfterRefusal(signal: AbortSignal): Promise<void> {
    if (this.#live()) {
      await this.#rotateLocked("refused");
      return;
    }
    this.#forceRefresh = true;
    if (!this.#attempting) this.#wake();
    await this.#waitAttempt(SEND_WAIT_MS, signal);
  }

  // --- tokens and rotation ---------------------------------------------------------------------

  async #freshToken(forceRefresh: boolean, previous?: HeldToken): Promise<HeldToken> {
    const request = { scopes: this.#config.scopes ?? this.#options.defaultScopes };
    let token = await this.#options.tokens.get({ ...request, forceRefresh, signal: this.#life.signal });
    const stale = (candidate: AccessToken) =>
      !this.#usable(this.#hold(candidate)) ||
      (previous !== undefined && candidate.accessToken === previous.token.accessToken);
    if (stale(token) && !forceRefresh) {
      token = await this.#options.tokens.get({ ...request, forceRefresh: true, signal: this.#life.signal });
    }
    const held = this.#hold(token);
    if (!this.#usable(held)) {
      throw new SinkError("retry", "The token source gave a token that expires too soon to be used.");
    }
    return held;
  }

  #hold(token: AccessToken): HeldToken {
    return { token, lifetimeMs: Math.max(0, token.expiresAt - this.#clock.now()) };
  }

  #usable(held: HeldToken | undefined): boolean {
    if (!held) return false;
    const margin = Math.min(EXPIRY_MARGIN_MS, held.lifetimeMs / 10);
    return this.#clock.now() < held.token.expiresAt - margin;
  }

  #scheduleRotation(link: Link, atMs?: number): void {
    this.#rotationTimer?.abort();
    this.#rotationTimer = undefined;
    const held = link.token;
    if (!held) return;
    const at = atMs ?? held.token.expiresAt - Math.min(ROTATION_MARGIN_MS, held.lifetimeMs / 4);
    const timer = new AbortController();
    this.#rotationTimer = timer;
    const onStop = () => timer.abort();
    this.#life.signal.addEventListener("abort", onStop, { once: true });
    void link.closed.then(onStop);
    this.#clock.sleep(Math.max(0, at - this.#clock.now()), timer.signal).then(
      () => {
        this.#life.signal.removeEventListener("abort", onStop);
        if (this.#link === link && !link.isClosed) this.#rotateInBackground("expiry");
      },
      () => this.#life.signal.removeEventListener("abort", onStop),
    );
  }

  #tokensChanged(): void {
    if (this.#stopping || !this.#needsToken) return;
    if (this.#live()) {
      this.#rotateInBackground("change");
      return;
    }
    // Not connected: the next attempt starts now (or right after the one under way).
    this.#tokensMoved = true;
    this.#wake();
  }

  #rotateInBackground(reason: "change" | "expiry"): void {
    this.#exclusive(() => this.#rotateLocked(reason)).catch((error: unknown) =>
      this.#log.error({ sink: this.name, err: describe(error) }, "MQTT token rotation failed"),
    );
  }

  /**
   * Rotates the live connection's token; the caller holds the lock, so no batch is in flight.
   * "change": the token source has new tokens (nothing happens when it gives the same one);
   * "expiry": the token nears its end; "refused": the broker refused it (a forced refresh).
   */
  async #rotateLocked(reason: "change" | "expiry" | "refused"): Promise<void> {
    const link = this.#live();
    if (!link || this.#stopping || !this.#needsToken) return;
    let next: HeldToken;
    try {
      next = await this.#freshToken(reason === "refused", reason === "change" ? undefined : link.token);
    } catch (error) {
      if (this.#usable(link.token)) {
        const retryAt = Math.min(
          this.#clock.now() + ROTATION_RETRY_MS,
          (link.token?.token.expiresAt ?? 0) - Math.min(EXPIRY_MARGIN_MS, (link.token?.lifetimeMs ?? 0) / 10),
        );
        this.#log.warn({ sink: this.name, err: describe(error) }, "MQTT token rotation failed; trying again");
        this.#scheduleRotation(link, retryAt);
        return;
      }
      // The token is spent and there is no other: the connection ends, saying "offline" (a
      // clean end sends no Last Will), before the token expires; the loop asks the token source
      // at once, so sends throw its error (E_SIGN_IN_REQUIRED…) until it has a token again.
      this.#log.warn(
        { sink: this.name, err: describe(error) },
        "MQTT token about to expire and no new one; disconnecting",
      );
      link.rotating = true;
      await this.#close(link);
      return;
    }
    if (reason === "change" && next.token.accessToken === link.token?.token.accessToken) return;
    if (this.#config.auth === "oauth2-jwt" && this.#inBand !== false) {
      if (await this.#reauthenticate(link, next)) {
        link.token = next;
        this.#stats.rotationsInBand += 1;
        this.#log.info(
          {
            sink: this.name,
            method: "in-band",
            reason,
            expiresAt: new Date(next.token.expiresAt).toISOString(),
          },
          "MQTT token rotated",
        );
        this.#scheduleRotation(link);
        return;
      }
    }
    this.#stats.rotationsByReconnect += 1;
    this.#log.info(
      {
        sink: this.name,
        method: "reconnect",
        reason,
        expiresAt: new Date(next.token.expiresAt).toISOString(),
      },
      "MQTT token rotated",
    );
    if (link.isClosed) {
      // The broker dropped the connection over the re-authentication: the next one is under way.
      if (!this.#live() && this.#attempting)
        await this.#waitAttempt(SEND_WAIT_MS, this.#life.signal).catch(() => {});
      return;
    }
    this.#pendingToken = next;
    link.rotating = true;
    const settled = this.#waitAttempt(SEND_WAIT_MS, this.#life.signal).catch(() => {});
    await this.#end(link);
    await settled;
  }

  /**
   * MQTT 5 re-authentication on the live connection: AUTH reason 0x19 with the new token; the
   * broker answers AUTH reason 0 when it took it. Any other outcome (an error, a closed connection,
   * no answer in time) means "not supported here", remembered for the rest of this sink's life.
   */
  async #reauthenticate(link: Link, next: HeldToken): Promise<boolean> {
    // Marked first: when the broker drops the connection over the AUTH, the next one follows at once.
    link.rotating = true;
    this.#pendingToken = next;
    const answer = new Promise<void>((resolve, reject) => {
      link.reauth = (error) => (error ? reject(error) : resolve());
    });
    // mqtt.js has no public API to re-authenticate a live connection
    // (https://github.com/mqttjs/MQTT.js/issues/1795), so the AUTH packet goes through its
    // internal _sendPacket (which writes AUTH packets straight to the socket).
    const internal = link.client as unknown as { _sendPacket(packet: AuthPacket): void };
    internal._sendPacket({
      cmd: "auth",
      reasonCode: AUTH_REAUTHENTICATE,
      properties: {
        authenticationMethod: this.#config.method,
        authenticationData: Buffer.from(next.token.accessToken),
      },
    });
    const timer = new AbortController();
    const timeout = this.#clock.sleep(REAUTH_TIMEOUT_MS, timer.signal).then(
      () => {
        throw new Error(`No answer to the re-authentication within ${REAUTH_TIMEOUT_MS} ms.`);
      },
      () => {},
    );
    try {
      await Promise.race([answer, timeout]);
      link.rotating = false;
      this.#pendingToken = undefined;
      this.#inBand = true;
      return true;
    } catch (error) {
      this.#inBand = false;
      this.#log.warn(
        { sink: this.name, err: describe(error) },
        "MQTT broker did not take an in-band re-authentication; rotating tokens by reconnecting from now on",
      );
      return false;
    } finally {
      timer.abort();
      link.reauth = undefined;
    }
  }

  // --- publishing --------------------------------------------------------------------------------

  /** Topics and payloads of a batch; a batch with a message that can never be published is refused whole. */
  #prepare(batch: readonly Message[]): Array<{ topic: string; payload: string; id: string }> {
    return batch.map((message) => {
      const topic = this.#config.topic
        .replaceAll("{device}", message.device)
        .replaceAll("{topic}", message.topic);
      if (topic === "" || /[+#]/.test(topic) || topic.includes("\0") || Buffer.byteLength(topic) > 65_535) {
        throw new SinkError(
          "reject",
          `Message ${message.id} cannot be published: its MQTT topic ${JSON.stringify(topic)} is empty, too long, or has + or #.`,
        );
      }
      // The message object alone: the outbox's own fields (seq, bytes) stay on the board.
      return { topic, payload: JSON.stringify(wireMessage(message)), id: message.id };
    });
  }

  async #publishBatch(
    link: Link,
    packets: ReadonlyArray<{ topic: string; payload: string; id: string }>,
    signal: AbortSignal,
  ): Promise<void> {
    const v5 = this.#config.protocolVersion === 5;
    const server = link.client.serverProperties;
    const maxPacket = v5 ? server?.maximumPacketSize : undefined;
    if (maxPacket !== undefined) {
      for (const packet of packets) {
        // Fixed header (≤ 5), topic (2 + length), packet id (2), properties (≤ 40 for ours), payload.
        const size = 5 + 2 + Buffer.byteLength(packet.topic) + 2 + 40 + Buffer.byteLength(packet.payload);
        if (size > maxPacket) {
          throw new SinkError(
            "reject",
            `Message ${packet.id} is larger than the broker takes (${size} > ${maxPacket} bytes).`,
            { status: 0x95 },
          );
        }
      }
    }
    // No MQTT 5 properties on telemetry (content type, payload format): mqtt.js encodes them per
    // packet, which cost a fifth of the throughput measured (scripts/bench-agent.ts); every payload
    // is the JSON message object, as documented.
    const options: IClientPublishOptions = { qos: 1, retain: false };
    // The broker's Receive Maximum (MQTT 5): at most that many unacknowledged QoS 1 messages.
    const window = Math.max(1, (v5 ? server?.receiveMaximum : undefined) ?? 65_535);
    let onAbort: () => void = () => {};
    let onClose: () => void = () => {};
    const stopped = new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(abortReason(signal));
      onClose = () =>
        reject(
          new SinkError("retry", "The connection to the MQTT broker was lost during the send.", {
            status: link.disconnectReason,
            cause: link.error,
          }),
        );
    });
    stopped.catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    link.onClose.add(onClose);
    try {
      await this.#publishAll(link, packets, options, window, stopped);
    } finally {
      signal.removeEventListener("abort", onAbort);
      link.onClose.delete(onClose);
    }
  }

  async #publishAll(
    link: Link,
    packets: ReadonlyArray<{ topic: string; payload: string; id: string }>,
    options: IClientPublishOptions,
    window: number,
    stopped: Promise<never>,
  ): Promise<void> {
    let inFlight = 0;
    let freed: (() => void) | undefined;
    const results: Array<Promise<Error | undefined>> = [];
    for (const packet of packets) {
      while (inFlight >= window) {
        await Promise.race([new Promise<void>((resolve) => (freed = resolve)), stopped]);
      }
      if (link.isClosed) await stopped;
      inFlight += 1;
      results.push(
        new Promise<Error | undefined>((resolve) =>
          link.client.publish(packet.topic, packet.payload, options, (error) => {
            inFlight -= 1;
            freed?.();
            resolve(error ?? undefined);
          }),
        ),
      );
    }
    const errors = (await Promise.race([Promise.all(results), stopped])).filter(
      (error): error is Error => error !== undefined,
    );
    if (errors.length > 0) throw this.#classifyPublishErrors(errors);
  }

  /** One SinkError for a batch's failures: unauthorized before retry before reject (retrying loses nothing). */
  #classifyPublishErrors(errors: readonly Error[]): SinkError {
    const reasons = errors.map((error) => (error as ErrorWithCode).code);
    const first = (test: (code: unknown) => boolean) => errors[reasons.findIndex(test)];
    const unauthorized = first((code) => code === 0x87);
    if (unauthorized) {
      return new SinkError("unauthorized", `The MQTT broker refused a message: ${unauthorized.message}.`, {
        status: 0x87,
        cause: unauthorized,
      });
    }
    const transient = first((code) => typeof code !== "number" || !REJECT_REASONS.has(code));
    if (transient) {
      const code = (transient as ErrorWithCode).code;
      return new SinkError("retry", `The MQTT broker did not take a message: ${transient.message}.`, {
        status: typeof code === "number" ? code : undefined,
        cause: transient,
      });
    }
    const rejected = errors[0] as ErrorWithCode;
    return new SinkError("reject", `The MQTT broker refused a message for good: ${rejected.message}.`, {
      status: typeof rejected.code === "number" ? rejected.code : undefined,
      cause: rejected,
    });
  }

  #publishState(link: Link): void {
    const state = this.#options.state.current();
    link.client.publish(this.#stateTopic, state, { qos: 1, retain: true }, (error) => {
      if (error && !link.isClosed)
        this.#log.warn({ sink: this.name, err: describe(error) }, "MQTT state not published");
    });
  }

  /**
   * The health message every healthIntervalSeconds, while connected: QoS 0, not retained. QoS 0
   * because the next one supersedes it: a lost one costs nothing, and it never takes a place in
   * the broker's window of unacknowledged messages that the telemetry needs.
   */
  async #healthLoop(): Promise<void> {
    const interval = this.#config.healthIntervalSeconds * 1_000;
    while (!this.#stopping) {
      try {
        await this.#clock.sleep(interval, this.#life.signal);
      } catch {
        return;
      }
      const link = this.#live();
      if (!link) continue;
      let body: string;
      try {
        body = JSON.stringify(this.#options.health());
      } catch (error) {
        this.#log.warn({ sink: this.name, err: describe(error) }, "MQTT health message not built");
        continue;
      }
      link.client.publish(this.#healthTopic, body, {
        qos: 0,
        retain: false,
        ...(this.#config.protocolVersion === 5 ? { properties: { contentType: "application/json" } } : {}),
      });
    }
  }

  // --- helpers -----------------------------------------------------------------------------------

  /**
   * Runs `task` after every send and rotation called before it (one at a time). A send whose
   * signal aborts while it waits for its turn gives the turn up (and rejects with the reason).
   */
  async #exclusive<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const previous = this.#lock;
    let release: () => void = () => {};
    this.#lock = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      if (signal) await abortable(previous, signal);
      else await previous;
      return await task();
    } finally {
      // Never before the task ahead is done, even when this one gave up waiting.
      void previous.then(release);
    }
  }

  /** Ends a connection cleanly (after its last acknowledgements, with DISCONNECT); destroys it after END_TIMEOUT_MS. */
  async #end(link: Link): Promise<void> {
    if (link.isClosed) return;
    link.client.end(false);
    await this.#bounded(link.closed, link, END_TIMEOUT_MS);
    if (!link.isClosed) link.client.stream.destroy();
    await link.closed;
  }

  /** `promise`, or nothing after `ms` or once the connection closed. */
  async #bounded(promise: Promise<void>, link: Link, ms: number): Promise<void> {
    const timer = new AbortController();
    try {
      await Promise.race([promise, link.closed, this.#clock.sleep(ms, timer.signal).catch(() => {})]);
    } finally {
      timer.abort();
    }
  }
}

/** `promise`, or the signal's reason once it aborts. */
function abortable(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as ErrorWithCode).code;
    return typeof code === "string" && !error.message.includes(code)
      ? `${error.message} (${code})`
      : error.message;
  }
  return String(error);
}
