/**
 * The agent under faults, end to end: each test asserts that the receivers hold every id the agent
 * accepted (duplicates allowed: delivery is at-least-once), and that no token, refresh token or
 * device code appears in anything the agent wrote.
 */
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { Running } from "../support/cli.ts";
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

/** Real time passing is the fault itself here (a broker away for 10 s), not a wait for an event. */
const elapse = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The agent's resident memory, KiB (from /proc). */
function rssKiB(agent: Running): number {
  const status = readFileSync(`/proc/${agent.child.pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const CLIENT = `entratool-${DEVICE}`;

describe("the agent under faults (compiled binary; real emulator, Mosquitto, HTTPS receiver)", () => {
  it("a broker stopped for 10 s: what was accepted meanwhile arrives after it is back", async () => {
    const p = await pipeline();
    const agent = await p.startAgent();
    const before = await p.send("t", [1, 2, 3]);
    await p.delivered(before);
    await p.broker.stop();
    const during = await p.send("t", [4, 5, 6]);
    await elapse(10_000);
    await p.broker.start();
    const after = await p.send("t", [7]);
    await p.delivered([...before, ...during, ...after], 90_000);
    await stopAgent(agent);
    expectNoSecrets(agent.stdout + agent.stderr, p.secrets());
  }, 120_000);

  it("HTTP 503 and 429 with Retry-After: retried, nothing lost", async () => {
    const p = await pipeline();
    const agent = await p.startAgent();
    p.http?.fail({ type: "status", status: 503 }, 2);
    p.http?.fail({ type: "status", status: 429, retryAfter: "1" }, 1);
    const ids = await p.send("t", [1, 2]);
    await p.delivered(ids, 60_000);
    const statuses = p.http?.requests.map((request) => request.status) ?? [];
    expect(statuses.slice(0, 4)).toEqual([503, 503, 429, 200]);
    await stopAgent(agent);
  }, 90_000);

  it("three token rotations on one live MQTT connection (in-band re-authentication); never disconnected for expiry", async () => {
    // 16 s tokens: the sink rotates 4 s before expiry (a quarter of the life); the broker kicks a
    // client whose token expired. (With 12 s, 3 s of lead was too little on a loaded 2-core machine.)
    const p = await pipeline({
      emulator: { accessTokenLifetime: 16 },
      noHttp: true,
      mqtt: { auth: "oauth2-jwt" },
    });
    const agent = await p.startAgent();
    const accepted: string[] = [];
    const reauths = (): number =>
      (p.broker.log().match(new RegExp(`accepted client ${CLIENT} \\(re-authentication\\)`, "g")) ?? [])
        .length;
    // A message every few hundred ms, for three rotations (about 40 s with 16 s tokens).
    const deadline = Date.now() + 90_000;
    for (let round = 0; reauths() < 3; round++) {
      accepted.push(...(await p.send("t", [round])));
      if (Date.now() > deadline) throw new Error(`no third rotation:\n${p.broker.log()}\n${agent.stdout}`);
    }
    await p.delivered(accepted, 60_000);
    const log = p.broker.log();
    // Each re-authentication changed the token on a live connection; none ran out.
    expect(log).not.toMatch(new RegExp(`disconnecting client ${CLIENT}: token expired`));
    await stopAgent(agent);
    expectNoSecrets(agent.stdout + agent.stderr + log, p.secrets());
  }, 150_000);

  it("the identity provider down during refreshes: telemetry waits in the outbox, then arrives; no new code", async () => {
    const p = await pipeline({ emulator: { accessTokenLifetime: 12 } });
    const agent = await p.startAgent();
    const first = await p.send("t", [1]);
    await p.delivered(first);
    p.emu.emulator.injectFaults(
      "token",
      Array.from({ length: 6 }, () => ({ type: "status" as const, status: 503 })),
    );
    const during = await p.send("t", [2, 3]);
    await p.delivered([...first, ...during], 90_000);
    expect([...agent.stderr.matchAll(new RegExp(CODE, "g"))]).toHaveLength(1);
    await stopAgent(agent);
    expectNoSecrets(agent.stdout + agent.stderr, p.secrets());
  }, 120_000);

  it("the refresh token revoked mid-run: a new code on the display, telemetry kept, delivered after sign-in", async () => {
    const p = await pipeline({ emulator: { accessTokenLifetime: 12 } });
    const agent = await p.startAgent();
    const first = await p.send("t", [1]);
    await p.delivered(first);
    p.emu.emulator.revokeRefreshTokens();
    const match = await agent.waitFor(CODE, "stderr", 2);
    const during = await p.send("t", [2, 3]);
    p.emu.emulator.approve({ userCode: match[1] ?? "" });
    await p.delivered([...first, ...during], 90_000);
    await stopAgent(agent);
    expectNoSecrets(agent.stdout + agent.stderr, p.secrets());
  }, 120_000);

  it("kill -9 mid-stream, again and again: every message a `send` got an id for arrives; no new code", async () => {
    const p = await pipeline();
    let agent = await p.startAgent();
    // Both sinks hold their tokens first. A refresh token is single-use here (as the emulator
    // rotates it strictly): a kill between the provider's answer and the fsync of the new one would
    // lose the sign-in, a window no client can close. Steady sending redeems no refresh token.
    const accepted: string[] = await p.send("t", ["first"]);
    await p.delivered(accepted);
    for (let round = 0; round < 4; round++) {
      // A stream of sends; the agent is killed while they run.
      let ended = false;
      const sending = (async () => {
        for (let i = 0; i < 30; i++) {
          const result = await run(
            ["send", "--topic", "t", "--output", "json"],
            p.box,
            `{"round":${round},"i":${i}}\n`,
          );
          // Refused: the agent was killed (what it answered before was accepted).
          if (result.code !== 0) break;
          accepted.push(...(JSON.parse(result.stdout) as { ids: string[] }).ids);
        }
        ended = true;
      })();
      const target = accepted.length + 5;
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (accepted.length >= target || ended) {
            clearInterval(check);
            resolve();
          }
        }, 5);
      });
      agent.child.kill("SIGKILL");
      await agent.done;
      await sending;
      expect(agent.stderr.match(new RegExp(CODE, "g"))?.length ?? 0).toBeLessThanOrEqual(1);
      agent = await p.startAgent({ approve: false });
    }
    await p.delivered(accepted, 90_000);
    expect(agent.stderr).not.toMatch(CODE);
    await stopAgent(agent);
  }, 180_000);

  it("an outbox that is full drops the oldest, counts them, and memory stays flat", async () => {
    // A sink that can never deliver (nothing listens there), and the smallest outbox allowed.
    const p = await pipeline({
      noHttp: true,
      config: { outbox: { maxBytes: 65_536 } },
      mqtt: { url: "mqtt://127.0.0.1:9" },
    });
    const agent = await p.startAgent();
    // 60 MB of telemetry through a 64 KiB outbox: memory must not follow it. Garbage comes and
    // goes between collections, so the test compares the peaks of early and late rounds.
    const batch = Array.from({ length: 20_000 }, (_, i) => ({ i, pad: "x".repeat(80) }));
    const rss: number[] = [];
    for (let round = 0; round < 30; round++) {
      await p.send("t", batch);
      rss.push(rssKiB(agent));
    }
    const status = await run(["status", "--output", "json"], p.box);
    const parsed = JSON.parse(status.stdout) as {
      outbox: { dropped: number; bytes: number };
      memory: { heapUsedBytes: number };
    };
    expect(parsed.outbox.dropped).toBeGreaterThan(590_000);
    expect(parsed.outbox.bytes).toBeLessThanOrEqual(65_536);
    const early = Math.max(...rss.slice(2, 12));
    const late = Math.max(...rss.slice(20));
    expect(late - early, `RSS KiB by round: ${rss.join(" ")}`).toBeLessThan(32 * 1024);
    expect(parsed.memory.heapUsedBytes).toBeLessThan(64 * 1024 * 1024);
    await stopAgent(agent);
  }, 120_000);
});
