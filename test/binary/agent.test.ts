import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { EventHubsServer, LogsIngestionServer } from "../../scripts/receivers.ts";
import { removeSandboxes, run } from "../support/cli.ts";
import { DEVICE, expectNoSecrets, type Pipeline, startPipeline, stopAgent } from "./agent-world.ts";
import { CODE } from "./harness.ts";

const pipelines: Pipeline[] = [];
afterAll(async () => {
  await Promise.all(pipelines.map((pipeline) => pipeline.close()));
  removeSandboxes();
});

async function pipeline(options: Parameters<typeof startPipeline>[0] = {}): Promise<Pipeline> {
  const started = await startPipeline(options);
  pipelines.push(started);
  return started;
}

describe("entratool agent (the compiled binary, against the emulator, Mosquitto and an HTTPS receiver)", () => {
  it("signs in with a code on the terminal display, then delivers what `send` hands it to both sinks", async () => {
    const p = await pipeline();
    const agent = await p.startAgent();
    const ids = await p.send("readings", [{ t: 21.5 }, { t: 21.7 }, { nested: { ok: true } }]);
    expect(ids).toHaveLength(3);
    await p.delivered(ids);
    // The MQTT payload is the whole message, on the topic template.
    const message = p.observer.messages.find((m) => m.topic === `entratool/${DEVICE}/readings`);
    // Exactly the message object: nothing of the outbox's own bookkeeping.
    const payload = JSON.parse(message?.payload.toString() ?? "{}") as Record<string, unknown>;
    expect(Object.keys(payload).sort()).toEqual(["data", "device", "id", "topic", "ts"]);
    expect(payload).toMatchObject({ id: ids[0], device: DEVICE, topic: "readings", data: { t: 21.5 } });
    // The retained state says online; the HTTP receiver saw a verified token of the right audience.
    await p.observer.waitFor(
      (messages) =>
        messages.some((m) => m.topic === `entratool/${DEVICE}/state` && m.payload.toString() === "online"),
      10_000,
    );
    expect(p.http?.requests.every((request) => request.claims?.aud === "api://entratool-ingest")).toBe(true);
    await stopAgent(agent);
    // Offline, retained, after a clean stop.
    await p.observer.waitFor(
      (messages) =>
        messages.at(-1)?.topic === `entratool/${DEVICE}/state` ||
        messages.some((m) => m.payload.toString() === "offline"),
      10_000,
    );
    expect(
      p.observer.messages.some(
        (m) => m.topic === `entratool/${DEVICE}/state` && m.payload.toString() === "offline",
      ),
    ).toBe(true);
    expectNoSecrets(agent.stdout + agent.stderr, p.secrets());
  }, 120_000);

  it("status, get-token over the socket (no second refresh), and a restart that needs no new code", async () => {
    const p = await pipeline();
    const agent = await p.startAgent();
    const ids = await p.send("t", [1]);
    await p.delivered(ids);
    type Status = {
      signIn: { state: string; signedIn: boolean; account: string };
      device: string;
      outbox: { dropped: number };
      sinks: Array<{ name: string; connected: boolean; state: string; sent: number }>;
    };
    // The receivers have the message; the agent counts it once their acknowledgement is in.
    let parsed: Status | undefined;
    for (let tries = 0; tries < 50; tries++) {
      const status = await run(["status", "--output", "json"], p.box);
      expect(status.code, status.stderr).toBe(0);
      parsed = JSON.parse(status.stdout) as Status;
      if (parsed.sinks.every((sink) => sink.sent >= 1)) break;
    }
    if (!parsed) throw new Error("no status");
    expect(parsed.device).toBe(DEVICE);
    expect(parsed.signIn).toMatchObject({ signedIn: true, account: "pi@contoso.example" });
    expect(parsed.outbox.dropped).toBe(0);
    expect(parsed.sinks).toHaveLength(2);
    expect(parsed.sinks.every((sink) => sink.sent >= 1)).toBe(true);
    const text = await run(["status"], p.box);
    expect(text.stdout).toMatch(/Sign-in: {2}signed in as pi@contoso.example/);

    const before = p.emu.emulator.requests().length;
    const token = await run(["get-token", "--output", "json"], p.box);
    expect(token.code, token.stderr).toBe(0);
    expect(JSON.parse(token.stdout)).toMatchObject({ token_type: "Bearer", profile: "default" });
    // The agent's token, even when asked to refresh: the agent refreshes once for everyone.
    const forced = await run(["get-token", "--force-refresh", "--output", "json"], p.box);
    expect(forced.code, forced.stderr).toBe(0);
    expect(agent.stdout.match(/token handed out over the socket/g)?.length).toBe(2);
    expect(p.emu.emulator.requests().length - before).toBeLessThanOrEqual(1);
    // Another profile than the agent's: the store, as without an agent.
    const other = await run(["get-token", "--profile", "nope"], p.box);
    expect(other.code).toBe(2);

    await stopAgent(agent);
    // Started again with a valid refresh token: publishes without a new code.
    const again = await p.startAgent({ approve: false });
    const more = await p.send("t", [2]);
    await p.delivered(more);
    expect(again.stderr).not.toMatch(CODE);
    await stopAgent(again);
  }, 120_000);

  it("Event Hubs and Azure Monitor Logs: each sink's token comes silently from the one sign-in, with its own audience", async () => {
    const p = await pipeline({ noHttp: true });
    const { jwk, tls: identity } = p.emu.emulator.receiverCredentials();
    const tls = { cert: identity.certPem, key: identity.keyPem };
    const hubs = await EventHubsServer.start({ jwk, tls, hub: "boards" });
    const rule = "dcr-0123456789abcdef0123456789abcdef";
    const logs = await LogsIngestionServer.start({ jwk, tls, rule, stream: "Custom-Telemetry" });
    try {
      (p.config.sinks as unknown[]).push(
        { type: "eventhubs", namespace: hubs.url, hub: "boards" },
        { type: "azure-monitor-logs", endpoint: logs.url, rule, stream: "Custom-Telemetry" },
      );
      p.writeConfig();
      const agent = await p.startAgent();
      const ids = await p.send("t", [{ a: 1 }, { b: 2 }]);
      await p.delivered(ids);
      await hubs.whenRequests(1);
      await logs.whenRequests(1);
      for (
        let tries = 0;
        tries < 100 && !ids.every((id) => hubs.accepted.has(id) && logs.accepted.has(id));
        tries++
      ) {
        await Promise.race([
          hubs.whenRequests(hubs.requests.length + 1),
          logs.whenRequests(logs.requests.length + 1),
          new Promise((resolve) => setTimeout(resolve, 50)),
        ]);
      }
      expect(ids.every((id) => hubs.accepted.has(id))).toBe(true);
      expect(ids.every((id) => logs.accepted.has(id))).toBe(true);
      // One sign-in: one device code, and each receiver got a token for its own audience.
      expect(p.emu.emulator.requests().filter((r) => r.path.endsWith("/devicecode"))).toHaveLength(1);
      expect(hubs.requests.at(-1)?.claims?.aud).toBe("https://eventhubs.azure.net");
      expect(String(logs.requests.at(-1)?.claims?.aud)).toMatch(/^https:\/\/monitor\.azure\.com\/?$/);
      await stopAgent(agent);
    } finally {
      await hubs.stop();
      await logs.stop();
    }
  }, 120_000);

  it("send without an agent, and with a payload that is not JSON, fails with a clear sentence", async () => {
    const p = await pipeline({ noHttp: true });
    const none = await run(["send", "--topic", "t", "{}"], p.box);
    expect(none.code).toBe(13);
    expect(none.stderr).toMatch(/No entratool agent is running/);
    const agent = await p.startAgent();
    const bad = await run(["send", "--topic", "t", "{not json"], p.box);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not valid JSON/);
    const badLine = await run(["send", "--topic", "t"], p.box, '{"a":1}\nnope\n');
    expect(badLine.code).toBe(2);
    expect(badLine.stderr).toMatch(/Line 2 of standard input is not valid JSON/);
    await stopAgent(agent);
  }, 120_000);

  it("SIGHUP reloads the configuration; a bad new file is reported and the running one kept", async () => {
    const p = await pipeline({ noHttp: true });
    const agent = await p.startAgent();
    const first = await p.send("t", [1]);
    await p.delivered(first);
    // A broken file: the agent says why, and goes on.
    writeFileSync(p.configFile, '{ "sinks": [{ "type": "carrier-pigeon" }] }');
    agent.child.kill("SIGHUP");
    await agent.waitFor(/the configuration was not reloaded, the running one is kept/, "stdout");
    const second = await p.send("t", [2]);
    await p.delivered(second);
    // A good file with another topic template: used from the reload on.
    const mqtt = (p.config.sinks as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
    mqtt.topic = "reloaded/{device}/{topic}";
    p.writeConfig();
    agent.child.kill("SIGHUP");
    await agent.waitFor(/configuration reloaded/, "stdout");
    expect(readFileSync(p.configFile, "utf8")).toMatch(/reloaded/);
    await stopAgent(agent);
  }, 120_000);

  it("check-config lists every error with its path, and accepts a good file", async () => {
    const p = await pipeline({ noHttp: true });
    const good = await run(["check-config", "--config", p.configFile], p.box);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/is valid: profile 'default', device 'pi-e2e', 1 display, 0 sources, 1 sink/);
    writeFileSync(
      p.configFile,
      JSON.stringify({
        sources: [{ type: "system", intervalSeconds: 0 }],
        sinks: [{ type: "mqtt", url: "mqtt://broker.example.com", auth: "token" }, { type: "http" }],
        outbox: { maxBytes: 1 },
      }),
    );
    const bad = await run(["check-config", "--config", p.configFile], p.box);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/sources\[0\]\.intervalSeconds/);
    expect(bad.stderr).toMatch(/sinks\[0\]\.url/);
    expect(bad.stderr).toMatch(/sinks\[1\]\.url/);
    expect(bad.stderr).toMatch(/outbox\.maxBytes/);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
  }, 120_000);
});
