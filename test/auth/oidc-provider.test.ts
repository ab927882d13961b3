/**
 * The sign-in engine against a certified OpenID provider that is not Entra (oidc-provider, see
 * ./oidc-idp.ts): discovery, RFC 8628's grant type, no `interval` and no `message` in the device
 * authorization response, `verification_uri_complete`, refresh token rotation and revocation.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { SignInService, SignInState, TokenResult } from "../../agent/auth/signin.ts";
import type { Profile } from "../../agent/store/types.ts";
import { IDP_ACCOUNT, IDP_CLIENT_ID, IDP_SCOPE, OidcIdp } from "./oidc-idp.ts";
import { SECOND, StateLog, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();
const TENANT = "6f1c2b0e-3a4d-4e5f-8a9b-0c1d2e3f4a5b";
const URN = "urn:ietf:params:oauth:grant-type:device_code";
let idp: OidcIdp | undefined;

afterEach(async () => {
  await idp?.stop();
  idp = undefined;
});

async function setUp(options: { layout?: "v2" | "plain" } = {}): Promise<{ w: World; idp: OidcIdp }> {
  const w = await start();
  idp = await OidcIdp.start({ tlsDir: w.tlsDir, clock: w.clock, ...options });
  return { w, idp };
}

function profileFor(w: World, provider: OidcIdp, tenantId = TENANT): Profile {
  return w.profile({
    authorityHost: provider.authorityHost,
    tenantId,
    clientId: IDP_CLIENT_ID,
    scopes: [IDP_SCOPE],
  });
}

/**
 * A state log that approves the code through the provider's pages once `pendingPolls` polls were
 * answered authorization_pending, opening the QR code's URL as a phone would. Time stands still
 * while the approval's requests run (they take real time; the polls run on virtual time).
 */
function approvingAfter(w: World, provider: OidcIdp, pendingPolls: number): StateLog {
  let pending = 0;
  const log = new StateLog();
  return log.on((state: SignInState) => {
    if (state.kind !== "waiting" || state.poll.type !== "pending" || ++pending !== pendingPolls) return;
    w.clock.hold();
    provider.approve(state.qrPayload).then(
      () => w.clock.release(),
      (error: unknown) => {
        log.states.push({
          kind: "error",
          profile: "approval",
          error: { code: "TEST", message: String(error) },
        });
        w.clock.release();
      },
    );
  });
}

async function signIn(
  w: World,
  provider: OidcIdp,
  service: SignInService,
  profile: Profile,
  pendingPolls = 1,
): Promise<{ result: TokenResult; log: StateLog }> {
  const log = approvingAfter(w, provider, pendingPolls);
  const result = await service.getToken(profile, { onState: log.onState });
  return { result, log };
}

describe("device code sign-in against oidc-provider", () => {
  it("discovers the endpoints, shows the complete URI as the QR code, polls every 5 s with the RFC's grant type", async () => {
    const { w, idp } = await setUp();
    const profile = profileFor(w, idp);
    const issuedAt = w.clock.now();
    const { result, log } = await signIn(w, idp, w.service(), profile, 3);

    const issued = log.codeIssued();
    const issuer = idp.issuerFor(TENANT);
    expect(issued.verificationUri).toBe(`${issuer}/device`);
    expect(issued.userCode).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    // RFC 8628 §3.3.1: the URI with the code in it is what the QR code carries.
    expect(issued.verificationUriComplete).toBe(`${issuer}/device?user_code=${issued.userCode}`);
    expect(issued.qrPayload).toBe(issued.verificationUriComplete);
    // oidc-provider sends no message: the prompt's sentence is built from the URI and the code.
    expect(issued.message).toBe(
      `To sign in, use a web browser to open the page ${issuer}/device and enter the code ${issued.userCode} to authenticate.`,
    );
    // No `interval` either: RFC 8628's 5 s.
    expect(issued.intervalSeconds).toBe(5);
    expect(issued.expiresAt).toBe(issuedAt + 600 * SECOND);
    expect(log.kinds().filter((kind) => kind !== "waiting")).toEqual([
      "starting",
      "code-issued",
      "signed-in",
    ]);
    expect(log.kinds().filter((kind) => kind === "error")).toEqual([]);

    // Three polls answered authorization_pending, then the tokens: four in all, 5 s apart on the
    // injected clock (counted from the code), each with RFC 8628's grant type.
    const [authorization] = idp.events.filter((event) => event.kind === "device_authorization");
    const polls = idp.polls();
    expect(polls.map((poll) => [poll.kind, poll.error])).toEqual([
      ["grant.error", "authorization_pending"],
      ["grant.error", "authorization_pending"],
      ["grant.error", "authorization_pending"],
      ["grant.success", undefined],
    ]);
    const times = [authorization?.at ?? 0, ...polls.map((poll) => poll.at)];
    expect(times.slice(1).map((at, i) => at - (times[i] ?? 0))).toEqual([5, 5, 5, 5].map((s) => s * SECOND));
    expect(polls.every((poll) => poll.grantType === URN)).toBe(true);

    // Discovery at Entra's place (where this provider's issuer is), the device authorization
    // endpoint it names; nothing at msal-node's guessed /devicecode.
    const base = `/${TENANT}/v2.0`;
    // (The rest are the approval's: the provider's pages and interactions.)
    const fromEntratool = (line: string): boolean =>
      line.includes("/.well-known/") || line.endsWith("/device/auth") || line.endsWith("/token");
    expect(idp.requests.filter(fromEntratool)).toEqual([
      `GET ${base}/.well-known/openid-configuration`,
      `POST ${base}/device/auth`,
      ...Array.from({ length: 4 }, () => `POST ${base}/token`),
    ]);

    expect(result).toMatchObject({
      fromCache: false,
      tokenType: "Bearer",
      scopes: [IDP_SCOPE],
      account: { username: IDP_ACCOUNT.preferred_username, tenantId: TENANT },
    });
    expect(result.expiresAt).toBeGreaterThan(w.clock.now() + 3500 * SECOND);
  });

  it("serves the token from the cache afterwards without a request and without msal-node", async () => {
    const { w, idp } = await setUp();
    const profile = profileFor(w, idp);
    const { result } = await signIn(w, idp, w.service(), profile);
    const requests = idp.requests.length;
    let msalLoads = 0;
    const fresh = w.service({
      loadMsal: () => {
        msalLoads += 1;
        return import("../../agent/auth/msal.ts");
      },
    });
    const log = new StateLog();
    const cached = await fresh.getToken(profile, { onState: log.onState });
    expect(cached).toEqual({ ...result, fromCache: true });
    expect(log.kinds()).toEqual(["starting", "signed-in"]);
    expect(idp.requests).toHaveLength(requests);
    expect(msalLoads).toBe(0);
  });

  it("refreshes on --force-refresh, rotating the refresh token, with no discovery request", async () => {
    const { w, idp } = await setUp();
    const profile = profileFor(w, idp);
    const { result: first } = await signIn(w, idp, w.service(), profile);
    expect(idp.refreshTokens).toHaveLength(1);
    const requests = idp.requests.length;

    const log = new StateLog();
    const refreshed = await w.service().getToken(profile, { forceRefresh: true, onState: log.onState });

    expect(refreshed.fromCache).toBe(false);
    expect(refreshed.accessToken).not.toBe(first.accessToken);
    expect(log.kinds()).toEqual(["starting", "refreshing", "signed-in"]);
    // The OpenID configuration came from the state directory: one request, the refresh.
    expect(idp.requests.slice(requests)).toEqual([`POST /${TENANT}/v2.0/token`]);
    expect(idp.events.at(-1)).toMatchObject({ kind: "grant.success", grantType: "refresh_token" });
    const [old, current] = idp.refreshTokens;
    expect(idp.refreshTokens).toHaveLength(2);
    const stored = await w.storedCache();
    expect(stored).toContain(current);
    expect(stored).not.toContain(old);
  });

  it("signs in again with a new code when the provider answers invalid_grant to the refresh", async () => {
    const { w, idp } = await setUp();
    const profile = profileFor(w, idp);
    await signIn(w, idp, w.service(), profile);
    expect(await idp.revokeGrants()).toBe(1);
    w.clock.advance(3600 * SECOND);

    const { result, log } = await signIn(w, idp, w.service(), profile);

    expect(result.fromCache).toBe(false);
    expect(log.kinds().filter((kind) => kind !== "waiting")).toEqual([
      "starting",
      "refreshing",
      "sign-in-required",
      "code-issued",
      "signed-in",
    ]);
    const refresh = idp.events.find((event) => event.grantType === "refresh_token");
    expect(refresh).toMatchObject({ kind: "grant.error", error: "invalid_grant" });
    expect(idp.events.filter((event) => event.kind === "device_authorization")).toHaveLength(2);
  });

  it("works for a tenant whose name starts with 'token' (msal-node's own device code URL would be wrong)", async () => {
    const { w, idp } = await setUp();
    const tenant = "tokens.example.com";
    const profile = profileFor(w, idp, tenant);
    const { result } = await signIn(w, idp, w.service(), profile);
    expect(result.account.tenantId).toBe(tenant);
    expect(idp.requests).toContain(`POST /${tenant}/v2.0/device/auth`);
    expect(idp.requests.some((line) => line.includes("devicecode"))).toBe(false);
  });

  it("finds the configuration at the plain OpenID place when the issuer is the authority itself", async () => {
    const { w, idp } = await setUp({ layout: "plain" });
    const profile = profileFor(w, idp);
    const { result } = await signIn(w, idp, w.service(), profile);
    expect(result.account.username).toBe(IDP_ACCOUNT.preferred_username);
    expect(idp.requests.slice(0, 3)).toEqual([
      `GET /${TENANT}/v2.0/.well-known/openid-configuration`,
      `GET /${TENANT}/.well-known/openid-configuration`,
      `POST /${TENANT}/device/auth`,
    ]);
  });
});
