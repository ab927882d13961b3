/**
 * A broker away for two minutes (the agent's reconnect back-off grows meanwhile): every message
 * accepted before, during and after arrives once it is back. A file of its own, so that its two
 * minutes run beside the other test files.
 */
import { afterAll, expect, it } from "vitest";
import { removeSandboxes, run } from "../support/cli.ts";
import { expectNoSecrets, type Pipeline, startPipeline, stopAgent } from "./agent-world.ts";

let p: Pipeline | undefined;
afterAll(async () => {
  await p?.close();
  removeSandboxes();
});

/** Real time passing is the fault itself (a broker away for 2 min), not a wait for an event. */
const elapse = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

it("a broker stopped for 2 min: everything accepted meanwhile arrives after it is back", async () => {
  p = await startPipeline({ noHttp: true });
  const agent = await p.startAgent();
  const before = await p.send("t", [1, 2]);
  await p.delivered(before);
  await p.broker.stop();
  const during: string[] = [];
  for (let minute = 0; minute < 4; minute++) {
    during.push(...(await p.send("t", [{ minute }])));
    await elapse(30_000);
  }
  await p.broker.start();
  const after = await p.send("t", [3]);
  // The broker back: the sink reconnects (its back-off is capped at 60 s) and the runner, woken by
  // the connection, sends at once rather than at the end of its own back-off.
  await p.delivered([...before, ...during, ...after], 90_000);
  // mqtt.js may have resent what was in flight when the broker went: the receiver can have it
  // before the runner's own retry is acknowledged. The runner gets there right after.
  type Status = { sinks: Array<{ state: string; pending: number }> };
  let status: Status | undefined;
  for (let tries = 0; tries < 100; tries++) {
    status = JSON.parse((await run(["status", "--output", "json"], p.box)).stdout) as Status;
    if (status.sinks[0]?.state === "ok" && status.sinks[0]?.pending === 0) break;
  }
  expect(status?.sinks[0]).toMatchObject({ state: "ok", pending: 0 });
  await stopAgent(agent);
  expectNoSecrets(agent.stdout + agent.stderr, p.secrets());
}, 300_000);
