import { describe, expect, it } from "vitest";
import type { TokenRequest, TokenResult } from "../../agent/auth/signin.ts";
import { EntraToolError } from "../../agent/core/errors.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { createLogger } from "../../agent/pino-logger.ts";
import { AgentTokens } from "../../agent/service/tokens.ts";
import type { Profile } from "../../agent/store/types.ts";

const logger = createLogger({ level: "silent", destination: { write: () => undefined } });
const HOUR = 3_600_000;

function world(refuse: (scopes: readonly string[]) => boolean = () => false) {
  const clock = new VirtualClock(Date.UTC(2026, 11, 2), { auto: false });
  const calls: Array<{ scopes: readonly string[]; forceRefresh: boolean }> = [];
  let lost = 0;
  const profile = { name: "default", scopes: ["https://graph.microsoft.com/.default"] } as unknown as Profile;
  const engine = {
    getToken: async (_profile: Profile, request: TokenRequest = {}): Promise<TokenResult> => {
      const scopes = request.scopes ?? [];
      calls.push({ scopes, forceRefresh: request.forceRefresh === true });
      if (refuse(scopes)) throw new EntraToolError("E_SIGN_IN_REQUIRED");
      return {
        profile: "default",
        accessToken: `token-${calls.length}`,
        tokenType: "Bearer",
        expiresAt: clock.now() + HOUR,
        scopes: [...scopes],
        account: { username: "pi@contoso.example", tenantId: "t", homeAccountId: "h" },
        fromCache: false,
      };
    },
  };
  const tokens = new AgentTokens({
    profile,
    engine,
    clock,
    logger,
    signedIn: () => true,
    onSignInLost: () => {
      lost += 1;
    },
  });
  return { clock, calls, tokens, lost: () => lost };
}

describe("AgentTokens", () => {
  it("concurrent requests for one set of scopes share one request; a fresh token is served from memory", async () => {
    const w = world();
    const [a, b] = await Promise.all([
      w.tokens.get({ scopes: ["api://x/.default"] }),
      w.tokens.get({ scopes: ["API://X/.default"] }),
    ]);
    expect(a.accessToken).toBe(b.accessToken);
    await w.tokens.get({ scopes: ["api://x/.default"] });
    expect(w.calls).toHaveLength(1);
    // Within 5 min of its expiry it is renewed, with a refresh (the engine's cache would hand back the old one).
    w.clock.advance(56 * 60_000);
    await w.tokens.get({ scopes: ["api://x/.default"] });
    expect(w.calls).toHaveLength(2);
    expect(w.calls[1]?.forceRefresh).toBe(true);
  });

  it("forced refreshes of one set of scopes at most every 30 s (a receiver that refuses every token)", async () => {
    const w = world();
    await w.tokens.get({ scopes: ["api://x/.default"] });
    await w.tokens.get({ scopes: ["api://x/.default"], forceRefresh: true });
    await w.tokens.get({ scopes: ["api://x/.default"], forceRefresh: true });
    expect(w.calls).toHaveLength(1);
    w.clock.advance(31_000);
    await w.tokens.get({ scopes: ["api://x/.default"], forceRefresh: true });
    expect(w.calls).toHaveLength(2);
  });

  it("only a refusal of the profile's own scopes means the sign-in is lost", async () => {
    const w = world((scopes) => scopes.includes("api://needs-mfa/.default"));
    await expect(w.tokens.get({ scopes: ["api://needs-mfa/.default"] })).rejects.toMatchObject({
      code: "E_SIGN_IN_REQUIRED",
    });
    expect(w.lost()).toBe(0);
    const own = world((scopes) => scopes.includes("https://graph.microsoft.com/.default"));
    await expect(own.tokens.result({})).rejects.toMatchObject({ code: "E_SIGN_IN_REQUIRED" });
    expect(own.lost()).toBe(1);
  });

  it("a caller that gives up does not cancel the request for the others", async () => {
    const w = world();
    const controller = new AbortController();
    const first = w.tokens.get({ scopes: ["api://x/.default"], signal: controller.signal });
    const second = w.tokens.get({ scopes: ["api://x/.default"] });
    controller.abort();
    await expect(first).rejects.toMatchObject({ code: "E_CANCELLED" });
    await expect(second).resolves.toMatchObject({ accessToken: "token-1" });
  });
});
