/**
 * The MQTT sink against a real Mosquitto with the JWT plugin (scripts/broker/mosquitto.ts): every
 * auth mode and transport delivers a batch (an observer sees each message, its payload the whole
 * Message), refusals become the right SinkError, the retained state and the Last Will, the health
 * message, token rotation on a live connection (in-band and by reconnecting) with a stream of
 * sends, and a broker that goes away and comes back.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createPublicKey, randomUUID } from "node:crypto";
import { access, constants, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from "vitest";
import { type Clock, systemClock } from "../../agent/core/clock.ts";
import { EntraToolError } from "../../agent/core/errors.ts";
import { formatIssues } from "../../agent/core/schema.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import {
  type MqttConnect,
  type MqttDeviceState,
  MqttSink,
  type MqttStateSource,
} from "../../agent/telemetry/sinks/mqtt.ts";
import { MqttSinkSchema } from "../../agent/telemetry/sinks/mqtt-schema.ts";
import {
  type AccessToken,
  isSinkError,
  type JsonValue,
  type Message,
  type TokenRequest,
  type TokenSource,
} from "../../agent/telemetry/types.ts";
import { type Broker, type Observer, observe, startBroker } from "../../scripts/broker/mosquitto.ts";
import { TokenSigner } from "../../scripts/emulator/tokens.ts";
import { closedPort } from "../../scripts/net.ts";

const AUDIENCE = "api://entratool-telemetry";
const SCOPES = [`${AUDIENCE}/.default`];
/** Bound on waiting for a real event (a delivery, a reconnect): generous for a loaded 2-core machine. */
const EVENT_TIMEOUT_MS = 15_000;

let signer: TokenSigner;
let stranger: TokenSigner;
let broker: Broker;
let files: string;

beforeAll(async () => {
  [signer, stranger] = await Promise.all([TokenSigner.create(), TokenSigner.create()]);
  const publicKeyPem = createPublicKey({ key: { ...signer.publicJwk() }, format: "jwk" })
    .export({ type: "spki", format: "pem" })
    .toString();
  broker = await startBroker({ publicKeyPem, audience: AUDIENCE });
  files = await mkdtemp(join(tmpdir(), "entratool-mqtt-sink-"));
  await writeFile(join(files, "ca.pem"), broker.caPem);
  await writeFile(join(files, "cert.pem"), broker.clientCert.certPem);
  await writeFile(join(files, "key.pem"), broker.clientCert.keyPem, { mode: 0o600 });
});

afterAll(async () => {
  await broker?.close();
  if (files) await rm(files, { recursive: true, force: true });
});

/** Signs tokens the broker accepts (or, with `signedBy`, ones it refuses), `lifetimeS` long. */
class FakeTokens implements TokenSource {
  lifetimeS: number;
  signedBy: () => TokenSigner = () => signer;
  /** When set, `get` rejects with it (nobody signed in, say). */
  failure: Error | undefined;
  readonly issued: string[] = [];
  readonly requests: TokenRequest[] = [];
  #current: AccessToken | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(lifetimeS = 3600) {
    this.lifetimeS = lifetimeS;
  }

  async get(request: TokenRequest): Promise<AccessToken> {
    this.requests.push(request);
    if (this.failure) throw this.failure;
    const current = this.#current;
    // Like a real cache: the same token until half its life is gone, or when asked to refresh.
    if (current && !request.forceRefresh && current.expiresAt - Date.now() > (this.lifetimeS * 1000) / 2) {
      return current;
    }
    const now = Math.floor(Date.now() / 1000);
    // `exp` is whole seconds: expiresAt is exactly it, so the sink and the broker agree.
    const exp = now + this.lifetimeS;
    // A token id of its own, as Entra's `uti`: two tokens signed in the same second differ.
    const claims = { aud: AUDIENCE, sub: "device-subject", iat: now, nbf: now, exp, uti: randomUUID() };
    const accessToken = this.signedBy().sign(claims);
    this.issued.push(accessToken);
    this.#current = { accessToken, expiresAt: exp * 1000 };
    return this.#current;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Expiry of the last token issued, epoch ms. */
  get expiresAt(): number {
    return this.#current?.expiresAt ?? 0;
  }

  /** A new sign-in or refresh happened elsewhere. */
  changed(): void {
    this.#current = undefined;
    for (const listener of this.#listeners) listener();
  }
}

class FakeState implements MqttStateSource {
  value: MqttDeviceState;
  readonly #listeners = new Set<(state: MqttDeviceState) => void>();

  constructor(value: MqttDeviceState = "online") {
    this.value = value;
  }

  current(): MqttDeviceState {
    return this.value;
  }

  subscribe(listener: (state: MqttDeviceState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  set(value: MqttDeviceState): void {
    this.value = value;
    for (const listener of this.#listeners) listener(value);
  }
}

interface Harness {
  readonly sink: MqttSink;
  readonly device: string;
  readonly tokens: FakeTokens;
  readonly state: FakeState;
  readonly logs: string[];
  /** Every mqtt.js client the sink made, in order. */
  readonly clients: MqttClient[];
  readonly observer: Observer;
}

interface SinkSetup {
  readonly tokens?: FakeTokens;
  readonly state?: FakeState;
  readonly clock?: Clock;
  readonly health?: () => JsonValue;
  /** Observe this broker instead of the shared one (no observer when null). */
  readonly observer?: Observer | null;
  /** Where the sink's clean-up goes: the test context's onTestFinished in concurrent tests. */
  readonly finished?: (cleanup: () => Promise<void>) => void;
}

function newDevice(): string {
  return `dev-${randomUUID().slice(0, 8)}`;
}

/** A sink for a fresh device, its configuration checked by the schema, started, with an observer on its topics. */
async function sinkFor(config: Record<string, unknown>, setup: SinkSetup = {}): Promise<Harness> {
  const device = (config.device as string | undefined) ?? newDevice();
  const { device: _device, ...rest } = config;
  const parsed = v.safeParse(MqttSinkSchema, { type: "mqtt", ...rest });
  if (!parsed.success) throw new Error(formatIssues(parsed.issues).join("\n"));
  const logs: string[] = [];
  const clients: MqttClient[] = [];
  const connect = ((url: string, options: mqtt.IClientOptions) => {
    const client = mqtt.connect(url, options);
    clients.push(client);
    return client;
  }) as MqttConnect;
  const tokens = setup.tokens ?? new FakeTokens();
  const state = setup.state ?? new FakeState();
  const observer =
    setup.observer === undefined ? await observe(broker, `entratool/${device}/#`) : setup.observer;
  const sink = new MqttSink({
    config: parsed.output,
    device,
    tokens,
    defaultScopes: SCOPES,
    clock: setup.clock ?? systemClock,
    logger: pino({ level: "debug" }, { write: (line: string) => void logs.push(line) }),
    connect,
    state,
    health: setup.health ?? (() => ({ ok: true })),
    backoff: { initialMs: 100, maxMs: 500 },
  });
  (setup.finished ?? onTestFinished)(async () => {
    await sink.stop();
    await observer?.close();
  });
  await sink.start();
  return { sink, device, tokens, state, logs, clients, observer: observer as Observer };
}

function batch(device: string, count: number, topic = "metrics"): Message[] {
  return Array.from({ length: count }, (_, index) => ({
    id: randomUUID(),
    ts: new Date().toISOString(),
    device,
    topic,
    data: { index, text: "ünïcode ✓" },
  }));
}

function sendOptions(forceRefresh = false) {
  return { signal: new AbortController().signal, forceRefresh };
}

/** Waits for a condition that a real event makes true (checked every 20 ms, for at most `timeoutMs`). */
async function until(condition: () => boolean, what: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${broker.log().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The observer's messages on one topic, payloads as text. */
function on(observer: Observer, topic: string): string[] {
  return observer.messages
    .filter((message) => message.topic === topic)
    .map((m) => m.payload.toString("utf8"));
}

async function delivered(observer: Observer, messages: readonly Message[]): Promise<void> {
  await observer.waitFor(() => {
    const ids = observer.ids();
    return messages.every((message) => ids.has(message.id));
  }, EVENT_TIMEOUT_MS);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("configuration", () => {
  const parse = (input: Record<string, unknown>) => v.safeParse(MqttSinkSchema, { type: "mqtt", ...input });
  const problems = (input: Record<string, unknown>): string[] => {
    const result = parse(input);
    return result.success ? [] : formatIssues(result.issues);
  };

  test("defaults fill every field", () => {
    const result = parse({ url: "mqtts://broker.example.com" });
    expect(result.success && result.output).toEqual({
      type: "mqtt",
      url: "mqtts://broker.example.com",
      auth: "token",
      method: "OAUTH2-JWT",
      topic: "entratool/{device}/{topic}",
      stateTopic: "entratool/{device}/state",
      healthTopic: "entratool/{device}/health",
      healthIntervalSeconds: 60,
      protocolVersion: 5,
      clientId: "entratool-{device}",
      keepaliveSeconds: 30,
      maxBatchMessages: 100,
    });
  });

  test("a token never goes unencrypted to another host; loopback and TLS are fine", () => {
    for (const url of ["mqtt://broker.example.com", "ws://10.0.0.5:9001/mqtt"]) {
      expect(problems({ url })).toEqual([
        `url: must be mqtts:// or wss:// (found "${url}"): auth token sends the access token, which must not cross the network unencrypted`,
      ]);
    }
    expect(problems({ url: "mqtt://broker.example.com", auth: "oauth2-jwt" })[0]).toContain(
      "auth oauth2-jwt",
    );
    for (const url of [
      "mqtt://127.0.0.1:1883",
      "mqtt://localhost",
      "ws://[::1]:9001",
      "wss://broker.example.com",
    ]) {
      expect(problems({ url })).toEqual([]);
    }
    expect(problems({ url: "mqtt://broker.example.com", auth: "none" })).toEqual([]);
  });

  test("each mistake is reported at its field", () => {
    expect(problems({ url: "mqtts://h", auth: "oauth2-jwt", protocolVersion: 4 })).toEqual([
      "protocolVersion: must be 5 for auth oauth2-jwt (found 4): enhanced authentication is MQTT 5",
    ]);
    expect(problems({ url: "mqtts://h", auth: "mtls" })).toEqual([
      "cert: is required for auth mtls (a file path)",
      "key: is required for auth mtls (a file path)",
    ]);
    expect(problems({ url: "mqtt://127.0.0.1", auth: "mtls", cert: "c", key: "k" })).toEqual([
      'url: must be mqtts:// or wss:// for auth mtls (found "mqtt://127.0.0.1")',
    ]);
    expect(problems({ url: "mqtts://h", cert: "c" })).toEqual(["cert: is only used with auth mtls"]);
    expect(problems({ url: "mqtts://h", topic: "a/+/{topic}", stateTopic: "s/#" })).toEqual([
      'topic: must be a topic without the wildcards + and # (found "a/+/{topic}")',
      'stateTopic: must be a topic without the wildcards + and # (found "s/#")',
    ]);
    expect(problems({ url: "https://h" })[0]).toMatch(/^url: must be a URL "mqtt:\/\/host:port"/);
    expect(problems({ url: "mqtts://user:secret@h" })[0]).toMatch(/^url: must be a URL/);
    expect(problems({ url: "mqtts://h", scopes: [] })).toEqual([
      "scopes: must be a non-empty list of scopes (found [])",
    ]);
    expect(problems({ url: "mqtts://h", qos: 2 })).toEqual(["qos: unknown field"]);
  });
});

describe("delivery", () => {
  test.each([
    [4, "plain"],
    [5, "plain"],
    [5, "tls"],
    [4, "ws"],
  ] as const)(
    "auth token, MQTT %s over %s: every message arrives, its payload the Message",
    async (version, kind) => {
      const { sink, device, observer, logs, tokens } = await sinkFor({
        url: broker.url(kind),
        protocolVersion: version,
        ...(kind === "tls" ? { ca: join(files, "ca.pem") } : {}),
      });
      const messages = batch(device, 5);
      await sink.send(messages, sendOptions());
      expect(sink.connected()).toBe(true);
      await delivered(observer, messages);
      const received = observer.messages.filter((message) => message.topic === `entratool/${device}/metrics`);
      expect(received.map((message) => JSON.parse(message.payload.toString("utf8")))).toEqual(messages);
      expect(received.every((message) => !message.retain)).toBe(true);
      expect(sink.name).toBe(`mqtt:127.0.0.1:${broker.ports[kind]}`);
      // The token went to the broker, never to the log.
      expect(tokens.issued.length).toBeGreaterThan(0);
      for (const token of tokens.issued) expect(logs.join("")).not.toContain(token);
      expect(tokens.requests[0]?.scopes).toEqual(SCOPES);
    },
  );

  test("auth oauth2-jwt: MQTT 5 enhanced authentication with the token delivers", async () => {
    const { sink, device, observer } = await sinkFor({ url: broker.url("plain"), auth: "oauth2-jwt" });
    const messages = batch(device, 3);
    await sink.send(messages, sendOptions());
    await delivered(observer, messages);
    expect(broker.log()).toMatch(new RegExp(`accepted client entratool-${device} \\(enhanced auth\\)`));
  });

  test("auth mtls: the client certificate, no token; the state says awaiting-sign-in until someone signs in", async () => {
    const tokens = new FakeTokens();
    tokens.failure = new EntraToolError("E_SIGN_IN_REQUIRED");
    const state = new FakeState("awaiting-sign-in");
    const { sink, device, observer } = await sinkFor(
      {
        url: broker.url("mtls"),
        auth: "mtls",
        ca: join(files, "ca.pem"),
        cert: join(files, "cert.pem"),
        key: join(files, "key.pem"),
        scopes: ["api://other/.default"],
      },
      { tokens, state },
    );
    const messages = batch(device, 2);
    await sink.send(messages, sendOptions());
    await delivered(observer, messages);
    expect(tokens.requests).toEqual([]);
    const stateTopic = `entratool/${device}/state`;
    await observer.waitFor(() => on(observer, stateTopic).includes("awaiting-sign-in"), EVENT_TIMEOUT_MS);
    state.set("online");
    await observer.waitFor(() => on(observer, stateTopic).at(-1) === "online", EVENT_TIMEOUT_MS);
  });

  test("auth none: an anonymous broker", async () => {
    const anonymous = await anonymousBroker();
    onTestFinished(() => anonymous.stop());
    const device = newDevice();
    const watcher = await mqtt.connectAsync(anonymous.url, { protocolVersion: 5, reconnectPeriod: 0 });
    const seen: string[] = [];
    watcher.on("message", (_topic, payload) => seen.push(payload.toString("utf8")));
    await watcher.subscribeAsync(`entratool/${device}/#`, { qos: 1 });
    onTestFinished(() => watcher.endAsync(true));
    const { sink } = await sinkFor({ url: anonymous.url, auth: "none", device }, { observer: null });
    const messages = batch(device, 3);
    await sink.send(messages, sendOptions());
    await until(() => messages.every((message) => seen.includes(JSON.stringify(message))), "the messages");
  });

  test("the topic template; a message topic with a wildcard is refused before anything is sent", async () => {
    const { sink, device } = await sinkFor({
      url: broker.url("plain"),
      topic: "fleet/{device}/{topic}/json",
      stateTopic: "entratool/{device}/state",
    });
    const fleet = await observe(broker, `fleet/${device}/#`);
    onTestFinished(() => fleet.close());
    const messages = batch(device, 2, "power/usb");
    await sink.send(messages, sendOptions());
    await delivered(fleet, messages);
    expect(new Set(fleet.messages.map((message) => message.topic))).toEqual(
      new Set([`fleet/${device}/power/usb/json`]),
    );

    const bad = [...batch(device, 1), ...batch(device, 1, "power/+")];
    const error = await rejection(sink.send(bad, sendOptions()));
    expect(isSinkError(error) && error.failure).toBe("reject");
    expect(String(error)).toContain(bad[1]?.id);
    // Nothing of the refused batch went out: a later batch arrives, and the good message before it did not.
    const later = batch(device, 1, "power/usb");
    await sink.send(later, sendOptions());
    await delivered(fleet, later);
    expect(fleet.ids().has(bad[0]?.id ?? "")).toBe(false);
  });
});

describe("refusals", () => {
  test.each([4, 5] as const)(
    "a token the broker refuses (MQTT %s): SinkError unauthorized, and a forced refresh on the next send",
    async (version) => {
      const tokens = new FakeTokens();
      tokens.signedBy = () => stranger;
      const { sink, device, observer } = await sinkFor(
        { url: broker.url("plain"), protocolVersion: version },
        { tokens },
      );
      const error = await rejection(sink.send(batch(device, 1), sendOptions()));
      expect(isSinkError(error) && [error.failure, error.status]).toEqual([
        "unauthorized",
        version === 5 ? 135 : 5,
      ]);
      expect(sink.connected()).toBe(false);

      // The runner's answer to "unauthorized": the same batch with forceRefresh, now with a good token.
      tokens.signedBy = () => signer;
      const messages = batch(device, 2);
      await sink.send(messages, sendOptions(true));
      await delivered(observer, messages);
      expect(tokens.requests.some((request) => request.forceRefresh === true)).toBe(true);
    },
  );

  test("while nobody is signed in, send throws the token source's error as it is; a sign-in connects", async () => {
    const tokens = new FakeTokens();
    const signIn = new EntraToolError("E_SIGN_IN_REQUIRED");
    tokens.failure = signIn;
    const { sink, device, observer } = await sinkFor({ url: broker.url("plain") }, { tokens });
    expect(await rejection(sink.send(batch(device, 1), sendOptions()))).toBe(signIn);
    expect(sink.connected()).toBe(false);
    tokens.failure = undefined;
    tokens.changed();
    await until(() => sink.connected(), "the connection after the sign-in");
    const messages = batch(device, 2);
    await sink.send(messages, sendOptions());
    await delivered(observer, messages);
  });
});

describe("state and health", () => {
  test('retained state: "online" while connected, "offline" after stop(), which is idempotent', async () => {
    const { sink, device, observer } = await sinkFor({ url: broker.url("plain") });
    const stateTopic = `entratool/${device}/state`;
    await observer.waitFor(() => on(observer, stateTopic).includes("online"), EVENT_TIMEOUT_MS);
    await Promise.all([sink.stop(), sink.stop()]);
    await sink.stop();
    await observer.waitFor(() => on(observer, stateTopic).at(-1) === "offline", EVENT_TIMEOUT_MS);
    expect(sink.connected()).toBe(false);
    // A newcomer gets the retained "offline".
    const late = await observe(broker, stateTopic);
    onTestFinished(() => late.close());
    await late.waitFor(
      (messages) => messages.some((m) => m.retain && m.payload.toString() === "offline"),
      5_000,
    );
  });

  test('the Last Will says "offline" when the connection dies; the sink reconnects and says "online" again', async () => {
    const { sink, device, observer, clients } = await sinkFor({
      url: broker.url("plain"),
      keepaliveSeconds: 5,
    });
    const stateTopic = `entratool/${device}/state`;
    await observer.waitFor(() => on(observer, stateTopic).includes("online"), EVENT_TIMEOUT_MS);
    // The socket dies under the sink (no DISCONNECT): the broker publishes the will.
    clients[0]?.stream.destroy();
    await observer.waitFor(() => on(observer, stateTopic).includes("offline"), EVENT_TIMEOUT_MS);
    await observer.waitFor(() => on(observer, stateTopic).at(-1) === "online", EVENT_TIMEOUT_MS);
    expect(clients.length).toBe(2);
    const messages = batch(device, 2);
    await sink.send(messages, sendOptions());
    await delivered(observer, messages);
  });

  test("health(): JSON every healthIntervalSeconds on the clock, not retained", async () => {
    const clock = new VirtualClock(Date.now(), { auto: false });
    let beat = 0;
    const { sink, device, observer } = await sinkFor(
      {
        url: broker.url("mtls"),
        auth: "mtls",
        ca: join(files, "ca.pem"),
        cert: join(files, "cert.pem"),
        key: join(files, "key.pem"),
        healthIntervalSeconds: 30,
      },
      { clock, health: () => ({ beat: ++beat, sinks: [{ name: "x", connected: true }] }) },
    );
    await until(() => sink.connected(), "the connection");
    const healthTopic = `entratool/${device}/health`;
    clock.advance(30_000);
    await observer.waitFor(() => on(observer, healthTopic).length === 1, EVENT_TIMEOUT_MS);
    clock.advance(30_000);
    await observer.waitFor(() => on(observer, healthTopic).length === 2, EVENT_TIMEOUT_MS);
    expect(on(observer, healthTopic).map((text) => JSON.parse(text))).toEqual([
      { beat: 1, sinks: [{ name: "x", connected: true }] },
      { beat: 2, sinks: [{ name: "x", connected: true }] },
    ]);
    expect(observer.messages.filter((m) => m.topic === healthTopic).every((m) => !m.retain)).toBe(true);
  });
});

/**
 * Sends batches (paced at about 40 a second, to keep the machine usable, not for timing) until
 * `enough()` or `ms` passed, then one more; returns every batch sent and every send that failed.
 */
async function stream(
  sink: MqttSink,
  device: string,
  enough: () => boolean,
  ms: number,
): Promise<{ sent: Message[][]; failures: unknown[] }> {
  const sent: Message[][] = [];
  const failures: unknown[] = [];
  const deadline = Date.now() + ms;
  while (!enough() && Date.now() < deadline) {
    const messages = batch(device, 4);
    try {
      await sink.send(messages, sendOptions());
      sent.push(messages);
    } catch (error) {
      failures.push(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  // One more after the last rotation (a send waits for a rotation under way to finish).
  const last = batch(device, 4);
  try {
    await sink.send(last, sendOptions());
    sent.push(last);
  } catch (error) {
    failures.push(error);
  }
  return { sent, failures };
}

/** Every sent message arrived, and in the order sent (the first copy of each). */
async function allInOrder(observer: Observer, device: string, sent: readonly Message[][]): Promise<void> {
  const all = sent.flat();
  await delivered(observer, all);
  const order: string[] = [];
  const seen = new Set<string>();
  for (const message of observer.messages) {
    if (message.topic !== `entratool/${device}/metrics`) continue;
    const id = (JSON.parse(message.payload.toString("utf8")) as Message).id;
    if (!seen.has(id)) order.push(id);
    seen.add(id);
  }
  expect(order).toEqual(all.map((message) => message.id));
}

function rotationLines(logs: readonly string[]): Array<{ method: string; reason: string }> {
  return logs
    .map((line) => JSON.parse(line) as { msg: string; method: string; reason: string })
    .filter((line) => line.msg === "MQTT token rotated");
}

describe.concurrent("short-lived tokens (3-4 s, 7-8 s): rotation on a live connection, expiry", () => {
  const ROTATIONS = 3;
  const STREAM_MS = 25_000;

  test('the sink says "offline" and disconnects before the token expires; sends throw the token source\'s error', async ({
    onTestFinished: finished,
  }) => {
    const tokens = new FakeTokens(8);
    const { sink, device, observer } = await sinkFor({ url: broker.url("plain") }, { tokens, finished });
    await sink.send(batch(device, 1), sendOptions());
    const expiresAt = tokens.expiresAt;
    const signIn = new EntraToolError("E_SIGN_IN_REQUIRED");
    tokens.failure = signIn;
    await until(() => !sink.connected(), "the disconnect");
    expect(Date.now()).toBeLessThan(expiresAt);
    await observer.waitFor(
      () => on(observer, `entratool/${device}/state`).at(-1) === "offline",
      EVENT_TIMEOUT_MS,
    );
    expect(await rejection(sink.send(batch(device, 1), sendOptions()))).toBe(signIn);
    expect(sink.stats().connects).toBe(1);
  }, 30_000);

  test("oauth2-jwt: in-band re-authentication, one connection, nothing lost or reordered", async ({
    onTestFinished: finished,
  }) => {
    const tokens = new FakeTokens(4);
    const { sink, device, observer, logs } = await sinkFor(
      { url: broker.url("plain"), auth: "oauth2-jwt" },
      { tokens, finished },
    );
    const { sent, failures } = await stream(
      sink,
      device,
      () => sink.stats().rotationsInBand >= ROTATIONS,
      STREAM_MS,
    );
    expect(failures).toEqual([]);
    expect(sink.stats()).toMatchObject({ connects: 1, rotationsByReconnect: 0, inBandReauth: true });
    expect(sink.stats().rotationsInBand).toBeGreaterThanOrEqual(ROTATIONS);
    await allInOrder(observer, device, sent);
    expect(broker.log()).not.toContain(`disconnecting client entratool-${device}: token expired`);
    expect(broker.log()).toMatch(new RegExp(`accepted client entratool-${device} \\(re-authentication\\)`));
    expect(rotationLines(logs).every((line) => line.method === "in-band")).toBe(true);
    for (const token of tokens.issued) expect(logs.join("")).not.toContain(token);
  }, 40_000);

  test("token: rotation by a clean reconnect between batches, no Last Will, nothing lost or reordered", async ({
    onTestFinished: finished,
  }) => {
    const tokens = new FakeTokens(4);
    const { sink, device, observer, logs } = await sinkFor(
      { url: broker.url("plain") },
      { tokens, finished },
    );
    const { sent, failures } = await stream(
      sink,
      device,
      () => sink.stats().rotationsByReconnect >= ROTATIONS,
      STREAM_MS,
    );
    expect(failures).toEqual([]);
    expect(sink.stats().rotationsByReconnect).toBeGreaterThanOrEqual(ROTATIONS);
    expect(sink.stats().connects).toBe(sink.stats().rotationsByReconnect + 1);
    await allInOrder(observer, device, sent);
    expect(broker.log()).not.toContain(`disconnecting client entratool-${device}: token expired`);
    expect(on(observer, `entratool/${device}/state`)).not.toContain("offline");
    expect(rotationLines(logs).every((line) => line.method === "reconnect")).toBe(true);
  }, 40_000);

  test("oauth2-jwt where the broker does not take re-authentication: one try, then rotation by reconnecting", async ({
    onTestFinished: finished,
  }) => {
    const proxy = await refusingReauthProxy(broker.ports.plain);
    finished(() => proxy.close());
    const tokens = new FakeTokens(4);
    const { sink, device, observer, logs } = await sinkFor(
      { url: `mqtt://127.0.0.1:${proxy.port}`, auth: "oauth2-jwt" },
      { tokens, finished },
    );
    const { sent, failures } = await stream(
      sink,
      device,
      () => sink.stats().rotationsByReconnect >= ROTATIONS,
      STREAM_MS,
    );
    expect(failures).toEqual([]);
    expect(proxy.authPackets()).toBe(1);
    expect(sink.stats()).toMatchObject({ rotationsInBand: 0, inBandReauth: false });
    expect(sink.stats().rotationsByReconnect).toBeGreaterThanOrEqual(ROTATIONS);
    await allInOrder(observer, device, sent);
    expect(broker.log()).not.toContain(`disconnecting client entratool-${device}: token expired`);
    expect(logs.join("")).toContain("did not take an in-band re-authentication");
    expect(rotationLines(logs).length).toBe(sink.stats().rotationsByReconnect);
  }, 40_000);
});

describe("a new token from the token source", () => {
  test("onChange rotates at once (in-band for oauth2-jwt)", async () => {
    const tokens = new FakeTokens();
    const { sink, device, observer, logs } = await sinkFor(
      { url: broker.url("plain"), auth: "oauth2-jwt" },
      { tokens },
    );
    await sink.send(batch(device, 1), sendOptions());
    tokens.changed();
    await until(() => sink.stats().rotationsInBand === 1, "the rotation");
    expect(rotationLines(logs)).toMatchObject([{ method: "in-band", reason: "change" }]);
    const messages = batch(device, 2);
    await sink.send(messages, sendOptions());
    await delivered(observer, messages);
    expect(tokens.issued.length).toBe(2);
  });
});

describe("the broker goes away", () => {
  test("send throws retry while it is down and delivers once it is back", async () => {
    const { sink, device, observer } = await sinkFor({ url: broker.url("plain") });
    const first = batch(device, 2);
    await sink.send(first, sendOptions());
    await broker.stop();
    try {
      await until(() => !sink.connected(), "the sink to see the broker gone");
      const error = await rejection(sink.send(batch(device, 1), sendOptions()));
      expect(isSinkError(error) && error.failure).toBe("retry");
    } finally {
      await broker.start();
    }
    const after = batch(device, 3);
    // What the runner does: the same batch again after back-off, until it is taken.
    await until(() => sink.connected(), "the reconnect");
    await sink.send(after, sendOptions());
    await delivered(observer, [...first, ...after]);
  });
});

/** A Mosquitto without configuration: loopback only, anonymous clients allowed. */
async function anonymousBroker(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await closedPort();
  let program = "mosquitto";
  for (const candidate of ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]) {
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      program = candidate;
  }
  const child: ChildProcess = spawn(program, ["-p", String(port)], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    child.kill("SIGTERM");
    await exited;
  };
  const deadline = Date.now() + EVENT_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`mosquitto -p ${port} did not start`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { url: `mqtt://127.0.0.1:${port}`, stop };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * A TCP proxy to the broker that plays a broker without re-authentication: a client's AUTH packet
 * is answered with DISCONNECT 0x82 (protocol error), and the connection is closed.
 */
async function refusingReauthProxy(brokerPort: number): Promise<{
  port: number;
  authPackets: () => number;
  close: () => Promise<void>;
}> {
  let auths = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect({ host: "127.0.0.1", port: brokerPort });
    sockets.add(client);
    sockets.add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", closeBoth);
    upstream.on("close", closeBoth);
    client.on("error", closeBoth);
    upstream.on("error", closeBoth);
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    let pending = Buffer.alloc(0);
    client.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const length = packetLength(pending);
        if (length === undefined || pending.length < length) return;
        const packet = pending.subarray(0, length);
        pending = pending.subarray(length);
        if ((packet[0] ?? 0) >> 4 === 15) {
          auths += 1;
          client.end(Buffer.from([0xe0, 0x01, 0x82]));
          upstream.destroy();
          return;
        }
        upstream.write(packet);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    port: address.port,
    authPackets: () => auths,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Bytes of the MQTT packet at the start of `buffer` (fixed header + remaining length), or undefined while incomplete. */
function packetLength(buffer: Buffer): number | undefined {
  let multiplier = 1;
  let remaining = 0;
  for (let index = 1; index <= 4; index++) {
    const byte = buffer[index];
    if (byte === undefined) return undefined;
    remaining += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if ((byte & 0x80) === 0) return 1 + index + remaining;
  }
  throw new Error("malformed remaining length");
}
