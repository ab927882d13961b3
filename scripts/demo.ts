/**
 * `npm run demo`: the whole pipeline on this machine, with no Azure tenant, unattended to the end.
 *
 * 1. The local Entra emulator (HTTPS with a throwaway CA; 40 s tokens, so that a rotation happens
 *    while you watch), a profile that points at it.
 * 2. A broker that verifies the tokens itself: Mosquitto with the JWT plugin (scripts/broker/) when
 *    mosquitto and gcc are installed, otherwise aedes in this process (MQTT 3.1.1, the token as the
 *    password checked with jose), so a machine with only Node and npm runs it all. An HTTPS receiver
 *    that verifies the bearer token too.
 * 3. `entratool agent` with the terminal display: its code appears below; open the URL and approve
 *    it yourself, or wait and the demo approves it. Then system telemetry every 5 s and a message
 *    handed over with `entratool send` flow to both receivers (printed as they arrive), `entratool
 *    status` shows the agent, a token rotation happens on the live MQTT connection, and SIGTERM
 *    stops the agent cleanly.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from "jose";
import { type Broker, type Observer, observe, startBroker } from "./broker/mosquitto.ts";
import { demoProfileArgs, EntraEmulator } from "./emulator/server.ts";
import { HttpSinkServer } from "./receivers.ts";
import { until } from "./wait.ts";

const APPROVE_AFTER_SECONDS = 8;
const TOKEN_SECONDS = 40;
const DEVICE = "demo-pi";
const MQTT_AUDIENCE = "api://entratool-demo-broker";
const HTTP_AUDIENCE = "api://entratool-demo-ingest";
const root = join(import.meta.dir, "..");
const binary = join(root, "dist", "entratool");

const say = (text: string): void => {
  process.stdout.write(`\x1b[2m${text}\x1b[22m\n`);
};
const shown = (label: string, topic: string, payload: string): void => {
  const text = payload.length > 110 ? `${payload.slice(0, 107)}...` : payload;
  process.stdout.write(`  \x1b[36m${label}\x1b[39m ← ${topic} ${text}\n`);
};

function build(): void {
  say("Building dist/entratool ...");
  const result = spawnSync(process.execPath, [join(root, "scripts", "build.ts"), "--host-only"], {
    stdio: "inherit",
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function entratool(args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [...args], { env, stdio: "inherit" });
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

/** The broker the demo publishes to: what was received, how many times the agent authenticated, and how to stop it. */
interface DemoBroker {
  readonly url: string;
  readonly protocolVersion: 4 | 5;
  readonly name: string;
  received(): Array<{ topic: string; payload: string }>;
  authentications(): number;
  close(): Promise<void>;
}

/** Mosquitto with the JWT plugin, when it and a compiler are installed. */
async function mosquitto(publicKeyPem: string): Promise<DemoBroker | undefined> {
  const have = (command: string): boolean => spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;
  if (!have("mosquitto") || !have("gcc")) return undefined;
  let broker: Broker;
  let observer: Observer;
  try {
    broker = await startBroker({ publicKeyPem, audience: MQTT_AUDIENCE });
    observer = await observe(broker, `entratool/${DEVICE}/#`);
  } catch (error) {
    say(`(Mosquitto could not be used: ${(error as Error).message.split("\n")[0]}; aedes instead)`);
    return undefined;
  }
  return {
    url: broker.url("plain"),
    protocolVersion: 5,
    name: "Mosquitto with the JWT plugin",
    received: () => observer.messages.map((m) => ({ topic: m.topic, payload: m.payload.toString("utf8") })),
    authentications: () =>
      (broker.log().match(new RegExp(`accepted client entratool-${DEVICE} `, "g")) ?? []).length,
    close: async () => {
      await observer.close();
      await broker.close();
    },
  };
}

/** aedes in this process: MQTT 3.1.1, the access token as the password, verified with jose. */
async function aedes(jwks: ReturnType<typeof createLocalJWKSet>): Promise<DemoBroker> {
  const { Aedes } = await import("aedes");
  const received: Array<{ topic: string; payload: string }> = [];
  let authentications = 0;
  const broker = await Aedes.createBroker({
    authenticate: (_client, _username, password, done) => {
      jwtVerify(password?.toString("utf8") ?? "", jwks, {
        audience: MQTT_AUDIENCE,
        algorithms: ["RS256"],
      }).then(
        () => {
          authentications += 1;
          done(null, true);
        },
        () => done(Object.assign(new Error("bad token"), { returnCode: 4 }), false),
      );
    },
  });
  broker.on("publish", (packet, client) => {
    if (client) received.push({ topic: packet.topic, payload: packet.payload.toString() });
  });
  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    protocolVersion: 4,
    name: "aedes (in this process; install mosquitto and gcc for the real one)",
    received: () => received,
    authentications: () => authentications,
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function main(): Promise<number> {
  build();
  const home = mkdtempSync(join(tmpdir(), "entratool-demo-"));
  const emulator = new EntraEmulator({
    tlsDir: join(root, ".emulator"),
    port: 0,
    autoApproveAfter: APPROVE_AFTER_SECONDS,
    defaults: { interval: 2, accessTokenLifetime: TOKEN_SECONDS },
  });
  const started = await emulator.start();
  const { jwk, publicKeyPem, tls } = emulator.receiverCredentials();
  const jwks = createLocalJWKSet({ keys: [jwk] } as JSONWebKeySet);
  const broker = (await mosquitto(publicKeyPem)) ?? (await aedes(jwks));
  const http = await HttpSinkServer.start({
    jwk,
    audience: HTTP_AUDIENCE,
    tls: { cert: tls.certPem, key: tls.keyPem },
  });
  const env = { ...process.env, ENTRATOOL_HOME: home, NODE_EXTRA_CA_CERTS: started.caPath };
  let agent: ChildProcess | undefined;
  let printed = { mqtt: 0, http: 0 };
  const printer = setInterval(() => {
    const mqtt = broker.received().filter((m) => !m.topic.endsWith("/health"));
    for (const message of mqtt.slice(printed.mqtt)) shown("mqtt", message.topic, message.payload);
    const accepted = http.requests.filter((request) => request.status >= 200 && request.status < 300);
    for (const request of accepted.slice(printed.http)) {
      shown("https", "POST /", `${request.ids.length} message(s), token for ${String(request.claims?.aud)}`);
    }
    printed = { mqtt: mqtt.length, http: accepted.length };
  }, 100);
  try {
    say(
      `Entra emulator on ${started.authorityHost}; broker: ${broker.name} on ${broker.url}; HTTPS receiver on ${http.url}`,
    );
    say(`State in ${home}\n`);
    const created = await entratool(demoProfileArgs({ authorityHost: started.authorityHost }), env);
    if (created !== 0) return created;
    const configFile = join(home, "config.json");
    const config = {
      version: 1,
      profile: "default",
      device: DEVICE,
      displays: [{ type: "terminal" }],
      sources: [{ type: "system", intervalSeconds: 5 }],
      sinks: [
        {
          type: "mqtt",
          url: broker.url,
          auth: "token",
          protocolVersion: broker.protocolVersion,
          scopes: [`${MQTT_AUDIENCE}/.default`],
          healthIntervalSeconds: 30,
        },
        { type: "http", url: http.url, format: "ndjson", scopes: [`${HTTP_AUDIENCE}/.default`] },
      ],
    };
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    say(`\n$ entratool agent --config ${configFile}`);
    say(
      `Open the URL below and approve the code yourself (accept the self-signed certificate), or wait ${APPROVE_AFTER_SECONDS} s.\n`,
    );
    const log: string[] = [];
    const child = spawn(binary, ["agent", "--config", configFile], {
      env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    agent = child;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      for (const line of chunk.split("\n").filter(Boolean)) {
        log.push(line);
        try {
          const record = JSON.parse(line) as { level?: string; msg?: string };
          if (record.level !== "debug" && record.msg) say(`  agent: ${record.msg}`);
        } catch {
          say(`  agent: ${line}`);
        }
      }
    });
    await until(() => log.some((line) => line.includes('"msg":"signed in')), "the sign-in", 120_000);
    await until(() => printed.mqtt > 1 && printed.http > 0, "the first telemetry", 30_000);

    say('\n$ entratool send --topic hello \'{"from":"a script on the board"}\'');
    const sent = await entratool(["send", "--topic", "hello", '{"from":"a script on the board"}'], env);
    if (sent !== 0) return sent;
    await until(() => broker.received().some((m) => m.topic.endsWith("/hello")), "the message sent", 30_000);

    say("\n$ entratool status");
    await entratool(["status"], env);

    say(`\nWaiting for a token rotation on the live MQTT connection (tokens last ${TOKEN_SECONDS} s) ...`);
    const before = broker.authentications();
    await until(() => broker.authentications() > before, "a token rotation", 90_000);
    say("  the agent rotated its token before it expired; telemetry goes on");
    await until(() => printed.mqtt > 5, "more telemetry", 30_000);

    say("\nStopping the agent (SIGTERM) ...");
    const stoppedAt = Date.now();
    const exit = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    child.kill("SIGTERM");
    const code = await exit;
    agent = undefined;
    clearInterval(printer);
    say(
      `\nThe agent exited ${code} after ${Date.now() - stoppedAt} ms. Received: ${broker.received().length} MQTT messages, ` +
        `${http.accepted.size} messages over HTTPS, every one with a token the receiver verified.`,
    );
    return code ?? 1;
  } finally {
    clearInterval(printer);
    agent?.kill("SIGKILL");
    await http.stop();
    await broker.close();
    await emulator.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

process.exit(await main());
