import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SignInSessionOptions } from "../../agent/auth/session.ts";
import { SignInSession } from "../../agent/auth/session.ts";
import type { SessionState } from "../../agent/auth/session-state.ts";
import { EntraToolError } from "../../agent/core/errors.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { rejection, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();

/** A session of the world's default profile, on the real engine against the emulator. */
function session(w: World, options: Partial<SignInSessionOptions> = {}): SignInSession {
  return new SignInSession({
    profile: w.profile(),
    engine: w.service(),
    tokenStore: w.tokenStore(),
    locks: new FlockLockManager({ locksDir: join(w.stateDir, "locks"), clock: w.clock, logger: w.logger }),
    clock: w.clock,
    logger: w.logger,
    ...options,
  });
}

/** Every state a subscriber sees, and a hook to act on them. */
function watch(s: SignInSession, react: (state: SessionState) => void = () => undefined): SessionState[] {
  const seen: SessionState[] = [];
  s.subscribe((state) => {
    seen.push(state);
    react(state);
  });
  return seen;
}

const kinds = (states: readonly SessionState[]): string[] => states.map((state) => state.kind);

/** A profile bound to the accounts of contoso.example. */
const CONTOSO_ONLY = { users: ["@contoso.example"] };

describe("SignInSession", () => {
  it("delivers the current state first, then every change, to every subscriber", async () => {
    const w = await start();
    const s = session(w);
    const first = watch(s, (state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    });
    expect(first).toEqual([{ kind: "idle", profile: "default" }]);
    const result = await s.getToken();
    expect(result.account.username).toBe("pi@contoso.example");
    expect(kinds(first)).toEqual(["idle", "starting", "code-issued", "signed-in"]);
    // A late subscriber starts with where things stand.
    const late = watch(s);
    expect(late).toEqual([s.state]);
    expect(s.state).toMatchObject({ kind: "signed-in", username: "pi@contoso.example" });
  });

  it("states are plain data: they survive JSON unchanged, errors included", async () => {
    const w = await start();
    const s = session(w);
    const seen = watch(s, (state) => {
      if (state.kind === "code-issued")
        w.emulator.approve({ userCode: state.userCode, outcome: "policy_blocked" });
    });
    const error = await rejection(s.getToken());
    expect(error.code).toBe("E_POLICY_BLOCKED");
    for (const state of seen) expect(JSON.parse(JSON.stringify(state))).toEqual(state);
    expect(s.state).toEqual({
      kind: "blocked-by-policy",
      profile: "default",
      error: { code: "E_POLICY_BLOCKED", message: error.message },
    });
  });

  it("newCode() replaces the code on the screens within the same call, without a 'cancelled' in between", async () => {
    const w = await start();
    const s = session(w);
    const codes: string[] = [];
    const seen = watch(s, (state) => {
      if (state.kind !== "code-issued") return;
      codes.push(state.userCode);
      if (codes.length === 1) queueMicrotask(() => expect(s.newCode()).toBe(true));
      else w.emulator.approve({ userCode: state.userCode });
    });
    const result = await s.getToken();
    expect(result.fromCache).toBe(false);
    expect(codes).toHaveLength(2);
    expect(codes[0]).not.toBe(codes[1]);
    expect(kinds(seen)).toEqual([
      "idle",
      "starting",
      "code-issued",
      "sign-in-required",
      "starting",
      "code-issued",
      "signed-in",
    ]);
    expect(seen[3]).toMatchObject({ reason: { code: "E_NEW_CODE" } });
  });

  it("newCode() without a code on the screens changes nothing", async () => {
    const w = await start();
    const s = session(w);
    expect(s.newCode()).toBe(false);
    watch(s, (state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    });
    await s.getToken();
    expect(s.newCode()).toBe(false);
    expect(s.state.kind).toBe("signed-in");
  });

  it("the button: a short press is a new code, a long press signs out and ends the call", async () => {
    const w = await start();
    const s = session(w);
    watch(s, (state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    });
    await s.getToken();
    expect(await w.storedCache()).not.toBe("");
    // Signed in, with a refresh token: force a refresh so that a call is in progress, then sign out.
    const pressed = s.getToken({ forceRefresh: true });
    s.press("sign-out");
    const error = await rejection(pressed).catch(() => undefined);
    // The refresh may have finished before the press: either way the tokens end up removed.
    if (error) expect(error.code).toBe("E_SIGNED_OUT");
    await until(() => s.state.kind === "signed-out");
    expect(await w.storedCache()).toBe("");
  });

  it("signOut() during a code removes the tokens and ends the call with E_SIGNED_OUT (exit 9)", async () => {
    const w = await start();
    const s = session(w);
    let signedOut: Promise<void> | undefined;
    const seen = watch(s, (state) => {
      if (state.kind === "code-issued") signedOut = s.signOut();
    });
    const error = await rejection(s.getToken());
    expect(error.code).toBe("E_SIGNED_OUT");
    expect(error.exitCode).toBe(9);
    await signedOut;
    expect(kinds(seen).slice(-2)).toEqual(["code-issued", "signed-out"]);
    expect(await w.storedCache()).toBe("");
  });

  it("cancel() ends the call with E_CANCELLED and takes the code off the screens", async () => {
    const w = await start();
    const s = session(w);
    const seen = watch(s, (state) => {
      if (state.kind === "code-issued") queueMicrotask(() => s.cancel());
    });
    const error = await rejection(s.getToken());
    expect(error.code).toBe("E_CANCELLED");
    expect(seen.at(-1)?.kind).toBe("cancelled");
  });

  it("calls run one after another: a second caller gets the first one's sign-in from the cache", async () => {
    const w = await start();
    const s = session(w);
    watch(s, (state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    });
    const [a, b] = await Promise.all([s.getToken(), s.getToken()]);
    expect(a.fromCache).toBe(false);
    expect(b.fromCache).toBe(true);
    expect(w.requestKinds().filter((kind) => kind === "devicecode")).toHaveLength(1);
  });

  it("a caller cancelled while waiting for its turn leaves at once, and never runs later", async () => {
    const w = await start();
    const s = session(w);
    let approve: (() => void) | undefined;
    const seen = watch(s, (state) => {
      if (state.kind === "code-issued") approve = () => w.emulator.approve({ userCode: state.userCode });
    });
    const first = s.getToken();
    const controller = new AbortController();
    const second = s.getToken({ signal: controller.signal });
    controller.abort();
    expect((await rejection(second)).code).toBe("E_CANCELLED");
    await until(() => approve !== undefined);
    approve?.();
    expect((await first).fromCache).toBe(false);
    // Its turn came and went: nothing ran (the engine once for the first call, once for this one).
    await s.getToken();
    expect(kinds(seen)).toEqual(["idle", "starting", "code-issued", "signed-in", "starting", "signed-in"]);
  });

  it("a cancel right after a sign-out does not stop the sign-out", async () => {
    const w = await start();
    const s = session(w);
    let signedOut: Promise<void> | undefined;
    watch(s, (state) => {
      if (state.kind === "code-issued") {
        signedOut = s.signOut();
        s.cancel();
      }
    });
    expect((await rejection(s.getToken())).code).toBe("E_SIGNED_OUT");
    await signedOut;
    expect(s.state.kind).toBe("signed-out");
  });

  it("a sign-out right after a new code wins: no new code, the tokens go", async () => {
    const w = await start();
    const s = session(w);
    let codes = 0;
    let signedOut: Promise<void> | undefined;
    watch(s, (state) => {
      if (state.kind !== "code-issued") return;
      codes += 1;
      expect(s.newCode()).toBe(true);
      signedOut = s.signOut();
    });
    expect((await rejection(s.getToken())).code).toBe("E_SIGNED_OUT");
    await signedOut;
    expect(codes).toBe(1);
    expect(s.state.kind).toBe("signed-out");
  });
});

describe("account binding", () => {
  it("a sign-in by an account the profile does not accept is undone at once, then a new code follows", async () => {
    const w = await start();
    const s = session(w, { profile: w.profile({ expect: CONTOSO_ONLY }), wrongAccountDelayMs: 20_000 });
    let codes = 0;
    const seen = watch(s, (state) => {
      if (state.kind !== "code-issued") return;
      codes += 1;
      // The person at the phone first uses the wrong account, then the right one.
      const username = codes === 1 ? "guest@fabrikam.example" : "pi@contoso.example";
      w.emulator.approve({ userCode: state.userCode, username });
    });
    const result = await s.getToken();
    expect(result.account.username).toBe("pi@contoso.example");
    expect(codes).toBe(2);
    const wrong = seen.find((state) => state.kind === "wrong-account");
    expect(wrong).toMatchObject({
      kind: "wrong-account",
      username: "guest@fabrikam.example",
      expected: "anyone @contoso.example",
    });
    // The wrong account was never shown as signed in.
    const signedIn = seen.filter((state) => state.kind === "signed-in");
    expect(signedIn).toHaveLength(1);
    expect(signedIn[0]).toMatchObject({ username: "pi@contoso.example" });
    // The next code came after the delay on the injected clock, not at once.
    const at = seen.indexOf(wrong as SessionState);
    expect(kinds(seen.slice(at))).toEqual(["wrong-account", "starting", "code-issued", "signed-in"]);
    expect(w.clock.sleeps).toContain(20_000);
    // Only the right account's tokens are on disk.
    const stored = await w.storedCache();
    expect(stored).toContain("pi@contoso.example");
    expect(stored).not.toContain("fabrikam");
  });

  it("the tokens of the wrong account are gone from disk before the screens say so", async () => {
    const w = await start();
    const s = session(w, { profile: w.profile({ expect: CONTOSO_ONLY }) });
    let storedAtWrongAccount: string | undefined;
    let cancelled = false;
    watch(s, (state) => {
      if (state.kind === "code-issued" && !cancelled) {
        w.emulator.approve({ userCode: state.userCode, username: "guest@fabrikam.example" });
      }
      if (state.kind === "wrong-account") {
        cancelled = true;
        void w.storedCache().then((stored) => {
          storedAtWrongAccount = stored;
          s.cancel();
        });
      }
    });
    expect((await rejection(s.getToken())).code).toBe("E_CANCELLED");
    expect(storedAtWrongAccount).toBe("");
    expect(s.state.kind).toBe("cancelled");
  });

  it("a sign-out asked for while a wrong account's tokens are being removed learns that the removal failed", async () => {
    const w = await start();
    const tokens = w.tokenStore();
    let removing: (() => void) | undefined;
    const failing = {
      remove: (profile: string): Promise<boolean> =>
        new Promise<boolean>((_resolve, reject) => {
          removing = () => reject(new EntraToolError("E_STORE", { message: `Cannot remove ${profile}.` }));
        }),
    };
    const s = session(w, { profile: w.profile({ expect: CONTOSO_ONLY }), tokenStore: failing });
    watch(s, (state) => {
      if (state.kind === "code-issued")
        w.emulator.approve({ userCode: state.userCode, username: "guest@fabrikam.example" });
    });
    const call = s.getToken();
    await until(() => removing !== undefined);
    const signedOut = s.signOut();
    removing?.();
    expect((await rejection(call)).code).toBe("E_STORE");
    expect((await rejection(signedOut)).code).toBe("E_STORE");
    // The test's own store still holds what the failing one could not remove.
    expect(await tokens.readCache("default")).toBeDefined();
  });

  it("a button press skips the wait after a wrong account", async () => {
    const w = await start();
    w.clock.passiveSleepsFromMs = 10_000;
    const s = session(w, { profile: w.profile({ expect: CONTOSO_ONLY }), wrongAccountDelayMs: 60_000 });
    let codes = 0;
    watch(s, (state) => {
      if (state.kind === "code-issued") {
        codes += 1;
        const username = codes === 1 ? "guest@fabrikam.example" : "pi@contoso.example";
        w.emulator.approve({ userCode: state.userCode, username });
      }
      if (state.kind === "wrong-account") queueMicrotask(() => expect(s.newCode()).toBe(true));
    });
    const before = w.clock.now();
    const result = await s.getToken();
    expect(result.account.username).toBe("pi@contoso.example");
    // The 60 s wait never ran its course.
    expect(w.clock.now() - before).toBeLessThan(60_000);
  });

  it("a cached token of an account the profile no longer accepts is removed; a call that may not show a code ends with E_WRONG_ACCOUNT", async () => {
    const w = await start();
    const signIn = session(w);
    watch(signIn, (state) => {
      if (state.kind === "code-issued")
        w.emulator.approve({ userCode: state.userCode, username: "guest@fabrikam.example" });
    });
    await signIn.getToken();
    // The profile now expects contoso: a silent call must not hand out fabrikam's token.
    const strict = session(w, { profile: w.profile({ expect: CONTOSO_ONLY }) });
    const error = await rejection(strict.getToken({ allowDeviceCode: false }));
    expect(error.code).toBe("E_WRONG_ACCOUNT");
    expect(error.exitCode).toBe(9);
    expect(error.message).toContain("guest@fabrikam.example");
    expect(await w.storedCache()).toBe("");
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let turns = 0; !condition(); turns++) {
    if (turns > 100_000) throw new Error("condition never held");
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
