import { describe, expect, it } from "vitest";
import type { SignInState } from "../../agent/auth/signin.ts";
import type { RequestLogEntry } from "../../scripts/emulator/server.ts";
import { DEFAULT_USER } from "../../scripts/emulator/server.ts";
import { rejection, SECOND, StateLog, TENANT, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();

/** Approves the code once this many polls were answered `authorization_pending` (0: at once). */
function approveAfterPending(w: World, pendingPolls: number): StateLog {
  let pending = 0;
  const approve = (userCode: string): void => {
    w.emulator.approve({ userCode });
  };
  return new StateLog().on((state: SignInState) => {
    if (state.kind === "code-issued" && pendingPolls === 0) approve(state.userCode);
    if (state.kind === "waiting" && state.poll.type === "pending") {
      pending += 1;
      if (pending === pendingPolls) approve(state.userCode);
    }
  });
}

function deviceCodeRequest(w: World): RequestLogEntry {
  const entry = w.emulator.requests().find((request) => request.path.endsWith("/devicecode"));
  if (!entry) throw new Error("no /devicecode request");
  return entry;
}

/** Virtual ms between the code being issued and each poll, then between consecutive polls. */
function pollGaps(w: World): number[] {
  const times = [deviceCodeRequest(w).at, ...w.polls().map((poll) => poll.at)];
  return times.slice(1).map((at, i) => at - (times[i] ?? at));
}

describe("device code sign-in against the emulator", () => {
  it("shows the code exactly as issued, signs in, then serves the cache without any request", async () => {
    const w = await start();
    const log = approveAfterPending(w, 1);
    const service = w.service();
    const issuedAt = w.clock.now();

    const result = await service.getToken(w.profile(), { onState: log.onState });

    const issued = log.codeIssued();
    const pending = w.emulator.requests().find((request) => request.path.endsWith("/devicecode"));
    expect(pending?.status).toBe(200);
    // Exactly what the emulator sent: its URL (never a hard-coded one) and its message.
    expect(issued.verificationUri).toBe(`${w.harness.host}/devicelogin`);
    expect(issued.qrPayload).toBe(issued.verificationUri);
    expect(issued.userCode).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(issued.message).toBe(
      `To sign in, use a web browser to open the page ${w.harness.host}/devicelogin and enter the code ${issued.userCode} to authenticate.`,
    );
    expect(issued.expiresAt).toBe(issuedAt + 900 * SECOND);
    expect(issued.intervalSeconds).toBe(5);
    expect(log.kinds()).toEqual(["starting", "code-issued", "waiting", "signed-in"]);

    expect(result.fromCache).toBe(false);
    expect(result.profile).toBe("default");
    expect(result.tokenType).toBe("Bearer");
    expect(result.scopes).toEqual(["User.Read"]);
    expect(result.account).toEqual({
      username: DEFAULT_USER.username,
      tenantId: TENANT,
      homeAccountId: `${DEFAULT_USER.oid}.${TENANT}`,
    });
    // The emulator's 3600 s, counted (by MSAL, conservatively) from before the first poll.
    expect(result.expiresAt).toBe(issuedAt + 3600 * SECOND);
    expect(w.requestKinds()).toEqual(["discovery", "devicecode", "device_code", "device_code"]);
    expect(log.last()).toMatchObject({
      kind: "signed-in",
      username: DEFAULT_USER.username,
      fromCache: false,
    });

    const before = w.emulator.requests().length;
    const again = new StateLog();
    const cached = await service.getToken(w.profile(), { onState: again.onState });
    expect(cached.fromCache).toBe(true);
    expect(cached.accessToken).toBe(result.accessToken);
    expect(cached.scopes).toEqual(["User.Read"]);
    // No discovery, no token request: the cache alone.
    expect(w.emulator.requests()).toHaveLength(before);
    expect(again.kinds()).toEqual(["starting", "signed-in"]);

    // A new service instance (a new process, in effect) reads the same encrypted cache.
    const fresh = await w.service().getToken(w.profile());
    expect(fresh).toMatchObject({ fromCache: true, accessToken: result.accessToken });
    expect(w.emulator.requests()).toHaveLength(before);
  });

  it("never polls sooner than the interval, the first poll included", async () => {
    const w = await start({ interval: 7 });
    const log = approveAfterPending(w, 4);
    await w.service().getToken(w.profile(), { onState: log.onState });
    expect(log.codeIssued().intervalSeconds).toBe(7);
    expect(pollGaps(w)).toEqual([7, 7, 7, 7, 7].map((s) => s * SECOND));
    expect(w.polls().map((poll) => poll.error)).toEqual([
      "authorization_pending",
      "authorization_pending",
      "authorization_pending",
      "authorization_pending",
      undefined,
    ]);
  });

  it("polls every 5 s when the server announces no interval", async () => {
    const w = await start({ interval: null });
    const log = approveAfterPending(w, 3);
    await w.service().getToken(w.profile(), { onState: log.onState });
    expect(log.codeIssued().intervalSeconds).toBe(5);
    expect(pollGaps(w)).toEqual([5, 5, 5, 5].map((s) => s * SECOND));
  });

  it("adds 5 s to the interval for every slow_down, keeps polling and signs in", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "slow_down" }, { type: "slow_down" }]);
    const log = approveAfterPending(w, 2);
    const result = await w.service().getToken(w.profile(), { onState: log.onState });
    expect(result.fromCache).toBe(false);
    expect(w.polls().map((poll) => poll.error)).toEqual([
      "slow_down",
      "slow_down",
      "authorization_pending",
      "authorization_pending",
      undefined,
    ]);
    // 5 s, then +5 s after the first slow_down, +5 s more after the second, for every later poll.
    expect(pollGaps(w)).toEqual([5, 10, 15, 15, 15].map((s) => s * SECOND));
    expect(log.waitingEvents()).toEqual(["slow-down", "slow-down", "pending", "pending"]);
    const slowDowns = log.states.flatMap((state) =>
      state.kind === "waiting" && state.poll.type === "slow-down" ? [state.poll.intervalSeconds] : [],
    );
    expect(slowDowns).toEqual([10, 15]);
  });

  it("obeys the server's own slow_down when a poll it timed out on still counted", async () => {
    // The first poll is held longer than the client waits for it. The server still handles it (as
    // Entra would) once the client's 5 s wait is over, so the retry arrives "too soon" and the
    // server itself answers slow_down.
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "latency", ms: 600 }]);
    const abandonedAnswered = w.emulatorAnswered((line) => line.includes("[latency]"));
    const log = approveAfterPending(w, 2).on((state) => {
      if (state.kind === "waiting" && state.poll.type === "retry") w.clock.hold();
    });
    const signIn = w.service({ requestTimeoutMs: 100 }).getToken(w.profile(), { onState: log.onState });
    await w.clock.whenParked();
    w.clock.advance(5 * SECOND);
    await abandonedAnswered;
    w.clock.release();
    await signIn;

    expect(w.polls().map((poll) => [poll.fault, poll.error])).toEqual([
      ["latency", "authorization_pending"],
      [undefined, "slow_down"],
      [undefined, "authorization_pending"],
      [undefined, "authorization_pending"],
      [undefined, undefined],
    ]);
    expect(log.waitingEvents()).toEqual(["retry", "slow-down", "pending", "pending"]);
    // Timed out at 5 s, retried 5 s later; slow_down raised 5 s to 10 s for the rest.
    expect(pollGaps(w)).toEqual([5, 5, 10, 10, 10].map((s) => s * SECOND));
  });

  it("retries 5xx, 429 (after Retry-After), dropped connections and timeouts with the same code", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [
      { type: "status", status: 503 },
      { type: "status", status: 500 },
      { type: "429", retryAfterSeconds: 30 },
      { type: "drop" },
      { type: "latency", ms: 2000 },
    ]);
    const log = approveAfterPending(w, 0);
    const result = await w.service({ requestTimeoutMs: 200 }).getToken(w.profile(), { onState: log.onState });
    expect(result.fromCache).toBe(false);

    // One code for the whole sign-in: the person may already have typed it.
    expect(w.requestKinds().filter((kind) => kind === "devicecode")).toHaveLength(1);
    const polls = w.polls();
    expect(polls.map((poll) => poll.fault ?? poll.status)).toEqual([
      "status",
      "status",
      "429",
      "drop",
      "latency",
      200,
    ]);
    // Back-off doubles from the interval with each failure in a row (5, 10, 40, 60 s at most);
    // Retry-After replaces it when given (30 s).
    expect(pollGaps(w)).toEqual([5, 5, 10, 30, 40, 60].map((s) => s * SECOND));
    const retries = log.states.flatMap((state) =>
      state.kind === "waiting" && state.poll.type === "retry" ? [state.poll] : [],
    );
    expect(retries).toEqual([
      { type: "retry", reason: "HTTP 503", delayMs: 5 * SECOND },
      { type: "retry", reason: "HTTP 500", delayMs: 10 * SECOND },
      { type: "retry", reason: "HTTP 429", delayMs: 30 * SECOND },
      { type: "retry", reason: expect.stringMatching(/^connection failed/), delayMs: 40 * SECOND },
      { type: "retry", reason: "timeout", delayMs: 60 * SECOND },
    ]);
  });

  it("fails with E_EXPIRED when nobody approves before the code expires", async () => {
    const w = await start({ expiresIn: 30 });
    const log = new StateLog();
    const issuedAt = w.clock.now();
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe("E_EXPIRED");
    expect(error.exitCode).toBe(4);
    expect(log.last()).toEqual({ kind: "expired", profile: "default" });
    // Polled while the code lived, not after; gave up when it expired.
    expect(w.polls().map((poll) => poll.at - issuedAt)).toEqual([5, 10, 15, 20, 25].map((s) => s * SECOND));
    expect(w.clock.now()).toBe(issuedAt + 30 * SECOND);
  });

  it("fails with E_EXPIRED when the server says the code expired", async () => {
    // Each poll takes 3 s (virtual) to reach the server. The client polls at 5 s (answered at 8 s),
    // then at 13 s, inside the code's 15 s; that poll arrives at 16 s, and the server says expired.
    const w = await start({ expiresIn: 15 });
    w.beforeFetch = (call) => {
      if (call.grantType === "device_code") w.clock.advance(3 * SECOND);
    };
    const log = new StateLog();
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe("E_EXPIRED");
    expect(w.polls().map((poll) => poll.error)).toEqual(["authorization_pending", "expired_token"]);
    expect(log.last()?.kind).toBe("expired");
  });

  it("fails with E_EXPIRED when the server keeps failing until the code's lifetime is over", async () => {
    const w = await start({ expiresIn: 60 });
    w.emulator.injectFaults(
      "token",
      Array.from({ length: 20 }, () => ({ type: "status", status: 503 }) as const),
    );
    const log = approveAfterPending(w, 0);
    const issuedAt = w.clock.now();
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe("E_EXPIRED");
    expect(error.exitCode).toBe(4);
    expect(log.last()?.kind).toBe("expired");
    // 5 s, then back-off 5, 10, 20 s; the next try (40 s later) would be past the expiry.
    expect(w.polls().map((poll) => poll.at - issuedAt)).toEqual([5, 10, 20, 40].map((s) => s * SECOND));
    expect(w.clock.now()).toBe(issuedAt + 60 * SECOND);
  });
});
