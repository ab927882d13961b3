import { describe, expect, it } from "vitest";
import type { ErrorCode } from "../../agent/core/errors.ts";
import type { Lock, LockManager } from "../../agent/store/types.ts";
import type { ApprovalOutcome } from "../../scripts/emulator/server.ts";
import { closedPort } from "../../scripts/net.ts";
import { rejection, SECOND, StateLog, until, worldPerTest } from "./world.ts";

const start = worldPerTest();

describe("sign-in outcomes other than success", () => {
  it("reports a declined request as E_DECLINED", async () => {
    const w = await start();
    const log = new StateLog().on((state) => {
      if (state.kind === "code-issued") w.emulator.decline({ userCode: state.userCode });
    });
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe("E_DECLINED");
    expect(error.exitCode).toBe(5);
    expect(log.last()).toMatchObject({ kind: "error", error: { code: "E_DECLINED" } });
    expect(w.polls().map((poll) => poll.error)).toEqual(["authorization_declined"]);
  });

  const outcomes: Array<[ApprovalOutcome, ErrorCode, number, string]> = [
    ["policy_blocked", "E_POLICY_BLOCKED", 7, "blocked-by-policy"],
    ["not_public_client", "E_NOT_PUBLIC_CLIENT", 8, "error"],
    ["consent_required", "E_CONSENT_REQUIRED", 8, "error"],
  ];
  it.each(outcomes)("maps an approval ending in %s to %s", async (outcome, code, exitCode, stateKind) => {
    const w = await start();
    const log = new StateLog().on((state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode, outcome });
    });
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe(code);
    expect(error.exitCode).toBe(exitCode);
    expect(log.last()).toMatchObject({ kind: stateKind, profile: "default" });
    // A terminal answer: no second poll, no new code.
    expect(w.requestKinds()).toEqual(["discovery", "devicecode", "device_code"]);
  });

  it("reports an unregistered client as E_APP_REGISTRATION without showing a code", async () => {
    const w = await start({ registeredClients: ["9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a"] });
    const log = new StateLog();
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe("E_APP_REGISTRATION");
    expect(error.exitCode).toBe(8);
    expect(error.details).toMatchObject({ error: "unauthorized_client", error_codes: [700016] });
    expect(log.kinds()).toEqual(["starting", "error"]);
    expect(w.requestKinds()).toEqual(["discovery", "devicecode"]);
  });

  it("gives up on a device code endpoint that keeps failing, without showing a code", async () => {
    const w = await start();
    w.emulator.injectFaults("devicecode", [
      { type: "status", status: 503 },
      { type: "status", status: 503 },
      { type: "status", status: 503 },
    ]);
    const log = new StateLog();
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe("E_NETWORK");
    expect(error.exitCode).toBe(3);
    expect(error.message).toBe("Microsoft Entra ID is unavailable (HTTP 503). Try again in a few minutes.");
    expect(log.kinds()).toEqual(["starting", "offline"]);
    expect(w.requestKinds()).toEqual(["discovery", "devicecode", "devicecode", "devicecode"]);
  });

  it("reports an unreachable identity provider as E_NETWORK after a few retries", async () => {
    const w = await start();
    const port = await closedPort();
    const profile = w.profile({ authorityHost: `https://127.0.0.1:${port}` });
    const log = new StateLog();
    const startedAt = w.clock.now();
    const error = await rejection(w.service().getToken(profile, { onState: log.onState }));
    expect(error.code).toBe("E_NETWORK");
    expect(error.exitCode).toBe(3);
    expect(log.last()).toMatchObject({ kind: "offline", error: { code: "E_NETWORK" } });
    expect(log.kinds()).not.toContain("code-issued");
    // Three attempts at the OpenID configuration, 0.5 s and 1 s apart (virtual); nothing after.
    expect(w.fetchCalls.map((call) => call.path)).toEqual(
      Array.from({ length: 3 }, () => `/${profile.tenantId}/v2.0/.well-known/openid-configuration`),
    );
    expect(w.clock.now() - startedAt).toBe(1.5 * SECOND);
  });

  it("reports an untrusted certificate as E_TLS, without retrying", async () => {
    const w = await start();
    const log = new StateLog();
    const error = await rejection(
      w.service({ fetchOptions: { trustCa: false } }).getToken(w.profile(), { onState: log.onState }),
    );
    expect(error.code).toBe("E_TLS");
    expect(error.exitCode).toBe(3);
    expect(log.last()).toMatchObject({ kind: "offline", error: { code: "E_TLS" } });
    expect(w.fetchCalls).toHaveLength(1);
    expect(w.emulator.requests()).toEqual([]);
  });
});

describe("cancellation and timeouts", () => {
  it("aborts the poll in flight at once when the signal fires", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "latency", ms: 5000 }]);
    const controller = new AbortController();
    const log = new StateLog();
    const outcome = rejection(
      w.service().getToken(w.profile(), { signal: controller.signal, onState: log.onState }),
    );
    await until(
      () => w.emulator.requests().some((request) => request.fault === "latency"),
      "the poll to reach the emulator",
    );
    const started = performance.now();
    controller.abort();
    const error = await outcome;
    const elapsed = performance.now() - started;

    expect(error.code).toBe("E_CANCELLED");
    expect(error.exitCode).toBe(130);
    expect(elapsed).toBeLessThan(1000);
    expect(log.last()).toEqual({ kind: "cancelled", profile: "default" });
    const poll = w.fetchCalls.find((call) => call.grantType === "device_code");
    expect(poll?.signal?.aborted).toBe(true);
    // The held poll never got its answer, and nothing was sent after it.
    expect(w.polls()).toEqual([expect.objectContaining({ fault: "latency", status: 0 })]);
    expect(w.requestKinds()).toEqual(["discovery", "devicecode", "device_code"]);
    expect(w.fetchCalls).toHaveLength(3);
  });

  it("stops at once when the signal fires between polls", async () => {
    const w = await start();
    const controller = new AbortController();
    const log = new StateLog().on((state) => {
      if (state.kind === "waiting") w.clock.hold();
    });
    const outcome = rejection(
      w.service().getToken(w.profile(), { signal: controller.signal, onState: log.onState }),
    );
    await w.clock.whenParked();
    const waitingSince = w.clock.now();
    const started = performance.now();
    controller.abort();
    const error = await outcome;

    expect(error.code).toBe("E_CANCELLED");
    expect(performance.now() - started).toBeLessThan(1000);
    expect(w.clock.parkedSleeps).toBe(0);
    expect(w.clock.now()).toBe(waitingSince);
    expect(log.kinds()).toEqual(["starting", "code-issued", "waiting", "cancelled"]);
    expect(w.polls()).toHaveLength(1);
  });

  it("does nothing when the signal is already aborted", async () => {
    const w = await start();
    const log = new StateLog();
    const error = await rejection(
      w.service().getToken(w.profile(), { signal: AbortSignal.abort(), onState: log.onState }),
    );
    expect(error.code).toBe("E_CANCELLED");
    expect(log.kinds()).toEqual(["starting", "cancelled"]);
    expect(w.fetchCalls).toEqual([]);
  });

  it("releases a lock that is granted only after the cancel", async () => {
    const w = await start();
    let grant: ((lock: Lock) => void) | undefined;
    let released = 0;
    // A lock manager that ignores the signal and grants late, as a racing acquire could.
    const locks: LockManager = {
      acquire: () =>
        new Promise<Lock>((resolve) => {
          grant = resolve;
        }),
    };
    const controller = new AbortController();
    const outcome = rejection(w.service({ locks }).getToken(w.profile(), { signal: controller.signal }));
    controller.abort();
    expect((await outcome).code).toBe("E_CANCELLED");
    grant?.({
      release: async () => {
        released += 1;
      },
    });
    await until(() => released > 0, "the late lock to be released");
    expect(released).toBe(1);
    expect(w.fetchCalls).toEqual([]);
  });

  it("gives up with E_TIMEOUT after timeoutMs of waiting for the person", async () => {
    const w = await start();
    // The overall timeout waits on the poll loop's time instead of jumping ahead by itself.
    w.clock.passiveSleepsFromMs = 60 * SECOND;
    const log = new StateLog();
    const startedAt = w.clock.now();
    const error = await rejection(
      w.service().getToken(w.profile(), { timeoutMs: 60 * SECOND, onState: log.onState }),
    );
    expect(error.code).toBe("E_TIMEOUT");
    expect(error.exitCode).toBe(4);
    expect(log.last()).toEqual({ kind: "expired", profile: "default" });
    expect(w.clock.now() - startedAt).toBe(60 * SECOND);
    expect(w.polls().map((poll) => poll.at - startedAt)).toEqual(
      Array.from({ length: 11 }, (_, i) => (i + 1) * 5 * SECOND),
    );
  });
});
