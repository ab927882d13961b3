/**
 * A real Mosquitto (2.0, Debian's `mosquitto`) for the tests, the demo and the benchmark, with the JWT plugin of
 * ./jwt_auth.c: the broker verifies each client's Entra-style access token itself (RS256
 * against the key the test gives, `aud`, `iss`, `exp`), as the agent's production broker does.
 *
 * One call to `startBroker` compiles the plugin (once per source: see `buildPlugin`), writes a
 * configuration into its own temporary directory and starts `mosquitto -c` on free loopback ports,
 * with five listeners:
 *
 * | kind       | URL        | who gets in                                                        |
 * |------------|------------|--------------------------------------------------------------------|
 * | `plain`    | mqtt://    | a token: the password (MQTT 3.1.1, 5) or MQTT 5 enhanced auth      |
 * | `ws`       | ws://      | the same, over WebSockets                                          |
 * | `tls`      | mqtts://   | the same, over TLS with the server certificate of `options.tls`    |
 * | `mtls`     | mqtts://   | a client certificate (`clientCert`): no token, the plugin is not   |
 * |            |            | asked (use_identity_as_username: the username is the cert's CN)    |
 * | `observer` | mqtts://   | the harness's own observer certificate, for `observe()`            |
 *
 * Why the observer needs a certificate rather than being anonymous: Mosquitto 2.0.11 sends the
 * plugin's tick (which disconnects clients whose token expired) only with `per_listener_settings
 * false` (per-listener ticks came in 2.0.15), so the plugin and `allow_anonymous false` apply to
 * every listener. The listeners that take certificates are the ones that never ask the plugin.
 *
 * The broker keeps its sessions and retained messages across `stop()`/`start()` (persistence in the
 * temporary directory), like a production broker restarted; so an observer's subscription, and the
 * QoS 1 messages published while it was reconnecting, survive a restart.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { access, constants, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import mqtt, { type IClientOptions } from "mqtt";
import pino from "pino";
import { systemClock } from "../../agent/core/clock.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { closedPort } from "../net.ts";
import { throwawayCa } from "../pki.ts";

/** The Debian packages the broker tests need (mosquitto itself, and what compiles its plugin). */
export const BROKER_DEB_PACKAGES: readonly string[] = [
  "mosquitto",
  "mosquitto-dev",
  "libmosquitto-dev",
  "libcjson-dev",
  "libssl-dev",
  "gcc",
  "libc6-dev",
];

/** PEM texts of a certificate, its key and the CA that issued it. */
export interface TlsFiles {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface BrokerOptions {
  /** The RSA public key (SPKI PEM) that signs the tokens the broker accepts. */
  readonly publicKeyPem: string;
  /** Accepted `aud` values (a token's `aud`, a string or an array, must hold one). */
  readonly audience: string | readonly string[];
  /** Accepted `iss` values, exact; default: any issuer. */
  readonly issuer?: string | readonly string[];
  /** The MQTT 5 enhanced authentication method; default "OAUTH2-JWT". */
  readonly method?: string;
  /**
   * Server certificate (for 127.0.0.1) of the `tls` and `mtls` listeners and its CA, e.g. the Entra
   * emulator's (`ensureTls` in scripts/emulator/tls.ts). Default: a throwaway one of the harness's.
   */
  readonly tls?: TlsFiles;
  /** Common name of `clientCert`, which the mtls listener makes the username; default "entratool-test-device". */
  readonly clientCommonName?: string;
  /**
   * Contents of an ACL file (mosquitto.conf `acl_file`); default: none (everything allowed). Token
   * clients are named after their token's `sub` (or `preferred_username`), so `pattern … %u`
   * works; the observer is `OBSERVER_USERNAME` and needs `topic read …` to see anything.
   */
  readonly acl?: string;
  /** More mosquitto.conf lines for the global section (e.g. "message_size_limit 1000"). */
  readonly extraConfig?: readonly string[];
}

export type ListenerKind = "plain" | "tls" | "mtls" | "ws" | "observer";

/** mqtt.js connection options for TLS: PEM texts, ready to spread into `mqtt.connect`'s options. */
export interface TlsConnectOptions {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface Broker {
  readonly ports: Readonly<Record<ListenerKind, number>>;
  /** mqtt://127.0.0.1:p (plain), ws://127.0.0.1:p (ws), mqtts://127.0.0.1:p (tls, mtls, observer). */
  url(kind: ListenerKind): string;
  /** What a client of that listener needs for TLS: the CA, and for mtls/observer its certificate. */
  tlsOptions(kind: ListenerKind): TlsConnectOptions;
  /** The CA of the `tls` and `mtls` listeners' server certificate (`options.tls.caPem` when given). */
  readonly caPem: string;
  /** For the mtls listener: its certificate and key, and `caPem`, the CA to trust the server with. */
  readonly clientCert: TlsFiles;
  /** Sends SIGTERM and waits for the broker to exit (SIGKILL after 10 s). Idempotent. */
  stop(): Promise<void>;
  /** Starts the broker again, on the same ports and with the same configuration. */
  start(): Promise<void>;
  /** Everything the broker logged so far, across restarts (never a token: see jwt_auth.c). */
  log(): string;
  /** Stops the broker and removes its temporary directory. */
  close(): Promise<void>;
}

/** The observer's username (its certificate's CN), for ACLs. */
export const OBSERVER_USERNAME = "entratool-test-observer";

const PLUGIN_SOURCE = join(import.meta.dirname, "jwt_auth.c");
const GCC_ARGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC"] as const;
const GCC_LIBS = ["-lcrypto", "-lcjson"] as const;
/** Bound on a start: the plugin's compile is separate (it takes a few seconds on a loaded machine). */
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
/** Bound on the exclusive lock around the compile and on the compile itself. */
const COMPILE_TIMEOUT_MS = 120_000;

/**
 * Compiles the plugin into `cacheDir` (default: a folder under the system's temp directory), named
 * by a hash of its source and compiler flags, unless it is there already; returns the `.so` path.
 * Test files that start brokers at the same time compile it once: the compile runs under an
 * exclusive flock on the cache directory, into a temporary name renamed into place.
 */
export async function buildPlugin(cacheDir = join(tmpdir(), "entratool-mosquitto-plugin")): Promise<string> {
  const source = await readFile(PLUGIN_SOURCE);
  const hash = createHash("sha256")
    .update(source)
    .update(JSON.stringify([GCC_ARGS, GCC_LIBS]))
    .digest("hex")
    .slice(0, 16);
  const target = join(cacheDir, `jwt_auth-${hash}.so`);
  if (await exists(target)) return target;

  const gcc = await findProgram("gcc");
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const locks = new FlockLockManager({
    locksDir: cacheDir,
    clock: systemClock,
    logger: pino({ level: "silent" }),
  });
  const lock = await locks.lockDirectory(cacheDir, { signal: AbortSignal.timeout(COMPILE_TIMEOUT_MS) });
  try {
    if (await exists(target)) return target; // another process compiled it while we waited
    const temp = `${target}.${process.pid}.${randomUUID()}.tmp`;
    try {
      await run(gcc, [...GCC_ARGS, "-o", temp, PLUGIN_SOURCE, ...GCC_LIBS]);
    } catch (error) {
      await rm(temp, { force: true });
      throw new Error(
        `Compiling the Mosquitto test plugin failed (missing headers? run apt-get install -y ${BROKER_DEB_PACKAGES.join(" ")}): ${String(error)}`,
      );
    }
    await rename(temp, target);
    return target;
  } finally {
    await lock.release();
  }
}

/**
 * Starts a broker (see the top of this file) and resolves once every listener accepts
 * connections. Call `close()` when done (e.g. in afterAll).
 */
export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const mosquitto = await findProgram("mosquitto");
  const plugin = await buildPlugin();
  const dir = await mkdtemp(join(tmpdir(), "entratool-mosquitto-"));
  try {
    const pki = await makePki(options.clientCommonName ?? "entratool-test-device");
    const serverTls = options.tls ?? {
      caPem: pki.caPem,
      certPem: pki.server.certPem,
      keyPem: pki.server.keyPem,
    };
    const files = {
      publicKey: join(dir, "jwt-public.pem"),
      serverCert: join(dir, "server-cert.pem"),
      serverKey: join(dir, "server-key.pem"),
      observerServerCert: join(dir, "observer-server-cert.pem"),
      observerServerKey: join(dir, "observer-server-key.pem"),
      clientCa: join(dir, "client-ca.pem"),
      acl: join(dir, "acl"),
      conf: join(dir, "mosquitto.conf"),
    };
    await writeFile(files.publicKey, options.publicKeyPem);
    await writeFile(files.serverCert, serverTls.certPem);
    await writeFile(files.serverKey, serverTls.keyPem, { mode: 0o600 });
    await writeFile(files.observerServerCert, pki.server.certPem);
    await writeFile(files.observerServerKey, pki.server.keyPem, { mode: 0o600 });
    await writeFile(files.clientCa, pki.caPem);
    if (options.acl !== undefined) await writeFile(files.acl, options.acl);

    const tlsOptions = (kind: ListenerKind): TlsConnectOptions => {
      switch (kind) {
        case "tls":
          return { ca: serverTls.caPem };
        case "mtls":
          return { ca: serverTls.caPem, cert: pki.client.certPem, key: pki.client.keyPem };
        case "observer":
          return { ca: pki.caPem, cert: pki.observer.certPem, key: pki.observer.keyPem };
        default:
          return {};
      }
    };

    // A port found free can be taken before mosquitto binds it; then it exits and we try new ones.
    let started: BrokerProcess | undefined;
    let ports = await freePorts();
    for (let attempt = 1; started === undefined; attempt++) {
      await writeFile(files.conf, configuration(options, plugin, dir, files, ports));
      const candidate = new BrokerProcess(mosquitto, files.conf, Object.values(ports));
      try {
        await candidate.start();
        started = candidate;
      } catch (error) {
        await candidate.stop();
        if (attempt >= 3 || !candidate.log().includes("Address already in use")) throw error;
        ports = await freePorts();
      }
    }
    const fixedPorts = Object.freeze({ ...ports });
    const broker = started;
    return {
      ports: fixedPorts,
      url: (kind) =>
        `${kind === "plain" ? "mqtt" : kind === "ws" ? "ws" : "mqtts"}://127.0.0.1:${fixedPorts[kind]}`,
      tlsOptions,
      caPem: serverTls.caPem,
      clientCert: { caPem: serverTls.caPem, certPem: pki.client.certPem, keyPem: pki.client.keyPem },
      stop: () => broker.stop(),
      start: () => broker.start(),
      log: () => broker.log(),
      close: async () => {
        await broker.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

export interface ObservedMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly retain: boolean;
}

export interface Observer {
  /** Every message received so far, in order of arrival. */
  readonly messages: readonly ObservedMessage[];
  /** The `id` of every message whose payload is a JSON object with a string `id` (or an array of them). */
  ids(): Set<string>;
  /** Resolves when `predicate(messages)` holds (checked now and on every message); rejects after `timeoutMs`. */
  waitFor(predicate: (messages: readonly ObservedMessage[]) => boolean, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Subscribes (QoS 1) to `topicFilter` on the observer listener and records every message. Its MQTT 5
 * session outlives a `stop()`/`start()` of the broker: it reconnects by itself every 100 ms, and
 * messages published meanwhile are delivered when it is back.
 */
export async function observe(broker: Broker, topicFilter: string): Promise<Observer> {
  const messages: ObservedMessage[] = [];
  const waiters = new Set<() => void>();
  const client = mqtt.connect(broker.url("observer"), {
    ...broker.tlsOptions("observer"),
    protocolVersion: 5,
    clientId: `observer-${randomUUID()}`,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 100,
    connectTimeout: 10_000,
  } satisfies IClientOptions);
  client.on("error", () => {}); // reconnects while the broker is down; `waitFor` reports timeouts
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, payload, retain: packet.retain });
    for (const waiter of waiters) waiter();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.end(true);
      reject(new Error(`observer could not connect:\n${broker.log()}`));
    }, 10_000);
    client.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const granted = await client.subscribeAsync(topicFilter, { qos: 1 });
  if (granted.some((grant) => grant.qos > 2)) {
    await client.endAsync(true);
    throw new Error(`observer was refused the subscription to ${topicFilter}`);
  }

  return {
    messages,
    ids: () => {
      const ids = new Set<string>();
      for (const message of messages) {
        for (const id of payloadIds(message.payload)) ids.add(id);
      }
      return ids;
    },
    waitFor: (predicate, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!predicate(messages)) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          const topics = messages.map((message) => message.topic).join(", ");
          const logTail = broker.log().split("\n").slice(-40).join("\n");
          reject(
            new Error(
              `observer: condition not met in ${timeoutMs} ms; ${messages.length} messages (${topics}); the broker's log ends:\n${logTail}`,
            ),
          );
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    // A DISCONNECT with session expiry 0 ends the session, so the broker stops queueing for it.
    close: () =>
      client.connected
        ? client.endAsync(false, { properties: { sessionExpiryInterval: 0 } })
        : client.endAsync(true),
  };
}

function payloadIds(payload: Buffer): string[] {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch {
    return [];
  }
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((item: unknown) =>
    typeof item === "object" && item !== null && typeof (item as { id?: unknown }).id === "string"
      ? [(item as { id: string }).id]
      : [],
  );
}

/** One mosquitto process at a time for a configuration; its output is kept across restarts. */
class BrokerProcess {
  readonly #program: string;
  readonly #conf: string;
  readonly #ports: readonly number[];
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log = "";
  /** Kills the broker if the test process exits without closing it. */
  readonly #killOnExit = (): void => {
    this.#child?.kill("SIGKILL");
  };

  constructor(program: string, conf: string, ports: readonly number[]) {
    this.#program = program;
    this.#conf = conf;
    this.#ports = ports;
  }

  log(): string {
    return this.#log;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const child = spawn(this.#program, ["-c", this.#conf], { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    process.once("exit", this.#killOnExit);
    const append = (chunk: Buffer): void => {
      this.#log += chunk.toString("utf8");
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    let exitedEarly: (reason: Error) => void = () => {};
    const early = new Promise<never>((_, reject) => {
      exitedEarly = reject;
    });
    early.catch(() => {}); // only read by the race below
    this.#exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        if (this.#child === child) this.#child = undefined;
        process.removeListener("exit", this.#killOnExit);
        exitedEarly(new Error(`mosquitto exited (${signal ?? code}) while starting:\n${this.#log}`));
        resolve();
      });
      child.once("error", (error) => {
        if (this.#child === child) this.#child = undefined;
        process.removeListener("exit", this.#killOnExit);
        exitedEarly(error);
        resolve();
      });
    });
    await Promise.race([early, this.#waitForPorts()]);
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return this.#exited;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Polls until every port accepts a TCP connection (every 20 ms, for at most READY_TIMEOUT_MS). */
  async #waitForPorts(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const port of this.#ports) {
      while (!(await accepts(port))) {
        if (!this.#child) throw new Error(`mosquitto exited while starting:\n${this.#log}`);
        if (Date.now() > deadline) {
          throw new Error(
            `mosquitto did not listen on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms:\n${this.#log}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
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

async function freePorts(): Promise<Record<ListenerKind, number>> {
  const ports = new Set<number>();
  while (ports.size < 5) ports.add(await closedPort());
  const [plain, ws, tls, mtls, observer] = [...ports] as [number, number, number, number, number];
  return { plain, ws, tls, mtls, observer };
}

interface ConfigFiles {
  readonly publicKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly observerServerCert: string;
  readonly observerServerKey: string;
  readonly clientCa: string;
  readonly acl: string;
}

function configuration(
  options: BrokerOptions,
  plugin: string,
  dir: string,
  files: ConfigFiles,
  ports: Record<ListenerKind, number>,
): string {
  const list = (value: string | readonly string[], what: string): string => {
    const items = typeof value === "string" ? [value] : [...value];
    for (const item of items) {
      if (item === "" || /[\s,]/.test(item))
        throw new Error(`broker ${what} ${JSON.stringify(item)}: no spaces or commas`);
    }
    if (items.length === 0) throw new Error(`broker ${what}: at least one`);
    return items.join(",");
  };
  const lines = [
    "# A test broker written by scripts/broker/mosquitto.ts.",
    // Global security settings: the only way Mosquitto 2.0.11 ticks the plugin (see the top).
    "per_listener_settings false",
    // As root, Mosquitto switches to the `mosquitto` user, who cannot read this private directory;
    // `user root` keeps root. Run by another user, it never switches (and the option is ignored).
    ...(process.getuid?.() === 0 ? ["user root"] : []),
    "allow_anonymous false",
    "persistence true",
    `persistence_location ${dir}/`,
    "log_dest stderr",
    "log_type all",
    "connection_messages true",
    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    `plugin ${plugin}`,
    `plugin_opt_public_key_file ${files.publicKey}`,
    `plugin_opt_audience ${list(options.audience, "audience")}`,
    ...(options.issuer === undefined ? [] : [`plugin_opt_issuer ${list(options.issuer, "issuer")}`]),
    `plugin_opt_method ${list(options.method ?? "OAUTH2-JWT", "method")}`,
    ...(options.acl === undefined ? [] : [`acl_file ${files.acl}`]),
    ...(options.extraConfig ?? []),
    "",
    `listener ${ports.plain} 127.0.0.1`,
    "",
    // At least one plain MQTT listener must come first: 2.0.11 does not count websockets ones.
    // socket_domain ipv4: otherwise libwebsockets binds every interface, whatever the address.
    `listener ${ports.ws} 127.0.0.1`,
    "protocol websockets",
    "socket_domain ipv4",
    "",
    `listener ${ports.tls} 127.0.0.1`,
    `certfile ${files.serverCert}`,
    `keyfile ${files.serverKey}`,
    "",
    `listener ${ports.mtls} 127.0.0.1`,
    `certfile ${files.serverCert}`,
    `keyfile ${files.serverKey}`,
    `cafile ${files.clientCa}`,
    "require_certificate true",
    "use_identity_as_username true",
    "",
    `listener ${ports.observer} 127.0.0.1`,
    `certfile ${files.observerServerCert}`,
    `keyfile ${files.observerServerKey}`,
    `cafile ${files.clientCa}`,
    "require_certificate true",
    "use_identity_as_username true",
    "",
  ];
  for (const line of lines) {
    if (/[\r\n]/.test(line))
      throw new Error(`broker configuration line with a line break: ${JSON.stringify(line)}`);
  }
  return lines.join("\n");
}

interface HarnessPki {
  readonly caPem: string;
  readonly server: { readonly certPem: string; readonly keyPem: string };
  readonly client: { readonly certPem: string; readonly keyPem: string };
  readonly observer: { readonly certPem: string; readonly keyPem: string };
}

/** A throwaway CA (its key never leaves memory) and the certificates it issues for one broker. */
async function makePki(clientCommonName: string): Promise<HarnessPki> {
  const ca = await throwawayCa("entratool test broker CA (throwaway)", Date.now(), 7);
  return {
    caPem: ca.caPem,
    server: await ca.issue("127.0.0.1", "serverAuth", [
      { type: "ip", value: "127.0.0.1" },
      { type: "dns", value: "localhost" },
    ]),
    client: await ca.issue(clientCommonName, "clientAuth"),
    observer: await ca.issue(OBSERVER_USERNAME, "clientAuth"),
  };
}

/** The program's path on PATH or in /usr/sbin, /sbin (mosquitto lives there); else a clear error. */
async function findProgram(name: "mosquitto" | "gcc"): Promise<string> {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    const path = join(dir, name);
    if (await exists(path, constants.X_OK)) return path;
  }
  throw new Error(
    `The broker tests need ${name}, which is not installed: run apt-get install -y ${BROKER_DEB_PACKAGES.join(" ")}`,
  );
}

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}

function run(program: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(program, [...args], { timeout: COMPILE_TIMEOUT_MS }, (error, _stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(),
    );
  });
}
