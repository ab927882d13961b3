/**
 * The Raspberry Pi binary (dist/entratool-linux-arm64) through the agent's whole scenario under
 * qemu-user, once per CPU a Pi has: cortex-a53 (Pi 3, Zero 2 W: ARMv8.0, no LSE atomics) and
 * cortex-a72 (Pi 4). create-profile, the agent and `send` all run as arm64 code: the agent signs in
 * (the code is approved at the emulator), delivers its own system telemetry and what `send` hands
 * it to a real Mosquitto that checks the token, and stops cleanly on SIGTERM.
 *
 * Emulation makes every step several times slower than on the host (about 1.2 s for `--version`):
 * the waits are generous, and each is bounded by the test's timeout.
 */
import { afterAll, describe, expect, it } from "vitest";
import { removeSandboxes } from "../support/cli.ts";
import { DEVICE, expectNoSecrets, type Pipeline, startPipeline, stopAgent } from "./agent-world.ts";
import { qemuArm64, requireQemu } from "./harness.ts";

const pipelines: Pipeline[] = [];
afterAll(async () => {
  await Promise.all(pipelines.map((pipeline) => pipeline.close()));
  removeSandboxes();
});

const STATE = `entratool/${DEVICE}/state`;

describe("the linux-arm64 agent under qemu-user (emulator, Mosquitto)", () => {
  for (const [cpu, boards] of [
    ["cortex-a53", "Pi 3, Zero 2 W"],
    ["cortex-a72", "Pi 4"],
  ] as const) {
    it(`-cpu ${cpu} (${boards}): signs in, delivers system telemetry and \`send\`, stops on SIGTERM`, async () => {
      requireQemu();
      const p = await startPipeline({
        launcher: qemuArm64(cpu),
        noHttp: true,
        config: { sources: [{ type: "system", intervalSeconds: 5 }] },
      });
      pipelines.push(p);
      const agent = await p.startAgent();
      const ids = await p.send("readings", [{ cpu }, { t: 21.5 }]);
      expect(ids).toHaveLength(2);
      await p.delivered(ids, 90_000);
      const reading = p.observer.messages.find((m) => m.topic === `entratool/${DEVICE}/readings`);
      expect(JSON.parse(reading?.payload.toString() ?? "{}")).toMatchObject({
        id: ids[0],
        device: DEVICE,
        topic: "readings",
        data: { cpu },
      });
      // The system source read the machine's /proc through the emulated arm64 code.
      await p.observer.waitFor(
        (messages) => messages.some((m) => m.topic === `entratool/${DEVICE}/system`),
        60_000,
      );
      const system = p.observer.messages.find((m) => m.topic === `entratool/${DEVICE}/system`);
      const data = (JSON.parse(system?.payload.toString() ?? "{}") as { data?: Record<string, unknown> })
        .data;
      expect(Object.keys(data ?? {}).length).toBeGreaterThan(0);
      expect(p.observer.messages.some((m) => m.topic === STATE && m.payload.toString() === "online")).toBe(
        true,
      );
      // A clean stop within systemd's 10 s even when emulated, and the retained state says offline.
      await stopAgent(agent);
      await p.observer.waitFor(
        (messages) => messages.some((m) => m.topic === STATE && m.payload.toString() === "offline"),
        10_000,
      );
      expectNoSecrets(agent.stdout + agent.stderr, p.secrets());
    }, 240_000);
  }
});
