import { describe, expect, test } from "vitest";
import type { CodeInfo, SessionState as SignInState } from "../../agent/auth/session-state.ts";
import { EntraToolError } from "../../agent/core/errors.ts";
import { SCREEN_KINDS, screenFor, showsCode } from "../../display/screens.ts";

const code: CodeInfo = {
  userCode: "ABCD-EFGH",
  verificationUri: "https://microsoft.com/devicelogin",
  message: "To sign in, use a web browser…",
  expiresAt: 1_000_000,
  intervalSeconds: 5,
  qrPayload: "https://microsoft.com/devicelogin",
};

describe("screens from sign-in states", () => {
  test("the code screen carries the code and URL exactly as issued, and the QR payload", () => {
    const screen = screenFor({ kind: "code-issued", profile: "p", ...code });
    expect(screen).toEqual({
      kind: "code",
      userCode: "ABCD-EFGH",
      verificationUri: "https://microsoft.com/devicelogin",
      expiresAt: 1_000_000,
      qrPayload: "https://microsoft.com/devicelogin",
      message: "To sign in, use a web browser…",
    });
    expect(screen && showsCode(screen)).toBe(true);
  });

  test.each([
    [{ type: "pending" }, undefined],
    [{ type: "slow-down", intervalSeconds: 10 }, "slowed to 10 s"],
    [{ type: "retry", reason: "HTTP 503", delayMs: 5000 }, "retrying"],
  ] as const)("waiting after %j notes %j", (poll, note) => {
    const screen = screenFor({ kind: "waiting", profile: "p", poll, ...code });
    expect(screen).toMatchObject({ kind: "waiting", userCode: "ABCD-EFGH" });
    expect(screen && "note" in screen ? screen.note : undefined).toBe(note);
  });

  test("every state after the code takes the code off the screen", () => {
    const error = new EntraToolError("E_POLICY_BLOCKED");
    const after: SignInState[] = [
      { kind: "signed-in", profile: "p", username: "u", tenantId: "t", expiresAt: 1, fromCache: false },
      { kind: "cancelled", profile: "p" },
      { kind: "expired", profile: "p" },
      { kind: "blocked-by-policy", profile: "p", error },
      { kind: "offline", profile: "p", error: new EntraToolError("E_NETWORK") },
      { kind: "error", profile: "p", error: new EntraToolError("E_IDP") },
      { kind: "sign-in-required", profile: "p", reason: new EntraToolError("E_SIGN_IN_REQUIRED") },
    ];
    for (const state of after) {
      const screen = screenFor(state);
      expect(screen, state.kind).toBeDefined();
      if (screen) expect(showsCode(screen), state.kind).toBe(false);
    }
    expect(screenFor({ kind: "blocked-by-policy", profile: "p", error })).toEqual({
      kind: "blocked",
      message: error.message,
    });
  });

  test("waiting for another process's lock says so; a refresh changes nothing on screen", () => {
    expect(screenFor({ kind: "waiting-for-lock", profile: "p" })).toEqual({
      kind: "waiting-for-lock",
      profile: "p",
    });
    expect(screenFor({ kind: "refreshing", profile: "p" })).toBeUndefined();
    expect(screenFor({ kind: "idle", profile: "p" })).toBeUndefined();
  });

  test("a sign-in by the wrong account says who signed in and who is expected, without a code", () => {
    const screen = screenFor({
      kind: "wrong-account",
      profile: "p",
      username: "guest@fabrikam.com",
      tenantId: "t",
      expected: "@contoso.com",
      nextCodeAt: 5,
    });
    expect(screen).toEqual({
      kind: "wrong-account",
      username: "guest@fabrikam.com",
      expected: "@contoso.com",
    });
    expect(screen && showsCode(screen)).toBe(false);
  });

  test("the list of kinds covers every screen the states produce", () => {
    const kinds = new Set(SCREEN_KINDS);
    expect(kinds.size).toBe(SCREEN_KINDS.length);
    expect(kinds.has("code") && kinds.has("waiting-for-time") && kinds.has("error")).toBe(true);
  });
});
