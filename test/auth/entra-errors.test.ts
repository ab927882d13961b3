import { describe, expect, test } from "vitest";
import { classifyTokenError } from "../../agent/auth/entra-errors.ts";
import { ExitCode } from "../../agent/core/errors.ts";
import { parseRetryAfter } from "../../agent/core/http.ts";

describe("classifyTokenError branches on error and error_codes, never on text", () => {
  test.each([
    [
      { error: "authorization_declined", error_codes: [70000] },
      "device-code",
      "E_DECLINED",
      ExitCode.declined,
    ],
    [{ error: "access_denied" }, "device-code", "E_DECLINED", ExitCode.declined],
    [{ error: "expired_token", error_codes: [70019] }, "device-code", "E_EXPIRED", ExitCode.expired],
    [{ error: "bad_verification_code" }, "device-code", "E_BAD_CODE", ExitCode.badCode],
    [{ error: "invalid_grant", error_codes: [53003] }, "device-code", "E_POLICY_BLOCKED", ExitCode.policy],
    [{ error: "invalid_grant", error_codes: [530032] }, "refresh", "E_POLICY_BLOCKED", ExitCode.policy],
    [
      { error: "invalid_client", error_codes: [7000218] },
      "device-code",
      "E_NOT_PUBLIC_CLIENT",
      ExitCode.appRegistration,
    ],
    [
      { error: "invalid_grant", error_codes: [65001], suberror: "consent_required" },
      "device-code",
      "E_CONSENT_REQUIRED",
      ExitCode.appRegistration,
    ],
    [
      { error: "unauthorized_client", error_codes: [700016] },
      "device-code",
      "E_APP_REGISTRATION",
      ExitCode.appRegistration,
    ],
    [
      { error: "invalid_grant", error_codes: [700082] },
      "refresh",
      "E_SIGN_IN_REQUIRED",
      ExitCode.signInRequired,
    ],
    [
      { error: "invalid_grant", error_codes: [50173] },
      "refresh",
      "E_SIGN_IN_REQUIRED",
      ExitCode.signInRequired,
    ],
    [
      { error: "invalid_grant", error_codes: [70008] },
      "refresh",
      "E_SIGN_IN_REQUIRED",
      ExitCode.signInRequired,
    ],
    [{ error: "invalid_grant", error_codes: [50196] }, "device-code", "E_THROTTLED", ExitCode.idp],
    [{ error: "temporarily_unavailable" }, "refresh", "E_NETWORK", ExitCode.network],
    [{ error: "something_new" }, "refresh", "E_IDP", ExitCode.idp],
  ] as const)("%j (%s) → %s", (body, phase, code, exit) => {
    const error = classifyTokenError(body, phase);
    expect(error.code).toBe(code);
    expect(error.exitCode).toBe(exit);
    expect(error.message).not.toMatch(/\n/);
  });

  test("the description text does not change the outcome", () => {
    const a = classifyTokenError(
      { error: "invalid_grant", error_codes: [53003], error_description: "AADSTS53003: x" },
      "refresh",
    );
    const b = classifyTokenError(
      { error: "invalid_grant", error_codes: [53003], error_description: "reworded" },
      "refresh",
    );
    expect(a.code).toBe(b.code);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.UTC(2026, 0, 1);
  test("seconds", () => expect(parseRetryAfter("7", now)).toBe(7000));
  test("an HTTP date", () => expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000));
  test("absent or garbage", () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
  });
});

describe("recognising our errors", () => {
  test("by their brand, so that an error made in another embedded entrypoint still counts", async () => {
    const { isEntraToolError, toEntraToolError, EntraToolError } = await import("../../agent/core/errors.ts");
    // What a second copy of the class (another bundle) produces: same registered brand, other class.
    const foreign = Object.assign(new Error("Bad flag."), {
      [Symbol.for("entratool.EntraToolError")]: true,
      code: "E_USAGE",
      exitCode: 2,
    });
    expect(foreign instanceof EntraToolError).toBe(false);
    expect(isEntraToolError(foreign)).toBe(true);
    expect(isEntraToolError(foreign, "E_USAGE")).toBe(true);
    expect(toEntraToolError(foreign)).toBe(foreign);
    expect(isEntraToolError(new Error("plain"))).toBe(false);
    expect(toEntraToolError(new Error("plain")).code).toBe("E_INTERNAL");
  });
});
