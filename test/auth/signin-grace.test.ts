/**
 * A refresh the identity provider may already have carried out (and so rotated the refresh token)
 * is not thrown away by a cancel or a timeout: a refresh request already sent may finish for a few
 * seconds (5 on the injected clock), and msal-node saves its tokens before getToken settles.
 * Nothing is sent once cancelled, and waiting for a person stays cancellable at once.
 */
import { describe, expect, it } from "vitest";
import type { SignInState } from "../../agent/auth/signin.ts";
import { rejection, SECOND, StateLog, until, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();

async function signedIn(): Promise<World> {
  const w = await start();
  const log = new StateLog().on((state: SignInState) => {
    if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
  });
  await w.service().getToken(w.profile(), { onState: log.onState });
  // The grace period (and any overall timeout) waits until the test moves time.
  w.clock.passiveSleepsFromMs = 5 * SECOND;
  return w;
}

const isTokenRequest = (entry: { path: string }): boolean => entry.path.endsWith("/oauth2/v2.0/token");

describe("a refresh in flight when the sign-in is cancelled", () => {
  it("finishes within the grace period and its rotated tokens are saved", async () => {
    const w = await signedIn();
    const [old] = w.refreshTokens();
    w.emulator.injectFaults("token", [{ type: "latency", ms: 300 }]);
    const received = w.emulator.waitForRequest(isTokenRequest, "received");
    const controller = new AbortController();
    const log = new StateLog();
    const outcome = rejection(
      w
        .service()
        .getToken(w.profile(), { forceRefresh: true, signal: controller.signal, onState: log.onState }),
    );
    await received;
    controller.abort();
    const error = await outcome;

    expect(error.code).toBe("E_CANCELLED");
    // The provider answered, and what it issued is on disk: the old refresh token is spent.
    expect(w.emulator.requests().filter(isTokenRequest).at(-1)).toMatchObject({
      fault: "latency",
      status: 200,
    });
    const rotated = w.refreshTokens().at(-1);
    expect(rotated).not.toBe(old);
    const stored = await w.storedCache();
    expect(stored).toContain(rotated);
    expect(stored).not.toContain(old);
    // And it works: the next refresh redeems the rotated token.
    const next = await w.service().getToken(w.profile(), { forceRefresh: true });
    expect(next.fromCache).toBe(false);
    expect(log.kinds()).toEqual(["starting", "refreshing", "cancelled"]);
  });

  it("finishes within the grace period after --timeout too (E_TIMEOUT all the same)", async () => {
    const w = await signedIn();
    const [old] = w.refreshTokens();
    w.emulator.injectFaults("token", [{ type: "latency", ms: 300 }]);
    const received = w.emulator.waitForRequest(isTokenRequest, "received");
    const answered = w.emulator.waitForRequest(isTokenRequest, "answered");
    const outcome = rejection(
      w.service().getToken(w.profile(), { forceRefresh: true, timeoutMs: 10 * SECOND }),
    );
    await received;
    w.clock.advance(10 * SECOND);
    const error = await outcome;
    expect(error.code).toBe("E_TIMEOUT");
    await answered;
    const rotated = w.refreshTokens().at(-1);
    expect(rotated).not.toBe(old);
    expect(await w.storedCache()).toContain(rotated);
  });

  it("is given up when the grace period is over: the cancel takes effect, nothing is saved", async () => {
    const w = await signedIn();
    const [old] = w.refreshTokens();
    w.emulator.injectFaults("token", [{ type: "latency", ms: 20_000 }]);
    const received = w.emulator.waitForRequest(isTokenRequest, "received");
    const controller = new AbortController();
    const outcome = rejection(
      w.service().getToken(w.profile(), { forceRefresh: true, signal: controller.signal }),
    );
    await received;
    controller.abort();
    // The grace period's 5 s on the injected clock.
    await until(() => w.clock.waitingSleeps === 1, "the grace period to start");
    const startedAt = performance.now();
    w.clock.advance(5 * SECOND);
    const error = await outcome;
    expect(error.code).toBe("E_CANCELLED");
    expect(performance.now() - startedAt).toBeLessThan(1000);
    expect(w.clock.sleeps).toContain(5 * SECOND);
    expect(await w.storedCache()).toContain(old);
  });

  it("a cancel before the refresh request goes out sends nothing", async () => {
    const w = await signedIn();
    const before = w.emulator.requests().length;
    const controller = new AbortController();
    const log = new StateLog().on((state) => {
      if (state.kind === "refreshing") controller.abort();
    });
    const error = await rejection(
      w
        .service()
        .getToken(w.profile(), { forceRefresh: true, signal: controller.signal, onState: log.onState }),
    );
    expect(error.code).toBe("E_CANCELLED");
    expect(w.emulator.requests().slice(before)).toEqual([]);
    expect(w.fetchCalls.filter((call) => call.grantType === "refresh_token")).toEqual([]);
  });
});
