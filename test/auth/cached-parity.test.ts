import { describe, expect, it } from "vitest";
import type { TokenStore } from "../../agent/store/types.ts";
import { SECOND, StateLog, worldPerTest } from "./world.ts";

const start = worldPerTest();

/** The same store, minus the read-only look: every call goes through msal-node. */
function msalOnly(store: TokenStore): TokenStore {
  return {
    cachePlugin: (profile) => store.cachePlugin(profile),
    remove: (profile) => store.remove(profile),
    readCache: async () => undefined,
    hasUnsaved: (profile) => store.hasUnsaved(profile),
    flush: (profile) => store.flush(profile),
  };
}

describe("the cached-token fast path agrees with msal-node", () => {
  it("serves the token msal-node's acquireTokenSilent serves, with no request either way", async () => {
    const w = await start({ accessTokenLifetime: 3600 });
    const log = new StateLog().on((state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    });
    await w.service().getToken(w.profile(), { onState: log.onState });
    w.clock.advance(10 * 60 * SECOND);
    const before = w.emulator.requests().length;

    const fast = await w.service().getToken(w.profile());
    const states = new StateLog();
    const viaMsal = await w
      .service({ tokenStore: msalOnly(w.tokenStore()) })
      .getToken(w.profile(), { onState: states.onState });

    expect(fast).toEqual(viaMsal);
    // msal-node's own cache hit redeems nothing: no "refreshing".
    expect(states.kinds()).toEqual(["starting", "signed-in"]);
    expect(fast.fromCache).toBe(true);
    expect(w.emulator.requests()).toHaveLength(before);
  });

  it("leaves a token inside msal-node's 5-minute renewal margin to msal-node, which refreshes it", async () => {
    const w = await start({ accessTokenLifetime: 3600 });
    const log = new StateLog().on((state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    });
    const first = await w.service().getToken(w.profile(), { onState: log.onState });
    w.clock.advance(first.expiresAt - w.clock.now() - 4 * 60 * SECOND);

    const renewed = await w.service().getToken(w.profile());

    expect(renewed.fromCache).toBe(false);
    expect(renewed.accessToken).not.toBe(first.accessToken);
    expect(w.requestKinds().at(-1)).toBe("refresh_token");
  });
});
