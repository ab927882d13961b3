import { describe, expect, test } from "vitest";
import { type CachedTokenQuery, findCachedAccessToken } from "../../agent/auth/cached-token.ts";

const TENANT = "5e2a8f4c-3b1d-4e6a-8f7c-9d0b2a4c6e81";
const CLIENT = "11111111-2222-3333-4444-555555555555";
const HOME = `4a1c9e2b-7d3f-4b8a-9c6e-2f5d8b1a0e73.${TENANT}`;
const ENV = "login.microsoftonline.com";
const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const S = NOW / 1000;

function account(home = HOME, username = "pi@contoso.example") {
  return { home_account_id: home, environment: ENV, realm: TENANT, username, authority_type: "MSSTS" };
}

function accessToken(overrides: Record<string, string> = {}) {
  return {
    home_account_id: HOME,
    environment: ENV,
    credential_type: "AccessToken",
    client_id: CLIENT,
    secret: "AT-SECRET",
    realm: TENANT,
    target: "User.Read openid profile",
    cached_at: String(S - 60),
    expires_on: String(S + 3600),
    extended_expires_on: String(S + 7200),
    token_type: "Bearer",
    ...overrides,
  };
}

/** The shape msal-node 7 serialises (as read back from a real cache written against the emulator). */
function cache(tokens: object[], accounts: object[] = [account()]): string {
  return JSON.stringify({
    Account: Object.fromEntries(accounts.map((a, i) => [`account-${i}`, a])),
    IdToken: {},
    AccessToken: Object.fromEntries(tokens.map((t, i) => [`at-${i}`, t])),
    RefreshToken: { rt: { credential_type: "RefreshToken", secret: "RT-SECRET", client_id: CLIENT } },
    AppMetadata: {},
  });
}

const query = (overrides: Partial<CachedTokenQuery> = {}): CachedTokenQuery => ({
  clientId: CLIENT,
  authorityHost: `https://${ENV}`,
  tenantId: TENANT,
  scopes: ["User.Read"],
  now: NOW,
  ...overrides,
});

describe("findCachedAccessToken: what MSAL would serve from cache without a request", () => {
  test("a valid token, with its account and resource scopes", () => {
    const found = findCachedAccessToken(cache([accessToken()]), query());
    expect(found).toEqual({
      accessToken: "AT-SECRET",
      tokenType: "Bearer",
      expiresAt: (S + 3600) * 1000,
      scopes: ["User.Read"],
      username: "pi@contoso.example",
      tenantId: TENANT,
      homeAccountId: HOME,
    });
  });

  test("scopes match without regard to case, and OpenID scopes are not required of the token", () => {
    expect(
      findCachedAccessToken(cache([accessToken()]), query({ scopes: ["user.read", "openid"] })),
    ).toBeDefined();
  });

  test("a scope the token was not granted means a request is needed", () => {
    expect(findCachedAccessToken(cache([accessToken()]), query({ scopes: ["Mail.Read"] }))).toBeUndefined();
  });

  test("a token within MSAL's 5-minute renewal margin, or past refresh_on, is left to MSAL", () => {
    expect(
      findCachedAccessToken(cache([accessToken({ expires_on: String(S + 299) })]), query()),
    ).toBeUndefined();
    expect(
      findCachedAccessToken(cache([accessToken({ expires_on: String(S + 301) })]), query()),
    ).toBeDefined();
    expect(
      findCachedAccessToken(cache([accessToken({ refresh_on: String(S - 1) })]), query()),
    ).toBeUndefined();
  });

  test.each([
    ["another client", { clientId: "22222222-2222-3333-4444-555555555555" }],
    ["another cloud", { authorityHost: "https://login.microsoftonline.us" }],
    ["another tenant GUID", { tenantId: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" }],
  ])("no token for %s", (_name, overrides) => {
    expect(findCachedAccessToken(cache([accessToken()]), query(overrides))).toBeUndefined();
  });

  test("a tenant alias or domain accepts the account's own tenant", () => {
    expect(findCachedAccessToken(cache([accessToken()]), query({ tenantId: "organizations" }))).toBeDefined();
    expect(
      findCachedAccessToken(cache([accessToken()]), query({ tenantId: "contoso.onmicrosoft.com" })),
    ).toBeDefined();
  });

  test("proof-of-possession tokens and tokens of another account are not served", () => {
    expect(findCachedAccessToken(cache([accessToken({ token_type: "pop" })]), query())).toBeUndefined();
    expect(
      findCachedAccessToken(cache([accessToken({ home_account_id: "other.x" })]), query()),
    ).toBeUndefined();
  });

  test("with more than one account MSAL decides", () => {
    const two = cache([accessToken()], [account(), account("other.x", "someone@contoso.example")]);
    expect(findCachedAccessToken(two, query())).toBeUndefined();
  });

  test("the longest-lived of several matching tokens", () => {
    const found = findCachedAccessToken(
      cache([accessToken(), accessToken({ secret: "AT-LATER", expires_on: String(S + 5000) })]),
      query(),
    );
    expect(found?.accessToken).toBe("AT-LATER");
  });

  test("an unreadable cache finds nothing rather than throwing", () => {
    expect(findCachedAccessToken("{not json", query())).toBeUndefined();
    expect(findCachedAccessToken("[]", query())).toBeUndefined();
    expect(findCachedAccessToken(JSON.stringify({ Account: 5, AccessToken: null }), query())).toBeUndefined();
  });
});
