/**
 * The identity provider's OpenID configuration, against the emulator: fetched once, kept in the
 * state directory for a day, a stale copy used while the provider is unreachable, a damaged copy
 * set aside, and one clear sentence when the authority is no OpenID provider.
 */
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DISCOVERY_MAX_AGE_MS } from "../../agent/auth/discovery.ts";
import type { SignInState } from "../../agent/auth/signin.ts";
import { rejection, SECOND, StateLog, TENANT, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();

function approving(w: World): StateLog {
  return new StateLog().on((state: SignInState) => {
    if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
  });
}

async function signIn(w: World): Promise<void> {
  await w.service().getToken(w.profile(), { onState: approving(w).onState });
}

async function discoveryFiles(w: World): Promise<string[]> {
  return (await readdir(w.discoveryDir)).sort();
}

/** Log records whose message matches. */
function logged(w: World, msg: RegExp): Array<Record<string, unknown>> {
  return w.logLines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((r) => msg.test(String(r.msg)));
}

const DISCOVERY_PATH = `/${TENANT}/v2.0/.well-known/openid-configuration`;

describe("the OpenID configuration", () => {
  it("is fetched once, kept (0600 in 0700) and not fetched again within a day, then fetched anew", async () => {
    const w = await start();
    const startedAt = w.clock.now();
    await signIn(w);
    expect(w.requestKinds()).toEqual(["discovery", "devicecode", "device_code"]);
    const [file] = await discoveryFiles(w);
    expect(file).toMatch(/\.json$/);
    const path = join(w.discoveryDir, file ?? "");
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(w.discoveryDir)).mode & 0o777).toBe(0o700);
    const kept = JSON.parse(await readFile(path, "utf8"));
    expect(kept).toMatchObject({
      version: 1,
      authority: `${w.harness.host}/${TENANT}`,
      source: `${w.harness.host}${DISCOVERY_PATH}`,
      fetchedAt: startedAt,
      document: {
        token_endpoint: `${w.harness.host}/${TENANT}/oauth2/v2.0/token`,
        device_authorization_endpoint: `${w.harness.host}/${TENANT}/oauth2/v2.0/devicecode`,
      },
    });

    // A new service is a new process: it reads the kept copy.
    w.clock.advance(startedAt + DISCOVERY_MAX_AGE_MS - 60 * SECOND - w.clock.now());
    let before = w.emulator.requests().length;
    await w.service().getToken(w.profile(), { forceRefresh: true });
    expect(w.requestKinds().slice(before)).toEqual(["refresh_token"]);

    w.clock.advance(60 * SECOND);
    before = w.emulator.requests().length;
    await w.service().getToken(w.profile(), { forceRefresh: true });
    expect(w.requestKinds().slice(before)).toEqual(["discovery", "refresh_token"]);
    expect(JSON.parse(await readFile(path, "utf8")).fetchedAt).toBe(w.clock.now());
  });

  it("is not needed for a cached token: no request, no file read, no msal-node", async () => {
    // An access token that outlives the configuration's day.
    const w = await start({ accessTokenLifetime: 2 * 24 * 3600 });
    await signIn(w);
    // Even after that day, and with the kept copy damaged.
    w.clock.advance(DISCOVERY_MAX_AGE_MS + SECOND);
    for (const file of await discoveryFiles(w)) await writeFile(join(w.discoveryDir, file), "damaged");
    const before = { requests: w.emulator.requests().length, fetches: w.fetchCalls.length };
    let msalLoads = 0;
    const service = w.service({
      loadMsal: () => {
        msalLoads += 1;
        return import("../../agent/auth/msal.ts");
      },
    });
    const cached = await service.getToken(w.profile());
    expect(cached.fromCache).toBe(true);
    expect([w.emulator.requests().length, w.fetchCalls.length, msalLoads]).toEqual([
      before.requests,
      before.fetches,
      0,
    ]);
    // Nothing was set aside either: the file was never read.
    expect(await discoveryFiles(w)).toHaveLength(1);
  });

  it("is used after its day when the provider cannot be reached for it, and the log says so", async () => {
    const w = await start();
    await signIn(w);
    w.clock.advance(DISCOVERY_MAX_AGE_MS + SECOND);
    w.emulator.injectFaults("discovery", [
      { type: "status", status: 503 },
      { type: "status", status: 503 },
      { type: "status", status: 503 },
    ]);
    const before = w.emulator.requests().length;
    const result = await w.service().getToken(w.profile(), { forceRefresh: true });
    expect(result.fromCache).toBe(false);
    expect(w.requestKinds().slice(before)).toEqual(["discovery", "discovery", "discovery", "refresh_token"]);
    const [warning] = logged(w, /could not be fetched; using the copy kept earlier/);
    expect(warning).toMatchObject({ level: "warn", authority: `${w.harness.host}/${TENANT}` });
  });

  it("sets a damaged copy aside and fetches the configuration again", async () => {
    const w = await start();
    await signIn(w);
    const [file] = await discoveryFiles(w);
    await writeFile(join(w.discoveryDir, file ?? ""), '{"version":1,"authority":');
    const before = w.emulator.requests().length;
    await w.service().getToken(w.profile(), { forceRefresh: true });
    expect(w.requestKinds().slice(before)).toEqual(["discovery", "refresh_token"]);
    const files = await discoveryFiles(w);
    expect(files).toEqual([file, expect.stringMatching(/\.json\.corrupt-\d{4}-\d\d-\d\dT[\d-]+\.\d{3}Z$/)]);
    expect(logged(w, /^Unusable OpenID configuration file set aside/)).toEqual([
      expect.objectContaining({ level: "warn", reason: "not JSON" }),
    ]);
  });

  it("derives Entra's device code endpoint when the document names none", async () => {
    const w = await start({
      discoveryOmit: ["device_authorization_endpoint", "end_session_endpoint", "jwks_uri"],
    });
    await signIn(w);
    expect(w.emulator.requests().map((entry) => entry.path)).toEqual([
      DISCOVERY_PATH,
      `/${TENANT}/oauth2/v2.0/devicecode`,
      `/${TENANT}/oauth2/v2.0/token`,
    ]);
    expect(logged(w, /names no device_authorization_endpoint; using Entra's path/)).toHaveLength(1);
  });

  it("keeps msal-node's grant type for Entra, and sends RFC 8628's URN to other providers", async () => {
    const entra = await start();
    await signIn(entra);
    const grantTypes = (w: World): string[] =>
      w.emulator
        .requests()
        .flatMap((entry) => (entry.path.endsWith("/token") ? [entry.grantType ?? ""] : []));
    expect(grantTypes(entra)).toEqual(["device_code"]);
    await entra.dispose();

    // Without Entra's cloud_instance_name, on a host that is not Entra's, it is any provider.
    const other = await start({ discoveryOmit: ["cloud_instance_name"] });
    await signIn(other);
    expect(grantTypes(other)).toEqual(["urn:ietf:params:oauth:grant-type:device_code"]);
  });

  it("sends requests where the document says, not where msal-node would", async () => {
    // A tenant named like this makes msal-node's own device code URL `/devicecodes.example.com/…/token`.
    const w = await start();
    const result = await w
      .service()
      .getToken(w.profile({ tenantId: "tokens.example.com" }), { onState: approving(w).onState });
    expect(result.fromCache).toBe(false);
    // The emulator, like Entra, names a domain's endpoints by the tenant id.
    expect(w.emulator.requests().map((entry) => entry.path)).toEqual([
      "/tokens.example.com/v2.0/.well-known/openid-configuration",
      `/${TENANT}/oauth2/v2.0/devicecode`,
      `/${TENANT}/oauth2/v2.0/token`,
    ]);
  });
});

describe("an authority that is not an OpenID provider", () => {
  it("404 at both places: one sentence naming the URL, exit 8, nothing else sent", async () => {
    const w = await start();
    w.emulator.injectFaults("discovery", [{ type: "respond", status: 404, body: "<h1>Not Found</h1>" }]);
    const log = new StateLog();
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect(error.code).toBe("E_AUTHORITY");
    expect(error.exitCode).toBe(8);
    expect(error.message).toBe(
      `${w.harness.host}${DISCOVERY_PATH} answered 404: check --authority-host and --tenant-id.`,
    );
    expect(w.emulator.requests().map((entry) => [entry.path, entry.status])).toEqual([
      [DISCOVERY_PATH, 404],
      [`/${TENANT}/.well-known/openid-configuration`, 404],
    ]);
    expect(log.kinds()).toEqual(["starting", "error"]);
    expect(await readdir(w.stateDir).catch(() => [])).not.toContain("discovery");
  });

  it.each([
    [
      "a page that is not JSON",
      { status: 200, body: "<html>Welcome to nginx</html>" },
      "answered 200 with something that is not JSON",
    ],
    [
      "JSON that is not a configuration",
      { status: 200, body: { hello: "world" } },
      "answered 200 with no usable OpenID configuration (no https issuer)",
    ],
    [
      "a token endpoint over http",
      { status: 200, body: { issuer: "https://x.example", token_endpoint: "http://x.example/token" } },
      "answered 200 with no usable OpenID configuration (no https token_endpoint)",
    ],
    ["an error page", { status: 500, body: "oops" }, ""],
  ] as const)(
    "discovery answering %s: E_AUTHORITY naming the URL (or E_NETWORK for a 5xx)",
    async (_what, answer, how) => {
      const w = await start();
      w.emulator.injectFaults(
        "discovery",
        Array.from({ length: 3 }, () => ({
          type: "respond" as const,
          status: answer.status,
          body: answer.body,
        })),
      );
      const error = await rejection(w.service().getToken(w.profile()));
      if (answer.status >= 500) {
        expect(error.code).toBe("E_NETWORK");
        expect(error.exitCode).toBe(3);
        return;
      }
      expect(error.code).toBe("E_AUTHORITY");
      expect(error.message).toBe(
        `${w.harness.host}${DISCOVERY_PATH} ${how}: check --authority-host and --tenant-id.`,
      );
    },
  );

  it("a 404 from the device code endpoint names that URL, not 'incomplete response'", async () => {
    const w = await start();
    w.emulator.injectFaults("devicecode", [{ type: "respond", status: 404, body: { error: "not_found" } }]);
    const error = await rejection(w.service().getToken(w.profile()));
    expect([error.code, error.exitCode]).toEqual(["E_AUTHORITY", 8]);
    expect(error.message).toBe(
      `${w.harness.host}/${TENANT}/oauth2/v2.0/devicecode answered 404: check --authority-host and --tenant-id.`,
    );
  });

  it("a device code answer without a code names the URL", async () => {
    const w = await start();
    w.emulator.injectFaults("devicecode", [{ type: "respond", status: 200, body: { user_code: "ABCD" } }]);
    const error = await rejection(w.service().getToken(w.profile()));
    expect(error.message).toBe(
      `${w.harness.host}/${TENANT}/oauth2/v2.0/devicecode answered 200 without a device code: check --authority-host and --tenant-id.`,
    );
  });

  it("a token endpoint answering a page that is not JSON names the URL", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "respond", status: 200, body: "<html>captive portal</html>" }]);
    const error = await rejection(w.service().getToken(w.profile(), { onState: approving(w).onState }));
    expect([error.code, error.exitCode]).toEqual(["E_AUTHORITY", 8]);
    expect(error.message).toBe(
      `${w.harness.host}/${TENANT}/oauth2/v2.0/token answered 200 with something that is not JSON: check --authority-host and --tenant-id.`,
    );
  });
});
