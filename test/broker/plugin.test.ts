/**
 * The JWT plugin (scripts/broker/jwt_auth.c) in a real Mosquitto, through mqtt.js: which
 * tokens get in on which listener, the CONNACK codes of those that do not, expiry, re-authentication,
 * TLS and mTLS, the observer, and a restart on the same ports.
 */
import { createPublicKey, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type Broker, type Observer, observe, startBroker } from "../../scripts/broker/mosquitto.ts";
import { ensureTls } from "../../scripts/emulator/tls.ts";
import { base64urlJson, TokenSigner } from "../../scripts/emulator/tokens.ts";

const AUDIENCE = "api://entratool-test";
const ISSUER = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0";
const METHOD = "OAUTH2-JWT";
const SUBJECT = "device-subject-1";
/** Bound on waiting for a real event (a CONNACK, a close): generous for a loaded 2-core machine. */
const EVENT_TIMEOUT_MS = 10_000;

type AuthPacket = Parameters<MqttClient["handleAuth"]>[0];

let signer: TokenSigner;
let stranger: TokenSigner;
let broker: Broker;
let tlsDir: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  [signer, stranger] = await Promise.all([TokenSigner.create(), TokenSigner.create()]);
  tlsDir = await mkdtemp(join(tmpdir(), "entratool-broker-tls-"));
  const tls = await ensureTls(tlsDir);
  broker = await startBroker({
    publicKeyPem: publicKeyPem(signer),
    audience: ["api://another-resource", AUDIENCE],
    issuer: ISSUER,
    tls: { caPem: tls.caPem, certPem: tls.certPem, keyPem: tls.keyPem },
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
});

afterAll(async () => {
  await broker?.close();
  if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
});

function publicKeyPem(tokenSigner: TokenSigner): string {
  return createPublicKey({ key: { ...tokenSigner.publicJwk() }, format: "jwk" })
    .export({ type: "spki", format: "pem" })
    .toString();
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  return {
    aud: AUDIENCE,
    iss: ISSUER,
    sub: SUBJECT,
    preferred_username: "pi@contoso.example",
    iat: now,
    nbf: now,
    exp: now + 3600,
    ...overrides,
  };
}

function token(overrides: Record<string, unknown> = {}): string {
  return signer.sign(claims(overrides));
}

type Outcome =
  | { readonly connected: true; readonly client: MqttClient }
  | { readonly connected: false; readonly code: number | undefined; readonly message: string };

/** Connects once (no reconnects) and reports the CONNACK, or the refusal's code (5/135, …). */
function connect(
  url: string,
  options: IClientOptions,
  setup?: (client: MqttClient) => void,
): Promise<Outcome> {
  const client = mqtt.connect(url, {
    clientId: `test-${randomUUID()}`,
    // mqtt.js sends no password without a username; the plugin does not look at it.
    ...(options.password === undefined ? {} : { username: "device" }),
    reconnectPeriod: 0,
    connectTimeout: EVENT_TIMEOUT_MS,
    ...options,
  });
  clients.push(client);
  setup?.(client);
  return new Promise((resolve, reject) => {
    let failure: { code: number | undefined; message: string } | undefined;
    const timer = setTimeout(
      () => reject(new Error(`no CONNACK in time\n${broker.log()}`)),
      EVENT_TIMEOUT_MS,
    );
    client.once("connect", () => {
      clearTimeout(timer);
      resolve({ connected: true, client });
    });
    client.on("error", (error: Error & { code?: unknown }) => {
      failure ??= { code: typeof error.code === "number" ? error.code : undefined, message: error.message };
    });
    client.once("close", () => {
      clearTimeout(timer);
      resolve({ connected: false, code: failure?.code, message: failure?.message ?? "closed" });
    });
  });
}

async function connected(url: string, options: IClientOptions, setup?: (client: MqttClient) => void) {
  const outcome = await connect(url, options, setup);
  if (!outcome.connected) throw new Error(`refused (${outcome.code}: ${outcome.message})\n${broker.log()}`);
  return outcome.client;
}

/** Resolves when `client` closes (the broker ended the connection); rejects after EVENT_TIMEOUT_MS. */
function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still connected\n${broker.log()}`)), EVENT_TIMEOUT_MS);
    client.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function enhanced(data?: string): IClientOptions {
  return {
    protocolVersion: 5,
    properties: {
      authenticationMethod: METHOD,
      ...(data === undefined ? {} : { authenticationData: Buffer.from(data) }),
    },
  };
}

/**
 * Sends AUTH 0x19 (re-authenticate) with a new token. mqtt.js has no public API for it
 * (https://github.com/mqttjs/MQTT.js/issues/1795), so this uses its internal `_sendPacket`.
 */
function reauthenticate(client: MqttClient, newToken: string): void {
  const packet: AuthPacket = {
    cmd: "auth",
    reasonCode: 0x19,
    properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(newToken) },
  };
  (client as unknown as { _sendPacket(packet: AuthPacket): void })._sendPacket(packet);
}

/** The broker's AUTH answers, as mqtt.js hands them to `handleAuth` (whose default does nothing). */
function recordAuth(client: MqttClient): AuthPacket[] {
  const received: AuthPacket[] = [];
  client.handleAuth = (packet, callback) => {
    received.push(packet);
    callback();
  };
  return received;
}

/** Waits until the broker has logged `text`: its log reaches us a little after its packets. */
async function logged(text: string): Promise<void> {
  await expect.poll(() => broker.log(), { timeout: EVENT_TIMEOUT_MS }).toContain(text);
}

describe("the token as the password", () => {
  test.each([4, 5] as const)(
    "MQTT %s: accepted, and the client is named after its subject",
    async (version) => {
      const clientId = `password-v${version}-${randomUUID()}`;
      await connected(broker.url("plain"), {
        protocolVersion: version,
        clientId,
        username: "any",
        password: token(),
      });
      await logged(`accepted client ${clientId} (password): sub ${SUBJECT}`);
    },
  );

  test("an audience list in the token needs only one accepted entry; preferred_username names a token without sub", async () => {
    const clientId = `aud-list-${randomUUID()}`;
    const password = token({ aud: ["api://unknown", AUDIENCE], sub: undefined });
    await connected(broker.url("plain"), { protocolVersion: 5, clientId, password });
    await logged(`accepted client ${clientId} (password): sub pi@contoso.example`);
  });

  const now = nowSeconds();
  const header = base64urlJson({ alg: "none", typ: "JWT" });
  const refusals: [string, () => string, string][] = [
    ["signed by another key", () => stranger.sign(claims()), "bad signature"],
    ["for another audience", () => token({ aud: "api://someone-else" }), "audience not accepted"],
    ["from another issuer", () => token({ iss: "https://sts.example/evil/" }), "issuer not accepted"],
    ["expired", () => token({ iat: now - 7200, nbf: now - 7200, exp: now - 10 }), "token expired"],
    ["with alg none", () => `${header}.${base64urlJson(claims())}.`, "alg is not RS256"],
    ["valid only in ten minutes", () => token({ nbf: now + 600 }), "token not yet valid (nbf)"],
    ["not a JWT", () => "not-a-token", "malformed token"],
    ["missing", () => "", "no token"],
  ];
  describe.each(refusals)("a token %s", (_name, make, reason) => {
    test.each([
      [4, 5],
      [5, 135],
    ] as const)("MQTT %s: refused with CONNACK %s, logged without the token", async (version, code) => {
      const clientId = `refused-v${version}-${randomUUID()}`;
      const password = make();
      const outcome = await connect(broker.url("plain"), {
        protocolVersion: version,
        clientId,
        username: "x",
        password,
      });
      expect(outcome).toMatchObject({ connected: false, code });
      await logged(`refused client ${clientId} (password): ${reason}`);
      if (password.length > 20) expect(broker.log()).not.toContain(password);
    });
  });
});

describe("MQTT 5 enhanced authentication", () => {
  test(`method ${METHOD} with the token in CONNECT's authentication data: accepted`, async () => {
    const clientId = `enhanced-${randomUUID()}`;
    await connected(broker.url("plain"), { ...enhanced(token()), clientId });
    await logged(`accepted client ${clientId} (enhanced auth): sub ${SUBJECT}`);
  });

  test("CONNECT without data: the broker asks (AUTH 0x18) and the token in the client's AUTH is accepted", async () => {
    const clientId = `continued-${randomUUID()}`;
    const asked: number[] = [];
    await connected(broker.url("plain"), { ...enhanced(), clientId }, (client) => {
      client.handleAuth = (packet, callback) => {
        asked.push(packet.reasonCode);
        callback(undefined, {
          cmd: "auth",
          reasonCode: 0x18,
          properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(token()) },
        });
      };
    });
    expect(asked).toEqual([0x18]);
    await logged(`accepted client ${clientId} (enhanced auth, continued): sub ${SUBJECT}`);
  });

  test("a bad token is refused with 135, another method with 140 (bad authentication method)", async () => {
    const bad = await connect(broker.url("plain"), enhanced(stranger.sign(claims())));
    expect(bad).toMatchObject({ connected: false, code: 135 });
    const otherMethod = await connect(broker.url("plain"), {
      protocolVersion: 5,
      properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: Buffer.from(token()) },
    });
    expect(otherMethod).toMatchObject({ connected: false, code: 140 });
  });
});

describe("expiry", () => {
  test("the broker disconnects a client whose token expired (MQTT 5: DISCONNECT 0x98), 3.1.1 too", async () => {
    // Whole seconds: this token lives 2-3 s from now, enough to connect on a loaded machine.
    const shortLived = token({ exp: nowSeconds() + 3 });
    const v5 = await connected(broker.url("plain"), { protocolVersion: 5, password: shortLived });
    const v4 = await connected(broker.url("plain"), {
      protocolVersion: 4,
      username: "x",
      password: shortLived,
    });
    const reasons: (number | undefined)[] = [];
    v5.on("disconnect", (packet) => reasons.push(packet.reasonCode));
    await Promise.all([closed(v5), closed(v4)]);
    expect(reasons).toEqual([0x98]);
    await logged(`disconnecting client ${v5.options.clientId}: token expired`);
  });

  test("re-authentication (AUTH 0x19) with a fresh token outlives the first token's expiry", async () => {
    const exp = nowSeconds() + 3;
    const renewed = await connected(broker.url("plain"), {
      ...enhanced(token({ exp })),
      clientId: `renewed-${randomUUID()}`,
    });
    const answers = recordAuth(renewed);
    // Same expiry, not renewed: the tick that disconnects it has also judged `renewed`.
    const control = await connected(broker.url("plain"), { protocolVersion: 5, password: token({ exp }) });
    const controlClosed = closed(control);

    reauthenticate(renewed, token());
    await expect
      .poll(() => answers.map((packet) => packet.reasonCode), { timeout: EVENT_TIMEOUT_MS })
      .toEqual([0]);
    await controlClosed;

    await renewed.publishAsync("test/renewed", "still here", { qos: 1 });
    expect(renewed.connected).toBe(true);
    await logged(`accepted client ${renewed.options.clientId} (re-authentication): sub ${SUBJECT}`);
  });

  test("a refused re-authentication (another subject) ends the connection", async () => {
    const client = await connected(broker.url("plain"), enhanced(token()));
    const ended = closed(client);
    reauthenticate(client, token({ sub: "someone-else" }));
    await ended;
    await logged(`refused client ${client.options.clientId} (re-authentication): another subject`);
  });
});

describe("listeners", () => {
  test("TLS with the caller's CA, and WebSockets, take the token", async () => {
    await connected(broker.url("tls"), {
      ...broker.tlsOptions("tls"),
      protocolVersion: 5,
      password: token(),
    });
    await connected(broker.url("ws"), { protocolVersion: 5, password: token() });
    expect(broker.url("tls")).toBe(`mqtts://127.0.0.1:${broker.ports.tls}`);
    expect(broker.url("ws")).toBe(`ws://127.0.0.1:${broker.ports.ws}`);
  });

  test("mTLS accepts the client certificate without a token and refuses a client without one", async () => {
    const { caPem, certPem, keyPem } = broker.clientCert;
    await connected(broker.url("mtls"), { protocolVersion: 5, ca: caPem, cert: certPem, key: keyPem });
    const without = await connect(broker.url("mtls"), { protocolVersion: 5, ca: caPem, password: token() });
    expect(without.connected).toBe(false);
  });

  test("the observer sees what token and certificate clients publish", async () => {
    const topic = `devices/${randomUUID()}`;
    const observer = await observe(broker, `${topic}/#`);
    try {
      const ids = [randomUUID(), randomUUID()];
      const viaToken = await connected(broker.url("plain"), { protocolVersion: 5, password: token() });
      const viaCert = await connected(broker.url("mtls"), {
        protocolVersion: 5,
        ...broker.tlsOptions("mtls"),
      });
      await viaToken.publishAsync(`${topic}/token`, JSON.stringify({ id: ids[0] }), { qos: 1 });
      await viaCert.publishAsync(`${topic}/cert`, JSON.stringify({ id: ids[1] }), { qos: 1, retain: true });
      await observer.waitFor((messages) => messages.length === 2, EVENT_TIMEOUT_MS);
      expect(observer.ids()).toEqual(new Set(ids));
      expect(observer.messages.map(({ topic: t, retain }) => [t, retain])).toEqual([
        [`${topic}/token`, false],
        [`${topic}/cert`, false], // retain is set only on messages a new subscription finds
      ]);
    } finally {
      await observer.close();
    }
  });
});

describe("a broker of its own", () => {
  let own: Broker | undefined;
  let observer: Observer | undefined;
  afterAll(async () => {
    await observer?.close();
    await own?.close();
  });

  test("stop() and start() again on the same ports; the observer's subscription survives", async () => {
    own = await startBroker({ publicKeyPem: publicKeyPem(signer), audience: AUDIENCE });
    observer = await observe(own, "restart/#");
    const ports = { ...own.ports };
    const client = await connected(own.url("plain"), { protocolVersion: 5, password: token() });
    const ended = closed(client);

    await own.stop();
    await ended;
    const down = await connect(own.url("plain"), { protocolVersion: 5, password: token() });
    expect(down.connected).toBe(false);

    await own.start();
    expect(own.ports).toEqual(ports);
    const again = await connected(own.url("plain"), { protocolVersion: 5, password: token() });
    await again.publishAsync("restart/after", JSON.stringify({ id: "after-restart" }), { qos: 1 });
    await observer.waitFor(() => observer?.ids().has("after-restart") === true, EVENT_TIMEOUT_MS);
    expect(own.log().match(/mosquitto version [\d.]+ running/g)).toHaveLength(2);
  });

  test("an ACL can use the username the plugin takes from the token's subject", async () => {
    const acl = await startBroker({
      publicKeyPem: publicKeyPem(signer),
      audience: AUDIENCE,
      acl: ["pattern write devices/%u/#", "user entratool-test-observer", "topic read devices/#", ""].join(
        "\n",
      ),
    });
    try {
      const watcher = await observe(acl, "devices/#");
      try {
        const client = await connected(acl.url("plain"), {
          protocolVersion: 5,
          username: "ignored",
          password: token(),
        });
        // A denied QoS 1 publish is acknowledged with 0x87 (not authorized) and dropped.
        await expect(
          client.publishAsync("devices/someone-else/t", JSON.stringify({ id: "denied" }), { qos: 1 }),
        ).rejects.toMatchObject({ code: 135 });
        await client.publishAsync(`devices/${SUBJECT}/t`, JSON.stringify({ id: "allowed" }), { qos: 1 });
        await watcher.waitFor(() => watcher.ids().has("allowed"), EVENT_TIMEOUT_MS);
        expect(watcher.ids()).toEqual(new Set(["allowed"]));
      } finally {
        await watcher.close();
      }
    } finally {
      await acl.close();
    }
  });
});
