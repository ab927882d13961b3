import { describe, expect, it } from "vitest";
import type { SignInService, TokenRequest } from "../../agent/auth/signin.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { CLIENT_ID, rejection, SECOND, StateLog, TENANT, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();

/** A state log that approves every code as soon as it is shown. */
function approving(w: World): StateLog {
  return new StateLog().on((state) => {
    if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
  });
}

async function signIn(w: World, service: SignInService, request: TokenRequest = {}) {
  return service.getToken(w.profile(), { onState: approving(w).onState, ...request });
}

describe("refresh", () => {
  it("serves the cache until MSAL's renewal window, then refreshes and rotates the refresh token", async () => {
    const w = await start({ accessTokenLifetime: 3600 });
    const service = w.service();
    const first = await signIn(w, service);
    const [oldRefreshToken] = w.refreshTokens();
    expect(oldRefreshToken).toBeDefined();
    expect(await w.storedCache()).toContain(oldRefreshToken);

    // 50 minutes on: still valid and outside the 5-minute renewal window.
    w.clock.advance(3000 * SECOND);
    const cached = await service.getToken(w.profile());
    expect(cached).toMatchObject({ fromCache: true, accessToken: first.accessToken });

    // Past expiry: one refresh_token request, a new access token, a new refresh token.
    w.clock.advance(600 * SECOND);
    const requestsBefore = w.emulator.requests().length;
    const log = new StateLog();
    const refreshed = await service.getToken(w.profile(), { onState: log.onState });
    expect(refreshed.fromCache).toBe(false);
    expect(refreshed.accessToken).not.toBe(first.accessToken);
    expect(refreshed.expiresAt).toBe(w.clock.now() + 3600 * SECOND);
    expect(w.requestKinds().slice(requestsBefore)).toEqual(["refresh_token"]);
    // "refreshing" just before the refresh token goes out.
    expect(log.kinds()).toEqual(["starting", "refreshing", "signed-in"]);

    const refreshTokens = w.refreshTokens();
    expect(refreshTokens).toHaveLength(2);
    const newRefreshToken = refreshTokens[1] ?? "";
    // Rotated: only the new one is on disk, and the old one no longer works.
    const stored = await w.storedCache();
    expect(stored).toContain(newRefreshToken);
    expect(stored).not.toContain(oldRefreshToken);
    const reuse = await w.harness.refresh(TENANT, CLIENT_ID, oldRefreshToken ?? "");
    expect(reuse.status).toBe(400);
    expect(reuse.json).toMatchObject({ error: "invalid_grant", error_codes: [70008] });

    // And the refreshed token is served from the cache afterwards.
    const again = await service.getToken(w.profile());
    expect(again).toMatchObject({ fromCache: true, accessToken: refreshed.accessToken });
  });

  it("redeems the refresh token on forceRefresh even while the access token is valid", async () => {
    const w = await start();
    const service = w.service();
    const first = await signIn(w, service);
    const before = w.emulator.requests().length;
    const forced = await service.getToken(w.profile(), { forceRefresh: true });
    expect(forced.fromCache).toBe(false);
    expect(forced.accessToken).not.toBe(first.accessToken);
    expect(w.requestKinds().slice(before)).toEqual(["refresh_token"]);
    expect(await w.storedCache()).not.toContain(w.refreshTokens()[0]);
  });

  it("signs in again with a new device code when the refresh token was revoked", async () => {
    const w = await start();
    const service = w.service();
    await signIn(w, service);
    expect(w.emulator.revokeRefreshTokens()).toEqual({ revoked: 1 });
    w.clock.advance(3600 * SECOND);

    const before = w.emulator.requests().length;
    const log = approving(w);
    const result = await service.getToken(w.profile(), { onState: log.onState });
    expect(result.fromCache).toBe(false);
    expect(log.kinds()).toEqual(["starting", "refreshing", "sign-in-required", "code-issued", "signed-in"]);
    expect(log.states[2]).toMatchObject({
      kind: "sign-in-required",
      reason: { code: "E_SIGN_IN_REQUIRED", message: expect.stringContaining("no longer valid") },
    });
    // Why, for the operator: the log line carries Entra's error and AADSTS code.
    const why = w.logLines
      .map((line) => JSON.parse(line))
      .find((r) => r.msg === "cached sign-in no longer valid");
    expect(why.reason).toMatchObject({ error: "invalid_grant", error_codes: [50173] });
    expect(w.requestKinds().slice(before)).toEqual(["refresh_token", "devicecode", "device_code"]);
    // The new sign-in's refresh token replaced the revoked one on disk.
    const stored = await w.storedCache();
    const [revoked, current] = w.refreshTokens();
    expect(stored).toContain(current);
    expect(stored).not.toContain(revoked);
  });

  it("fails with E_SIGN_IN_REQUIRED instead of showing a code when device codes are not allowed", async () => {
    const w = await start();
    const log = new StateLog();
    const error = await rejection(
      w.service().getToken(w.profile(), { allowDeviceCode: false, onState: log.onState }),
    );
    expect(error.code).toBe("E_SIGN_IN_REQUIRED");
    expect(error.exitCode).toBe(9);
    expect(log.kinds()).toEqual(["starting", "sign-in-required"]);
    // Only the provider's configuration (msal-node is configured with it before it can tell).
    expect(w.requestKinds()).toEqual(["discovery"]);

    // Also when the cached sign-in went bad: one refresh attempt, no device code.
    await signIn(w, w.service());
    w.emulator.revokeRefreshTokens();
    w.clock.advance(3600 * SECOND);
    const before = w.emulator.requests().length;
    const again = await rejection(w.service().getToken(w.profile(), { allowDeviceCode: false }));
    expect(again.code).toBe("E_SIGN_IN_REQUIRED");
    expect(w.requestKinds().slice(before)).toEqual(["refresh_token"]);
  });
});

describe("secrets", () => {
  it("writes no token or device code to the log or, unencrypted, to the state directory", async () => {
    const w = await start({ accessTokenLifetime: 3600 });
    w.emulator.injectFaults("token", [{ type: "slow_down" }, { type: "status", status: 503 }]);
    const service = w.service();
    let pending = 0;
    const log = new StateLog().on((state) => {
      if (state.kind === "waiting" && state.poll.type === "pending" && ++pending === 2) {
        w.emulator.approve({ userCode: state.userCode });
      }
    });
    await service.getToken(w.profile(), { onState: log.onState });
    w.clock.advance(3600 * SECOND);
    await service.getToken(w.profile());
    await service.getToken(w.profile(), { forceRefresh: true });
    w.emulator.revokeRefreshTokens();
    await service.getToken(w.profile(), { forceRefresh: true, onState: approving(w).onState });

    const secrets = w.emulator.issuedSecrets();
    // Two device codes; per sign-in or refresh an access, refresh and id token.
    expect(secrets.filter((secret) => secret.startsWith("DAQAB"))).toHaveLength(2);
    expect(w.refreshTokens()).toHaveLength(4);
    // Whole secrets and their distinctive ends (a truncated token is still a leak).
    const needles = secrets.flatMap((secret) => [secret, secret.slice(-24)]);

    expect(w.logLines.length).toBeGreaterThan(20);
    const logText = w.logLines.join("");
    expect(logText).toContain("device code issued");
    expect(needles.filter((needle) => logText.includes(needle))).toEqual([]);

    const files = await w.stateFiles();
    expect(files.map((file) => file.path.slice(w.stateDir.length)).sort()).toEqual([
      expect.stringMatching(/^\/discovery\/127\.0\.0\.1_\d+_[0-9a-f-]+-[0-9a-f]{12}\.json$/),
      "/locks/default.lock",
      "/store.key",
      "/tokens/default.cache",
    ]);
    for (const file of files) {
      expect(needles.filter((needle) => file.text.includes(needle))).toEqual([]);
    }
    // The cache does hold the current refresh token, encrypted.
    expect(await w.storedCache()).toContain(w.refreshTokens().at(-1));
  });
});

describe("two sign-ins for one profile at once", () => {
  it("shows one device code; the second waits for the lock and gets the same token", async () => {
    const w = await start();
    // Each lock manager waits on a clock of its own: lock polling must not move the flow's time.
    const first = w.service({ lockClock: new VirtualClock() });
    const second = w.service({ lockClock: new VirtualClock() });
    let userCode: string | undefined;
    let someoneWaited = false;
    let approved = false;
    // Approve only once the other call is known to be waiting: they really overlapped.
    const react = (state: { kind: string; userCode?: string }): void => {
      if (state.kind === "code-issued") userCode = state.userCode;
      if (state.kind === "waiting-for-lock") someoneWaited = true;
      if (userCode && someoneWaited && !approved) {
        approved = true;
        w.emulator.approve({ userCode });
      }
    };
    const logA = new StateLog().on(react);
    const logB = new StateLog().on(react);
    const [a, b] = await Promise.all([
      first.getToken(w.profile(), { onState: logA.onState }),
      second.getToken(w.profile(), { onState: logB.onState }),
    ]);

    expect(w.requestKinds().filter((kind) => kind === "devicecode")).toHaveLength(1);
    expect(a.accessToken).toBe(b.accessToken);
    expect([a.fromCache, b.fromCache].sort()).toEqual([false, true]);
    const kinds = [logA.kinds(), logB.kinds()];
    const waiter = kinds.find((list) => list.includes("waiting-for-lock"));
    const signer = kinds.find((list) => list.includes("code-issued"));
    expect(waiter).toEqual(["starting", "waiting-for-lock", "signed-in"]);
    // (Polls before the approval, if any, show as "waiting".)
    expect(signer?.filter((kind) => kind !== "waiting")).toEqual(["starting", "code-issued", "signed-in"]);
  });
});
