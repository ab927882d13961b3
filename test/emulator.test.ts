import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
  PublicClientApplication,
} from "@azure/msal-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { VirtualClock } from "../agent/core/virtual-clock.ts";
import { DEFAULT_TENANT_ID, DEFAULT_USER, type EmulatorSettings } from "../scripts/emulator/server.ts";
import { ensureTls } from "../scripts/emulator/tls.ts";
import { decodeJwt, EmulatorHarness, str, verifyJwt } from "./support/emulator.ts";

const CLIENT = "11111111-2222-3333-4444-555555555555";
const TENANT = DEFAULT_TENANT_ID;
const GUID_TENANT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SECOND = 1000;

let tlsDir: string;
let h: EmulatorHarness;

beforeAll(async () => {
  tlsDir = await mkdtemp(join(tmpdir(), "entra-emulator-test-"));
});

afterAll(async () => {
  await rm(tlsDir, { recursive: true, force: true });
});

function harness(defaults: Partial<EmulatorSettings> = {}): Promise<EmulatorHarness> {
  return new EmulatorHarness({ tlsDir, defaults }).start();
}

async function issue(
  tenant = TENANT,
  scope?: string,
): Promise<{ deviceCode: string; userCode: string; body: Record<string, unknown> }> {
  const response = await h.deviceCode(tenant, CLIENT, scope);
  expect(response.status).toBe(200);
  const body = response.json ?? {};
  return { deviceCode: str(body.device_code), userCode: str(body.user_code), body };
}

async function signIn(tenant = TENANT, scope?: string): Promise<Record<string, unknown>> {
  const { deviceCode, userCode } = await issue(tenant, scope);
  h.emulator.approve({ userCode });
  const response = await h.poll(tenant, CLIENT, deviceCode);
  expect(response.status).toBe(200);
  return response.json ?? {};
}

describe("Entra emulator over HTTPS", () => {
  beforeEach(async () => {
    h = await harness();
  });
  afterEach(async () => {
    await h.stop();
  });

  describe("discovery", () => {
    it("serves OpenID configuration for a tenant id, a domain and organizations", async () => {
      const byId = (await h.get(`/${GUID_TENANT}/v2.0/.well-known/openid-configuration`)).json ?? {};
      expect(byId.issuer).toBe(`${h.host}/${GUID_TENANT}/v2.0`);
      expect(byId.token_endpoint).toBe(`${h.host}/${GUID_TENANT}/oauth2/v2.0/token`);
      expect(byId.device_authorization_endpoint).toBe(`${h.host}/${GUID_TENANT}/oauth2/v2.0/devicecode`);
      expect(byId.jwks_uri).toBe(`${h.host}/${GUID_TENANT}/discovery/v2.0/keys`);
      expect(byId.end_session_endpoint).toBe(`${h.host}/${GUID_TENANT}/oauth2/v2.0/logout`);
      expect(byId.authorization_endpoint).toBe(`${h.host}/${GUID_TENANT}/oauth2/v2.0/authorize`);
      expect(byId.response_types_supported).toContain("code");
      expect(byId.id_token_signing_alg_values_supported).toEqual(["RS256"]);

      // As Entra does: a domain resolves to the tenant id, aliases stay and get a templated issuer.
      const byDomain = (await h.get("/contoso.example/v2.0/.well-known/openid-configuration")).json ?? {};
      expect(byDomain.issuer).toBe(`${h.host}/${TENANT}/v2.0`);
      expect(byDomain.token_endpoint).toBe(`${h.host}/${TENANT}/oauth2/v2.0/token`);
      const orgs = (await h.get("/organizations/v2.0/.well-known/openid-configuration")).json ?? {};
      expect(orgs.issuer).toBe(`${h.host}/{tenantid}/v2.0`);
      expect(orgs.token_endpoint).toBe(`${h.host}/organizations/oauth2/v2.0/token`);
    });

    it("serves a JWKS with the RSA signing key", async () => {
      const jwks = (await h.get(`/${TENANT}/discovery/v2.0/keys`)).json ?? {};
      const keys = jwks.keys as Array<Record<string, unknown>>;
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatchObject({ kty: "RSA", use: "sig", alg: "RS256", e: "AQAB" });
      expect(str(keys[0]?.kid).length).toBeGreaterThan(10);
    });

    it("answers instance discovery with the emulator as its own alias", async () => {
      const authorize = encodeURIComponent(`${h.host}/contoso.example/oauth2/v2.0/authorize`);
      const response = await h.get(
        `/common/discovery/instance?api-version=1.1&authorization_endpoint=${authorize}`,
      );
      const hostPort = h.host.replace("https://", "");
      expect(response.json).toEqual({
        tenant_discovery_endpoint: `${h.host}/contoso.example/v2.0/.well-known/openid-configuration`,
        "api-version": "1.1",
        metadata: [{ preferred_network: hostPort, preferred_cache: hostPort, aliases: [hostPort] }],
      });
    });
  });

  describe("device code", () => {
    it("issues codes shaped like Entra's", async () => {
      const { body, userCode } = await issue();
      expect(userCode).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
      expect(str(body.device_code).length).toBeGreaterThan(100);
      expect(body.verification_uri).toBe(`${h.host}/devicelogin`);
      expect(body.expires_in).toBe(900);
      expect(body.interval).toBe(5);
      expect(body).not.toHaveProperty("verification_uri_complete");
      expect(body.message).toBe(
        `To sign in, use a web browser to open the page ${h.host}/devicelogin and enter the code ${userCode} to authenticate.`,
      );
      expect(h.emulator.pendingCodes().map((code) => code.userCode)).toEqual([userCode]);
    });

    it("can leave out interval and use another user code format", async () => {
      h.emulator.setSettings({ interval: null, userCodeFormat: "********" });
      const response = await h.postForm(`/${TENANT}/oauth2/v2.0/devicecode?mkt=de-DE`, {
        client_id: CLIENT,
        scope: "User.Read offline_access",
      });
      const body = response.json ?? {};
      const userCode = str(body.user_code);
      expect(body).not.toHaveProperty("interval");
      expect(userCode).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ2-9]{8}$/);
    });

    it("refuses unregistered clients and missing parameters", async () => {
      h.emulator.setSettings({ registeredClients: ["aaaaaaaa-0000-0000-0000-000000000000"] });
      const unknown = await h.deviceCode(TENANT, CLIENT);
      expect(unknown.status).toBe(400);
      expect(unknown.json).toMatchObject({ error: "unauthorized_client", error_codes: [700016] });
      const noScope = await h.postForm(`/${TENANT}/oauth2/v2.0/devicecode`, {
        client_id: "aaaaaaaa-0000-0000-0000-000000000000",
      });
      expect(noScope.json).toMatchObject({ error: "invalid_request", error_codes: [900144] });
    });

    it("answers authorization_pending, then tokens with the right claims once approved", async () => {
      const { deviceCode, userCode } = await issue();
      const pending = await h.postForm(
        `/${TENANT}/oauth2/v2.0/token`,
        {
          client_id: CLIENT,
          grant_type: "urn:ietf:params:oauth:grant-type:device_code",
          device_code: deviceCode,
        },
        { "client-request-id": "corr-1" },
      );
      expect(pending.status).toBe(400);
      const error = pending.json ?? {};
      expect(error).toMatchObject({
        error: "authorization_pending",
        error_codes: [70016],
        correlation_id: "corr-1",
      });
      expect(str(error.error_description)).toMatch(
        /^AADSTS70016: .*\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: corr-1\r\nTimestamp: 2026-11-27 12:00:00Z$/,
      );
      expect(error.timestamp).toBe("2026-11-27 12:00:00Z");
      expect(error.error_uri).toBe(`${h.host}/error?code=70016`);

      expect(h.emulator.approve({ userCode: userCode.toLowerCase().replace("-", " ") })).toEqual({
        userCode,
        username: DEFAULT_USER.username,
        outcome: "ok",
      });
      expect(h.emulator.pendingCodes()).toEqual([]);
      h.clock.advance(5 * SECOND);
      const done = await h.poll(TENANT, CLIENT, deviceCode);
      expect(done.status).toBe(200);
      expect(done.headers.get("cache-control")).toBe("no-store");
      const tokens = done.json ?? {};
      expect(tokens).toMatchObject({ token_type: "Bearer", expires_in: 3600, ext_expires_in: 3600 });
      expect(tokens.scope).toBe("User.Read openid profile");
      expect(str(tokens.refresh_token).length).toBeGreaterThan(50);
      expect(JSON.parse(Buffer.from(str(tokens.client_info), "base64url").toString())).toEqual({
        uid: DEFAULT_USER.oid,
        utid: TENANT,
      });

      const iat = Math.floor(h.clock.now() / 1000);
      const access = decodeJwt(str(tokens.access_token));
      expect(access.header).toMatchObject({ alg: "RS256", typ: "JWT" });
      expect(access.payload).toMatchObject({
        aud: "00000003-0000-0000-c000-000000000000",
        iss: `https://sts.windows.net/${TENANT}/`,
        iat,
        nbf: iat,
        exp: iat + 3600,
        tid: TENANT,
        oid: DEFAULT_USER.oid,
        preferred_username: DEFAULT_USER.username,
        name: DEFAULT_USER.name,
        scp: "User.Read",
        appid: CLIENT,
        azp: CLIENT,
        ver: "1.0",
      });
      const id = decodeJwt(str(tokens.id_token));
      expect(id.payload).toMatchObject({
        aud: CLIENT,
        iss: `${h.host}/${TENANT}/v2.0`,
        tid: TENANT,
        oid: DEFAULT_USER.oid,
        sub: access.payload.sub,
        preferred_username: DEFAULT_USER.username,
        name: DEFAULT_USER.name,
        iat,
        nbf: iat,
        exp: iat + 3600,
        ver: "2.0",
      });

      const jwks = (await h.get(`/${TENANT}/discovery/v2.0/keys`)).json as {
        keys: Array<Record<string, unknown>>;
      };
      expect(verifyJwt(str(tokens.access_token), jwks)).toBe(true);
      expect(verifyJwt(str(tokens.id_token), jwks)).toBe(true);
      const [head, body] = str(tokens.access_token).split(".");
      const forged = `${head}.${body}x.${str(tokens.access_token).split(".")[2]}`;
      expect(verifyJwt(forged, jwks)).toBe(false);
    });

    it("derives aud and scp from resource-prefixed scopes and omits what was not asked for", async () => {
      const tokens = await signIn(
        TENANT,
        "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Send",
      );
      expect(decodeJwt(str(tokens.access_token)).payload).toMatchObject({
        aud: "https://graph.microsoft.com",
        scp: "User.Read Mail.Send",
      });
      expect(tokens).not.toHaveProperty("refresh_token");
      expect(tokens).not.toHaveProperty("id_token");
      const first = decodeJwt(str(tokens.access_token)).payload;
      const again = decodeJwt(str((await signIn(TENANT, "api://my-api/Read")).access_token)).payload;
      expect(again).toMatchObject({ aud: "api://my-api", scp: "Read" });
      expect(again.uti).not.toBe(first.uti);
    });

    it("uses the tenant GUID from the path as tid, the default tid otherwise", async () => {
      const byGuid = await signIn(GUID_TENANT.toUpperCase());
      expect(decodeJwt(str(byGuid.id_token)).payload.tid).toBe(GUID_TENANT);
      const byAlias = await signIn("organizations");
      expect(decodeJwt(str(byAlias.id_token)).payload).toMatchObject({
        tid: TENANT,
        iss: `${h.host}/${TENANT}/v2.0`,
      });
    });

    it("applies access token lifetime and clock offset settings", async () => {
      h.emulator.setSettings({ accessTokenLifetime: 600, clockOffsetSeconds: -120 });
      const tokens = await signIn();
      expect(tokens.expires_in).toBe(600);
      const iat = Math.floor(h.clock.now() / 1000) - 120;
      expect(decodeJwt(str(tokens.access_token)).payload).toMatchObject({ iat, exp: iat + 600 });
    });

    it("answers slow_down to polls faster than the interval and raises that code's interval by 5 s", async () => {
      const { deviceCode } = await issue();
      const errors: unknown[] = [];
      const pollAt = async (offsetSeconds: number): Promise<void> => {
        h.clock.advance(offsetSeconds * SECOND);
        errors.push((await h.poll(TENANT, CLIENT, deviceCode)).json?.error);
      };
      await pollAt(0);
      await pollAt(2); // too soon: interval becomes 10
      await pollAt(5); // 5 s < 10 s: too soon again, interval becomes 15
      await pollAt(15);
      await pollAt(15);
      expect(errors).toEqual([
        "authorization_pending",
        "slow_down",
        "slow_down",
        "authorization_pending",
        "authorization_pending",
      ]);
      const polls = h.emulator.requests().filter((entry) => entry.grantType === "device_code");
      expect(polls.map((entry) => entry.at - h.clock.now())).toEqual([
        -37_000,
        -37_000 + 2_000,
        -30_000,
        -15_000,
        0,
      ]);
      expect(polls.map((entry) => entry.error)).toEqual(errors);
    });

    it("does not police the interval when told not to", async () => {
      h.emulator.setSettings({ enforcePollInterval: false });
      const { deviceCode } = await issue();
      await h.poll(TENANT, CLIENT, deviceCode);
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("authorization_pending");
    });

    it("expires codes after expires_in on the injected clock", async () => {
      const { deviceCode, userCode } = await issue();
      h.clock.advance(899 * SECOND);
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("authorization_pending");
      h.clock.advance(1 * SECOND);
      const expired = await h.poll(TENANT, CLIENT, deviceCode);
      expect(expired.json).toMatchObject({ error: "expired_token", error_codes: [70019] });
      expect(h.emulator.pendingCodes()).toEqual([]);
      expect(() => h.emulator.approve({ userCode })).toThrow(/expired/);
      expect(() => h.emulator.approve()).toThrow(/no pending/);
    });

    it("answers authorization_declined once declined", async () => {
      const { deviceCode } = await issue();
      expect(h.emulator.decline().userCode).toBeTruthy();
      const declined = await h.poll(TENANT, CLIENT, deviceCode);
      expect(declined.json).toMatchObject({ error: "authorization_declined", error_codes: [70000] });
    });

    it("rejects unknown device codes and makes each code single-use", async () => {
      const bad = await h.poll(TENANT, CLIENT, "not-a-code");
      expect(bad.status).toBe(400);
      expect(bad.json).toMatchObject({ error: "bad_verification_code", error_codes: [70000] });

      const { deviceCode, userCode } = await issue();
      h.emulator.approve({ userCode });
      const otherClient = await h.poll(TENANT, "99999999-2222-3333-4444-555555555555", deviceCode);
      expect(otherClient.json).toMatchObject({ error: "invalid_grant", error_codes: [70000] });
      expect((await h.poll(TENANT, CLIENT, deviceCode)).status).toBe(200);
      h.clock.advance(5 * SECOND);
      const reused = await h.poll(TENANT, CLIENT, deviceCode);
      expect(reused.json).toMatchObject({ error: "invalid_grant", error_codes: [70000] });
    });

    it.each([
      ["policy_blocked", 400, "invalid_grant", 53003, undefined],
      ["consent_required", 400, "invalid_grant", 65001, "consent_required"],
      ["not_public_client", 401, "invalid_client", 7000218, undefined],
    ] as const)(
      "approval with outcome %s answers %s %s %s",
      async (outcome, status, error, code, suberror) => {
        const { deviceCode } = await issue();
        h.emulator.approve({ outcome });
        const response = await h.poll(TENANT, CLIENT, deviceCode);
        expect(response.status).toBe(status);
        expect(response.json).toMatchObject({ error, error_codes: [code] });
        expect(response.json?.suberror).toBe(suberror);
        expect(str(response.json?.error_description)).toMatch(new RegExp(`^AADSTS${code}: `));
      },
    );

    it("signs in other users with stable object ids", async () => {
      const { deviceCode } = await issue();
      h.emulator.approve({ username: "ops@contoso.example", name: "Ops" });
      const tokens = (await h.poll(TENANT, CLIENT, deviceCode)).json ?? {};
      const claims = decodeJwt(str(tokens.id_token)).payload;
      expect(claims).toMatchObject({ preferred_username: "ops@contoso.example", name: "Ops" });
      expect(claims.oid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(claims.oid).not.toBe(DEFAULT_USER.oid);
    });

    it("refuses other grant types and GET on the token endpoint", async () => {
      const grant = await h.postForm(`/${TENANT}/oauth2/v2.0/token`, {
        client_id: CLIENT,
        grant_type: "password",
      });
      expect(grant.json).toMatchObject({ error: "unsupported_grant_type", error_codes: [70003] });
      expect((await h.get(`/${TENANT}/oauth2/v2.0/token`)).json).toMatchObject({ error_codes: [900561] });
    });
  });

  describe("refresh tokens", () => {
    it("rotates on every use and rejects the previous token with AADSTS70008", async () => {
      const first = await signIn();
      const oldRt = str(first.refresh_token);
      h.clock.advance(3000 * SECOND);
      const second = await h.refresh(TENANT, CLIENT, oldRt);
      expect(second.status).toBe(200);
      const newRt = str(second.json?.refresh_token);
      expect(newRt).not.toBe(oldRt);
      expect(second.json?.access_token).not.toBe(first.access_token);
      expect(decodeJwt(str(second.json?.access_token)).payload.iat).toBe(Math.floor(h.clock.now() / 1000));
      expect(decodeJwt(str(second.json?.id_token)).payload.oid).toBe(DEFAULT_USER.oid);

      const reuse = await h.refresh(TENANT, CLIENT, oldRt);
      expect(reuse.json).toMatchObject({ error: "invalid_grant", error_codes: [70008] });
      expect((await h.refresh(TENANT, CLIENT, newRt)).status).toBe(200);
      const unknown = await h.refresh(TENANT, CLIENT, "1.AXEAnonsense");
      expect(unknown.json).toMatchObject({ error: "invalid_grant", error_codes: [9002313] });
    });

    it("answers AADSTS50173 after revocation, or the code asked for", async () => {
      const rt = str((await signIn()).refresh_token);
      expect(h.emulator.revokeRefreshTokens({ username: "someone@else.example" })).toEqual({ revoked: 0 });
      expect(h.emulator.revokeRefreshTokens({ username: DEFAULT_USER.username })).toEqual({ revoked: 1 });
      const revoked = await h.refresh(TENANT, CLIENT, rt);
      expect(revoked.status).toBe(400);
      expect(revoked.json).toMatchObject({ error: "invalid_grant", error_codes: [50173] });
      expect(str(revoked.json?.error_description)).toMatch(
        /^AADSTS50173: The provided grant has expired due to it being revoked/,
      );

      const mfa = str((await signIn()).refresh_token);
      h.emulator.revokeRefreshTokens({ code: 50076 });
      expect((await h.refresh(TENANT, CLIENT, mfa)).json).toMatchObject({
        error_codes: [50076],
        suberror: "basic_action",
      });
    });

    it("answers AADSTS700082 when expired by hand or after 90 days unused", async () => {
      const rt = str((await signIn()).refresh_token);
      expect(h.emulator.expireRefreshTokens()).toEqual({ expired: 1 });
      expect((await h.refresh(TENANT, CLIENT, rt)).json).toMatchObject({
        error: "invalid_grant",
        error_codes: [700082],
      });

      const idle = str((await signIn()).refresh_token);
      h.clock.advance(90 * 24 * 3600 * SECOND);
      expect((await h.refresh(TENANT, CLIENT, idle)).json).toMatchObject({ error_codes: [700082] });
    });
  });

  describe("faults", () => {
    it("delays a request by the given latency, then answers normally", async () => {
      h.emulator.injectFaults("devicecode", [{ type: "latency", ms: 5 }]);
      const { userCode } = await issue();
      expect(userCode).toBeTruthy();
      expect(h.emulator.requests().at(-1)).toMatchObject({ fault: "latency", status: 200 });
    });

    it("answers 5xx and 429 with Retry-After, in queue order, then recovers", async () => {
      h.emulator.injectFaults("any", [
        { type: "status", status: 503 },
        { type: "429", retryAfterSeconds: 7 },
      ]);
      const unavailable = await h.deviceCode(TENANT, CLIENT);
      expect(unavailable.status).toBe(503);
      expect(unavailable.json?.error).toBe("server_error");
      const throttled = await h.deviceCode(TENANT, CLIENT);
      expect(throttled.status).toBe(429);
      expect(throttled.headers.get("retry-after")).toBe("7");
      expect((await h.deviceCode(TENANT, CLIENT)).status).toBe(200);
    });

    it("drops the connection without a response", async () => {
      const { deviceCode } = await issue();
      h.emulator.injectFaults("token", [{ type: "drop" }]);
      await expect(h.poll(TENANT, CLIENT, deviceCode)).rejects.toThrow();
      expect(h.emulator.requests().at(-1)).toMatchObject({ fault: "drop", status: 0 });
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("authorization_pending");
    });

    it("forces slow_down on a poll and expects the raised interval afterwards", async () => {
      const { deviceCode } = await issue();
      h.emulator.injectFaults("token", [{ type: "slow_down" }]);
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("slow_down");
      h.clock.advance(5 * SECOND);
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("slow_down");
      h.clock.advance(15 * SECOND);
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("authorization_pending");
    });

    it("redirects instead of answering", async () => {
      h.emulator.injectFaults("token", [
        { type: "redirect", status: 307, location: "http://127.0.0.1:9/steal" },
      ]);
      const redirected = await h.request(`/${TENANT}/oauth2/v2.0/token`, {
        method: "POST",
        body: "grant_type=refresh_token",
        redirect: "manual",
      });
      expect(redirected.status).toBe(307);
      expect(redirected.headers.get("location")).toBe("http://127.0.0.1:9/steal");
      expect(h.emulator.requests().at(-1)).toMatchObject({ fault: "redirect", status: 307 });
    });

    it("answers with a canned status and body, JSON or text", async () => {
      h.emulator.injectFaults("token", [
        { type: "respond", status: 200, body: {} },
        { type: "respond", status: 404, body: "<html>not here</html>" },
      ]);
      const { deviceCode } = await issue();
      const empty = await h.poll(TENANT, CLIENT, deviceCode);
      expect([empty.status, empty.json]).toEqual([200, {}]);
      const page = await h.poll(TENANT, CLIENT, deviceCode);
      expect([page.status, page.headers.get("content-type"), page.text]).toEqual([
        404,
        "text/html; charset=utf-8",
        "<html>not here</html>",
      ]);
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("authorization_pending");
    });

    it("streams a body of the size asked for, with or without Content-Length", async () => {
      h.emulator.injectFaults("token", [
        { type: "huge", bytes: 3 * 1024 * 1024, declareLength: true },
        { type: "huge", bytes: 200_000 },
      ]);
      // (Not through h.request: the body is JSON only in name.)
      const post = () =>
        fetch(`${h.host}/${TENANT}/oauth2/v2.0/token`, { method: "POST", tls: { ca: h.caPem } });
      const declared = await post();
      expect(declared.headers.get("content-length")).toBe(String(3 * 1024 * 1024));
      const text = await declared.text();
      expect(text).toHaveLength(3 * 1024 * 1024);
      expect(text.startsWith('{"access_token":"aaaa')).toBe(true);
      const chunked = await post();
      expect(chunked.headers.get("content-length")).toBeNull();
      expect(await chunked.text()).toHaveLength(200_000);
      expect(h.emulator.requests().map((entry) => entry.bytesSent)).toEqual([3 * 1024 * 1024, 200_000]);
    });

    it("handles a request and then loses its answer", async () => {
      const { deviceCode, userCode } = await issue();
      h.emulator.approve({ userCode });
      h.emulator.injectFaults("token", [{ type: "lose_answer" }]);
      await expect(h.poll(TENANT, CLIENT, deviceCode)).rejects.toThrow();
      // The lost answer was the tokens: the code is redeemed, so asking again is refused.
      expect(h.emulator.requests().at(-1)).toMatchObject({ fault: "lose_answer", status: 200 });
      const again = await h.poll(TENANT, CLIENT, deviceCode);
      expect(again.json).toMatchObject({ error: "invalid_grant", error_codes: [70000] });
    });

    it("takes discovery faults only for the OpenID configuration, and leaves out fields on request", async () => {
      h.emulator.injectFaults("discovery", [{ type: "respond", status: 404, body: { error: "not_found" } }]);
      h.emulator.injectFaults("any", [{ type: "status", status: 500 }]);
      const path = `/${TENANT}/v2.0/.well-known/openid-configuration`;
      expect((await h.get(path)).status).toBe(404);
      expect((await h.get(path)).status).toBe(200);
      expect((await h.deviceCode(TENANT, CLIENT)).status).toBe(500);
      h.emulator.setSettings({ discoveryOmit: ["device_authorization_endpoint", "end_session_endpoint"] });
      const document = (await h.get(path)).json ?? {};
      expect(document.token_endpoint).toBe(`${h.host}/${TENANT}/oauth2/v2.0/token`);
      expect(document).not.toHaveProperty("device_authorization_endpoint");
      expect(document).not.toHaveProperty("end_session_endpoint");
      expect(() => h.emulator.setSettings({ discoveryOmit: "issuer" as unknown as string[] })).toThrow(
        /discoveryOmit/,
      );
    });

    it("keeps faults of one kind away from the other endpoint", async () => {
      h.emulator.injectFaults("token", [{ type: "status", status: 500 }]);
      expect((await h.deviceCode(TENANT, CLIENT)).status).toBe(200);
      expect(() => h.emulator.injectFaults("token", [{ type: "status", status: 418 as 500 }])).toThrow(
        /invalid fault/,
      );
    });
  });

  describe("/devicelogin pages", () => {
    it("walks a person through code entry and approval", async () => {
      const { deviceCode, userCode } = await issue();
      const form = await h.get("/devicelogin");
      expect(form.status).toBe(200);
      expect(form.headers.get("content-type")).toContain("text/html");
      expect(form.text).toContain('<form method="post" action="/devicelogin">');
      expect(form.text).not.toMatch(/<script|<link|src="http/);

      const wrong = await h.postForm("/devicelogin", { code: "ZZZZ-<b>" });
      expect(wrong.status).toBe(400);
      expect(wrong.text).toContain("didn&#39;t work");
      expect(wrong.text).not.toContain("<b>");

      const typed = ` ${userCode.toLowerCase().replace("-", "")} `;
      const consent = await h.postForm("/devicelogin", { code: typed });
      expect(consent.status).toBe(200);
      expect(consent.text).toContain(CLIENT);
      expect(consent.text).toContain("User.Read");
      expect(consent.text).toContain('action="/devicelogin/approve"');
      expect(consent.text).toContain('formaction="/devicelogin/decline"');

      const approved = await h.postForm("/devicelogin/approve", {
        code: userCode,
        username: DEFAULT_USER.username,
      });
      expect(approved.text).toContain(
        "You have signed in to the application on your device. You may now close this window.",
      );
      expect((await h.poll(TENANT, CLIENT, deviceCode)).status).toBe(200);
      const again = await h.postForm("/devicelogin", { code: userCode });
      expect(again.text).toContain("already been used");
    });

    it("declines from the page", async () => {
      const { deviceCode, userCode } = await issue();
      const declined = await h.postForm("/devicelogin/decline", { code: userCode });
      expect(declined.text).toContain("You declined");
      expect((await h.poll(TENANT, CLIENT, deviceCode)).json?.error).toBe("authorization_declined");
    });
  });

  describe("control API over HTTP", () => {
    it("mirrors the methods", async () => {
      expect((await h.control("settings", { interval: 3, registeredClients: [CLIENT] })).json).toMatchObject({
        interval: 3,
        registeredClients: [CLIENT],
        expiresIn: 900,
      });
      expect((await h.control("settings", { interval: -1 })).status).toBe(400);
      expect((await h.control("settings", { intervall: 3 })).json?.error).toBe("unknown settings: intervall");
      expect((await h.get("/_emulator/settings")).json?.interval).toBe(3);

      const { deviceCode, userCode } = await issue();
      const pending = (await h.get("/_emulator/pending-codes")).json as unknown as Array<
        Record<string, unknown>
      >;
      expect(pending.map((code) => code.userCode)).toEqual([userCode]);
      expect((await h.control("approve", { outcome: "nonsense" })).status).toBe(400);
      expect((await h.control("approve", { userCode: "BBBB-BBBB" })).status).toBe(404);
      expect((await h.control("approve", {})).json).toEqual({
        userCode,
        username: DEFAULT_USER.username,
        outcome: "ok",
      });
      expect((await h.control("approve", { userCode })).status).toBe(409);
      const rt = str((await h.poll(TENANT, CLIENT, deviceCode)).json?.refresh_token);

      expect((await h.control("revoke-refresh-tokens", { code: 70043 })).json).toEqual({ revoked: 1 });
      expect((await h.refresh(TENANT, CLIENT, rt)).json?.error_codes).toEqual([70043]);
      expect((await h.control("expire-refresh-tokens", {})).json).toEqual({ expired: 0 });

      expect(
        (await h.control("inject-faults", { kind: "devicecode", faults: [{ type: "drop" }] })).json,
      ).toEqual({
        queued: { discovery: 0, devicecode: 1, token: 0, any: 0 },
      });
      await expect(h.deviceCode(TENANT, CLIENT)).rejects.toThrow();

      const declineMe = await issue();
      expect((await h.control("decline", { userCode: declineMe.userCode })).json).toEqual({
        userCode: declineMe.userCode,
      });

      const log = (await h.get("/_emulator/requests")).json as unknown as Array<Record<string, unknown>>;
      expect(log.every((entry) => !String(entry.path).startsWith("/_emulator/"))).toBe(true);
      expect(log.map((entry) => entry.status)).toEqual([200, 200, 400, 0, 200]);
      expect((await h.control("auto-approve", { seconds: 30 })).json).toEqual({ seconds: 30 });
      expect((await h.control("auto-approve", { seconds: null })).json).toEqual({ seconds: null });

      expect((await h.control("reset")).json).toEqual({ reset: true });
      expect(h.emulator.requests()).toEqual([]);
      expect(h.emulator.settings().interval).toBe(5);
      expect((await h.control("no-such-thing")).status).toBe(404);
      expect((await h.get("/_emulator/reset")).status).toBe(405);
    });
  });
});

describe("emulator lifecycle", () => {
  it("stops promptly with a request held by a latency fault and open keep-alive connections", async () => {
    const local = await harness();
    local.emulator.injectFaults("devicecode", [{ type: "latency", ms: 600_000 }]);
    const held = local.deviceCode(TENANT, CLIENT).then(
      () => "answered",
      () => "failed",
    );
    await local.get(`/${TENANT}/discovery/v2.0/keys`);
    // The held request must have arrived before stop() for the test to mean anything.
    while (local.emulator.requests().length < 2) await new Promise<void>((resolve) => setImmediate(resolve));
    await local.stop();
    expect(await held).toBe("failed");
    await local.stop();
  });

  it("auto-approves new codes after the configured real-time delay", async () => {
    const local = await new EmulatorHarness({ tlsDir, autoApproveAfter: 0 }).start();
    try {
      const response = await local.deviceCode(TENANT, CLIENT);
      const deviceCode = str(response.json?.device_code);
      while (local.emulator.pendingCodes().length > 0)
        await new Promise<void>((resolve) => setImmediate(resolve));
      expect((await local.poll(TENANT, CLIENT, deviceCode)).status).toBe(200);
    } finally {
      await local.stop();
    }
  });

  it("reuses valid TLS files and replaces ones that expire within a day", async () => {
    const dir = await mkdtemp(join(tmpdir(), "entra-emulator-tls-"));
    try {
      const first = await ensureTls(dir);
      expect(await readFile(first.caPath, "utf8")).toBe(first.caPem);
      expect((await ensureTls(dir)).certPem).toBe(first.certPem);
      const late = new VirtualClock(Date.now() + 29.5 * 24 * 3600 * SECOND);
      expect((await ensureTls(dir, { clock: late })).certPem).not.toBe(first.certPem);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("msal-node against the emulator", () => {
  /** MSAL's network seam, so that the emulator's CA is trusted without NODE_EXTRA_CA_CERTS. */
  class TrustingNetwork implements INetworkModule {
    constructor(private readonly caPem: string) {}

    sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
      return this.#send<T>(url, "GET", options);
    }

    sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
      return this.#send<T>(url, "POST", options);
    }

    async #send<T>(
      url: string,
      method: string,
      options?: NetworkRequestOptions,
    ): Promise<NetworkResponse<T>> {
      const response = await fetch(url, {
        method,
        headers: options?.headers,
        body: options?.body,
        tls: { ca: this.caPem },
      });
      const headers: Record<string, string> = {};
      response.headers.forEach((value, key) => {
        headers[key] = value;
      });
      return { headers, body: (await response.json()) as T, status: response.status };
    }
  }

  it("signs in with the device code flow, serves the cache silently and refreshes with rotation", async () => {
    const local = await harness();
    try {
      const hostPort = local.host.replace("https://", "");
      const pca = new PublicClientApplication({
        auth: { clientId: CLIENT, authority: `${local.host}/${TENANT}`, knownAuthorities: [hostPort] },
        system: { networkClient: new TrustingNetwork(local.caPem) },
      });
      let message = "";
      const result = await pca.acquireTokenByDeviceCode({
        scopes: ["User.Read"],
        deviceCodeCallback: (response) => {
          message = response.message;
          // Approve before MSAL's first poll, so that it never sleeps on real time.
          local.emulator.approve({ userCode: response.userCode });
        },
      });
      expect(message).toContain(`${local.host}/devicelogin`);
      expect(result?.account?.username).toBe(DEFAULT_USER.username);
      expect(result?.account?.homeAccountId).toBe(`${DEFAULT_USER.oid}.${TENANT}`);
      expect(result?.scopes).toContain("User.Read");
      const account = result?.account;
      if (!account) throw new Error("no account");

      const cached = await pca.acquireTokenSilent({ account, scopes: ["User.Read"] });
      expect(cached.accessToken).toBe(result?.accessToken);
      expect(cached.fromCache).toBe(true);

      const refreshed = await pca.acquireTokenSilent({ account, scopes: ["User.Read"], forceRefresh: true });
      expect(refreshed.fromCache).toBe(false);
      expect(refreshed.accessToken).not.toBe(result?.accessToken);
      const grants = local.emulator.requests().map((entry) => entry.grantType ?? entry.path);
      expect(grants).toEqual([
        `/${TENANT}/v2.0/.well-known/openid-configuration`,
        `/${TENANT}/oauth2/v2.0/devicecode`,
        "device_code",
        "refresh_token",
      ]);
    } finally {
      await local.stop();
    }
  });
});

describe("the protected resource and the record of issued secrets", () => {
  beforeEach(async () => {
    h = await harness();
  });
  afterEach(async () => {
    await h.stop();
  });

  it("answers GET /v1.0/me for a valid access token, like Microsoft Graph", async () => {
    const tokens = await signIn();
    const me = await h.request("/v1.0/me", {
      headers: { authorization: `Bearer ${str(tokens.access_token)}` },
    });
    expect(me.status).toBe(200);
    expect(me.json?.userPrincipalName).toBe(DEFAULT_USER.username);
    expect(me.json?.displayName).toBe(DEFAULT_USER.name);
  });

  it("refuses a missing, forged or expired token with 401", async () => {
    const tokens = await signIn();
    const token = str(tokens.access_token);
    expect((await h.request("/v1.0/me")).status).toBe(401);
    const forged = `${token.slice(0, token.lastIndexOf(".") + 1)}AAAA`;
    expect((await h.request("/v1.0/me", { headers: { authorization: `Bearer ${forged}` } })).status).toBe(
      401,
    );
    h.clock.advance(3601 * SECOND);
    const expired = await h.request("/v1.0/me", { headers: { authorization: `Bearer ${token}` } });
    expect(expired.status).toBe(401);
    expect(expired.json?.error).toMatchObject({ code: "InvalidAuthenticationToken" });
  });

  it("lists every token and device_code it issued, and forgets them on reset", async () => {
    const { deviceCode, userCode } = await issue();
    h.emulator.approve({ userCode });
    const tokens = (await h.poll(TENANT, CLIENT, deviceCode)).json ?? {};
    const secrets = h.emulator.issuedSecrets();
    expect(secrets).toEqual(
      expect.arrayContaining([
        deviceCode,
        str(tokens.access_token),
        str(tokens.refresh_token),
        str(tokens.id_token),
      ]),
    );
    h.emulator.reset();
    expect(h.emulator.issuedSecrets()).toEqual([]);
  });
});
