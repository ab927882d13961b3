import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { expect } from "vitest";
import { type Broker, type Observer, observe, startBroker } from "../../scripts/broker/mosquitto.ts";
import type { EmulatorSettings } from "../../scripts/emulator/server.ts";
import { HttpSinkServer } from "../../scripts/receivers.ts";
import type { Running, Sandbox } from "../support/cli.ts";
import {
  boxFor,
  CODE,
  createProfile,
  type Emulator,
  type Launcher,
  launch,
  startEmulator,
} from "./harness.ts";

export const MQTT_AUDIENCE = "api://entratool-mqtt";
export const HTTP_AUDIENCE = "api://entratool-ingest";
export const DEVICE = "pi-e2e";

export interface PipelineOptions {
  readonly emulator?: Partial<EmulatorSettings>;
  /** Extra or replaced top-level configuration fields. */
  readonly config?: Record<string, unknown>;
  /** The MQTT sink's fields over the defaults (token auth, MQTT 5, the plain listener). */
  readonly mqtt?: Record<string, unknown>;
  /** Without an HTTP sink. */
  readonly noHttp?: boolean;
  /** Runs every command (create-profile, agent, send) through this, e.g. the arm64 binary under qemu. */
  readonly launcher?: Launcher;
}

export interface Pipeline {
  readonly emu: Emulator;
  readonly broker: Broker;
  readonly observer: Observer;
  readonly http: HttpSinkServer | undefined;
  readonly box: Sandbox;
  readonly configFile: string;
  config: Record<string, unknown>;
  /** Writes `config` (changed by the test) to the configuration file. */
  writeConfig(): void;
  /**
   * Starts `entratool agent` and returns once it listens; with `approve` (the default) it approves
   * the first code the agent shows and returns once the agent is signed in.
   */
  startAgent(options?: { approve?: boolean }): Promise<Running>;
  /** `entratool send --topic T --output json` with these values as NDJSON; the ids it was given. */
  send(topic: string, values: readonly unknown[]): Promise<string[]>;
  /** Every id the broker's observer saw on the telemetry topics. */
  mqttIds(): Set<string>;
  /** Waits until both receivers have every id in `ids`. */
  delivered(ids: readonly string[], timeoutMs?: number): Promise<void>;
  /** Every secret the emulator issued (tokens, refresh tokens, device codes): none may be in a log. */
  secrets(): string[];
  close(): Promise<void>;
}

export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  const emu = await startEmulator(options.emulator ?? {});
  const { jwk, publicKeyPem, tls } = emu.emulator.receiverCredentials();
  const broker = await startBroker({ publicKeyPem, audience: MQTT_AUDIENCE, tls });
  const observer = await observe(broker, `entratool/${DEVICE}/#`);
  const http = options.noHttp
    ? undefined
    : await HttpSinkServer.start({
        jwk,
        audience: HTTP_AUDIENCE,
        tls: { cert: tls.certPem, key: tls.keyPem },
      });
  const box = boxFor(emu, { logLevel: "info" });
  await createProfile(box, "default", options.launcher ? { launcher: options.launcher } : {});
  const configFile = join(dirname(box.home), "config.json");
  const agents: Running[] = [];
  const sinks: unknown[] = [
    {
      type: "mqtt",
      url: broker.url("plain"),
      auth: "token",
      protocolVersion: 5,
      scopes: [`${MQTT_AUDIENCE}/.default`],
      healthIntervalSeconds: 5,
      ...options.mqtt,
    },
  ];
  if (http) sinks.push({ type: "http", url: http.url, scopes: [`${HTTP_AUDIENCE}/.default`] });
  const pipeline: Pipeline = {
    emu,
    broker,
    observer,
    http,
    box,
    configFile,
    config: {
      profile: "default",
      device: DEVICE,
      displays: [{ type: "terminal" }],
      sinks,
      ...options.config,
    },
    writeConfig: () => writeFileSync(configFile, JSON.stringify(pipeline.config, null, 2)),
    startAgent: async ({ approve = true } = {}) => {
      const agent = launch(options.launcher, ["agent", "--config", configFile], box);
      agents.push(agent);
      if (approve) {
        const match = await agent.waitFor(CODE);
        emu.emulator.approve({ userCode: match[1] ?? "" });
        await agent.waitFor(/"msg":"signed in/, "stdout");
      } else {
        await agent.waitFor(/"msg":"entratool agent started"/, "stdout");
      }
      return agent;
    },
    send: async (topic, values) => {
      const input = values.map((value) => JSON.stringify(value)).join("\n");
      const result = await launch(
        options.launcher,
        ["send", "--topic", topic, "--output", "json"],
        box,
        `${input}\n`,
      ).done;
      expect(result.code, result.stderr).toBe(0);
      return (JSON.parse(result.stdout) as { ids: string[] }).ids;
    },
    mqttIds: () => {
      const ids = new Set<string>();
      for (const message of observer.messages) {
        if (message.topic.endsWith("/state") || message.topic.endsWith("/health")) continue;
        try {
          const value = JSON.parse(message.payload.toString("utf8")) as { id?: unknown };
          if (typeof value.id === "string") ids.add(value.id);
        } catch {
          // Not a telemetry message.
        }
      }
      return ids;
    },
    delivered: async (ids, timeoutMs = 60_000) => {
      await observer.waitFor(() => ids.every((id) => pipeline.mqttIds().has(id)), timeoutMs);
      if (http) {
        const deadline = Date.now() + timeoutMs;
        while (!ids.every((id) => http.accepted.has(id))) {
          const left = deadline - Date.now();
          if (left <= 0) {
            const missing = ids.filter((id) => !http.accepted.has(id)).length;
            throw new Error(`the HTTP sink server is missing ${missing} of ${ids.length} messages`);
          }
          // A request is counted when it arrives and its ids when it is answered: look again soon.
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            http.whenRequests(http.requests.length + 1),
            new Promise<void>((resolve) => {
              timer = setTimeout(resolve, Math.min(left, 50));
            }),
          ]);
          clearTimeout(timer);
        }
      }
    },
    secrets: () => emu.emulator.issuedSecrets(),
    close: async () => {
      // An agent a failed test left running must not outlive the test file.
      for (const agent of agents)
        if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGKILL");
      await observer.close();
      await http?.stop();
      await broker.close();
      await emu.stop();
    },
  };
  pipeline.writeConfig();
  return pipeline;
}

/** Stops the agent with SIGTERM and checks it exits 0 within `withinMs` (10 s, systemd's wait). */
export async function stopAgent(agent: Running, withinMs = 10_000): Promise<void> {
  const started = Date.now();
  agent.child.kill("SIGTERM");
  const result = await agent.done;
  expect(result.code, result.stderr).toBe(0);
  expect(Date.now() - started).toBeLessThan(withinMs);
}

/** Every log line (stdout is the agent's log; stderr its prompt) holds none of the secrets. */
export function expectNoSecrets(text: string, secrets: readonly string[]): void {
  for (const secret of secrets) {
    if (secret.length < 8) continue;
    expect(text.includes(secret), "a secret in the agent's output").toBe(false);
  }
}
