/**
 * What get-token prints and what it leaves on disk: output formats, the saved sign-in (refresh,
 * revocation, two processes at once, a damaged or copied store, another machine), file modes, and
 * that no token or device_code reaches a log or a file.
 */
import { spawnSync } from "node:child_process";
import { existsSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_USER } from "../../scripts/emulator/server.ts";
import { BINARY, Running, type RunResult, run, runScript, type Sandbox, start } from "../support/cli.ts";
import { decodeJwt } from "../support/emulator.ts";
import {
  approveShown,
  boxFor,
  CODE,
  CORRUPT_FILE,
  cacheFile,
  createProfile,
  DEFAULT_TENANT_ID,
  DEMO_CLIENT_ID,
  emulatorPerFile,
  expectPrivateTree,
  filesIn,
  logRecords,
  readText,
  SET_ASIDE,
  signIn,
  signInAgainAfterSetAside,
  tokenJson,
  walk,
} from "./harness.ts";

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const emulator = emulatorPerFile();

async function getJson(box: Sandbox, args: readonly string[] = []) {
  const result = await run(["get-token", "--output", "json", ...args], box);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).not.toMatch(CODE);
  return tokenJson(result.stdout);
}

/** A copy of the sandbox's ENTRATOOL_HOME (modes kept), and an environment that uses it. */
function copyHome(box: Sandbox, name: string): { home: string; env: Record<string, string> } {
  const home = join(box.binDir, "..", name);
  const copied = spawnSync("cp", ["-a", box.home, home], { encoding: "utf8" });
  expect(copied.status, copied.stderr).toBe(0);
  return { home, env: { ...box.env, ENTRATOOL_HOME: home } };
}

describe.concurrent("output formats", () => {
  it("--output json has exactly the documented keys; the next call is served from the cache", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const first = await signIn(emulator(), box, ["--output", "json"]);
    expect(first.stdout.split("\n")).toHaveLength(2);
    const json = tokenJson(first.stdout);
    expect(Object.keys(json).sort()).toEqual(
      [
        "access_token",
        "account",
        "expires_at",
        "expires_in",
        "from_cache",
        "profile",
        "scopes",
        "token_type",
      ].sort(),
    );
    expect(Object.keys(json.account).sort()).toEqual(["tenant_id", "username"]);
    expect(json).toMatchObject({
      token_type: "Bearer",
      scopes: ["https://graph.microsoft.com/.default"],
      profile: "default",
      account: { username: DEFAULT_USER.username, tenant_id: DEFAULT_TENANT_ID },
      from_cache: false,
    });
    expect(json.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(json.expires_at).toMatch(ISO_UTC);
    expect(json.expires_in).toBeGreaterThan(3500);
    expect(json.expires_in).toBeLessThanOrEqual(3600);
    expect(Math.abs(Date.parse(json.expires_at) - Date.now() - json.expires_in * 1000)).toBeLessThan(5000);

    const second = await getJson(box);
    expect(second.from_cache).toBe(true);
    expect(second.access_token).toBe(json.access_token);

    const raw = await run(["get-token", "--output", "raw"], box);
    expect(raw.code).toBe(0);
    expect(raw.stdout).toBe(`${json.access_token}\n`);
    expect(raw.stderr).toBe("");
  });

  it("the default text output says where the token went and never prints it", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const first = await signIn(emulator(), box);
    const second = await run(["get-token"], box);
    const token = (await run(["get-token", "--output", "raw"], box)).stdout.trim();
    expect(first.stdout).toContain("✓ Authentication successful! Token saved to profile 'default'");
    expect(first.stdout).toContain(`Account: ${DEFAULT_USER.username} (tenant ${DEFAULT_TENANT_ID})`);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain("✓ Using the saved sign-in of profile 'default'");
    const signature = token.split(".")[2] ?? "";
    expect(signature.length).toBeGreaterThan(40);
    for (const text of [first.stdout, first.stderr, second.stdout, second.stderr]) {
      expect(text).not.toContain(signature);
    }
  });
});

describe.concurrent("the saved sign-in", () => {
  it("a revoked refresh token: --force-refresh shows a new sign-in prompt and succeeds", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const username = "revoked@contoso.example";
    await signIn(emulator(), box, [], username);
    expect(emulator().emulator.revokeRefreshTokens({ username })).toEqual({ revoked: 1 });
    const child = start(["get-token", "--force-refresh", "--output", "json"], box);
    await approveShown(emulator(), child, { username });
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("The saved sign-in of profile 'default' is no longer valid");
    expect(tokenJson(result.stdout)).toMatchObject({ from_cache: false, account: { username } });
    expect((await getJson(box)).from_cache).toBe(true);
  });

  it("two get-token at once for one profile: one device code, one prompt, both get the token", async () => {
    const box = boxFor(emulator());
    // A tenant of its own, to count this test's device code requests among the others' (a GUID:
    // a domain's endpoints, as discovered, carry the emulator's tenant id instead).
    const tenantId = "c0c0c0c0-1111-4222-8333-444455556666";
    await createProfile(box, "default", { tenantId });
    const children = [
      start(["get-token", "--output", "json"], box),
      start(["get-token", "--output", "json"], box),
    ];
    const shown = await Promise.any(children.map((child) => child.waitFor(CODE)));
    emulator().emulator.approve({ userCode: shown[1] ?? "" });
    const results = await Promise.all(children.map((child) => child.done));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    expect(results.filter((result) => CODE.test(result.stderr))).toHaveLength(1);
    expect(
      results.filter((result) => result.stderr.includes("Another entratool process is signing in")),
    ).toHaveLength(1);
    const devicecode = emulator()
      .emulator.requests()
      .filter((entry) => entry.path === `/${tenantId}/oauth2/v2.0/devicecode`);
    expect(devicecode).toHaveLength(1);
    const tokens = results.map((result) => tokenJson(result.stdout));
    expect(tokens.map((token) => token.from_cache).sort()).toEqual([false, true]);
    expect(tokens[0]?.access_token).toBe(tokens[1]?.access_token);
    // The store is intact: a third call is served from it.
    const third = await getJson(box);
    expect(third.from_cache).toBe(true);
    expect(third.access_token).toBe(tokens[0]?.access_token);
    expectPrivateTree(box.home);
  });

  it.each([
    {
      damage: "overwritten with garbage",
      apply: (file: string) => writeFileSync(file, "not an entratool token store\n".repeat(8)),
      reason: /bad magic/,
    },
    {
      damage: "truncated to 10 bytes",
      apply: (file: string) => truncateSync(file, 10),
      reason: /^truncated \(10 bytes\)$/,
    },
    {
      damage: "cut in half",
      apply: (file: string) => truncateSync(file, Math.floor(statSync(file).size / 2)),
      reason: /^authentication failed/,
    },
  ])(
    "a token store file $damage is set aside with a warning and a new sign-in works",
    async ({ apply, reason }) => {
      const box = boxFor(emulator());
      await createProfile(box, "default");
      await signIn(emulator(), box);
      apply(cacheFile(box));
      await signInAgainAfterSetAside(emulator(), box, reason);
      const files = filesIn(join(box.home, "state", "tokens"));
      expect(files).toHaveLength(2);
      expect(files[0]).toBe("default.cache");
      expect(files[1]).toMatch(CORRUPT_FILE);
      expect((await getJson(box)).from_cache).toBe(true);
      expectPrivateTree(box.home);
    },
  );

  it("a copy of ENTRATOOL_HOME on the same machine is still signed in", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const token = tokenJson((await signIn(emulator(), box, ["--output", "json"])).stdout).access_token;
    const copy = copyHome(box, "copied-home");
    const again = await new Running(BINARY, ["get-token", "--output", "json"], copy.env).done;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(CODE);
    expect(tokenJson(again.stdout)).toMatchObject({ from_cache: true, access_token: token });
    expectPrivateTree(copy.home);
  });

  it.each([
    {
      machine: "another machine (another /etc/machine-id)",
      target: "/etc/machine-id",
      fake: "0123456789abcdef0123456789abcdef\n",
    },
    {
      machine: "another board (same machine-id, another serial: a cloned SD card)",
      target: "/proc/cpuinfo",
      fake: "processor\t: 0\nSerial\t\t: 10000000deadbeef\n",
    },
  ])("a copy of ENTRATOOL_HOME does not decrypt on $machine", async ({ target, fake }) => {
    if (!existsSync(target)) throw new Error(`${target} is missing: this test binds a fake one over it`);
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const token = tokenJson((await signIn(emulator(), box, ["--output", "json"])).stdout).access_token;
    const copy = copyHome(box, "moved-home");
    const fakeFile = join(box.binDir, "..", "fake-identity");
    writeFileSync(fakeFile, fake);
    // A private mount namespace in which `target` shows the fake file: the binary reads another
    // machine's identity, with nothing changed outside the namespace. Needs root (-m) or
    // unprivileged user namespaces (-m -r).
    const namespace = process.getuid?.() === 0 ? ["-m"] : ["-m", "-r"];
    const child = new Running(
      "unshare",
      [
        ...namespace,
        "sh",
        "-c",
        'src=$1; dst=$2; shift 2; mount --bind "$src" "$dst" && exec entratool "$@"',
        "sh",
        fakeFile,
        target,
        "get-token",
        "--output",
        "json",
      ],
      copy.env,
    );
    await approveShown(emulator(), child).catch((error: unknown) => {
      throw new Error(
        `could not run the binary in a mount namespace (unshare ${namespace.join(" ")}): ${error}`,
      );
    });
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    const json = tokenJson(result.stdout);
    expect(json.from_cache).toBe(false);
    expect(json.access_token).not.toBe(token);
    const warnings = logRecords(result.stderr, SET_ASIDE);
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]?.reason)).toMatch(/^authentication failed/);
    expect(filesIn(join(copy.home, "state", "tokens"))[1]).toMatch(CORRUPT_FILE);
    // The original, on its own machine, is untouched.
    expect(await getJson(box)).toMatchObject({ from_cache: true, access_token: token });
  });
});

describe.concurrent("files under ENTRATOOL_HOME", () => {
  it("under umask 000, files are 0600 and directories 0700 after sign-in, refresh, logout and a second profile", async () => {
    const box = boxFor(emulator());
    const create = (name: string) =>
      `entratool create-profile --name ${name} --tenant-id ${DEFAULT_TENANT_ID} --client-id ${DEMO_CLIENT_ID}`;
    const script = [
      "set -euo pipefail",
      "umask 000",
      create("default"),
      "entratool get-token --flow device-code",
      "entratool get-token --force-refresh --output raw > /dev/null",
      "entratool logout",
      create("second"),
      "entratool get-token --flow device-code --profile second",
      "",
    ].join("\n");
    const child = runScript("bash", script, box);
    await approveShown(emulator(), child, { nth: 1 });
    await approveShown(emulator(), child, { nth: 2 });
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    expect(walk(box.home).map((entry) => entry.path.slice(box.home.length))).toEqual([
      "",
      "/config",
      "/config/profiles.json",
      "/state",
      "/state/discovery",
      expect.stringMatching(/^\/state\/discovery\/127\.0\.0\.1_\d+_.+\.json$/),
      "/state/locks",
      "/state/locks/default.lock",
      "/state/locks/second.lock",
      "/state/store.key",
      "/state/tokens",
      "/state/tokens/second.cache",
    ]);
    expectPrivateTree(box.home);
  });

  it("no token or device_code in any log line or file, even at trace level", async () => {
    const box = boxFor(emulator(), { logLevel: "trace" });
    await createProfile(box, "default");
    const runs: Array<{ result: RunResult; mayShowAccessToken: boolean }> = [];
    const signInAs = async (args: readonly string[]) => {
      runs.push({
        result: await signIn(emulator(), box, args),
        mayShowAccessToken: args.includes("--output"),
      });
    };
    const call = async (args: readonly string[]) => {
      const result = await run(args, box);
      expect(result.code, result.stderr).toBe(0);
      runs.push({ result, mayShowAccessToken: args.includes("--output") });
    };
    await signInAs([]);
    await call(["get-token", "--output", "json"]);
    await call(["get-token", "--force-refresh", "--output", "raw"]);
    await call(["get-token", "--force-refresh", "--output", "json"]);
    await call(["get-token", "--force-refresh"]);
    await call(["logout"]);
    await signInAs(["--output", "json"]);

    // Proof that trace logging was on (MSAL's verbose log included), so silence is not the reason.
    const stderr = runs.map(({ result }) => result.stderr).join("\n");
    expect(logRecords(stderr, /./).length).toBeGreaterThan(20);
    expect(logRecords(stderr).some((record) => record.component === "msal")).toBe(true);

    const secrets = emulator().emulator.issuedSecrets();
    const isAccessToken = (secret: string): boolean =>
      /^[\w-]+\.[\w-]+\.[\w-]+$/.test(secret) && decodeJwt(secret).payload.ver === "1.0";
    // Ours: at least the two device codes, three refreshes and two sign-ins' tokens.
    expect(secrets.filter((secret) => secret.startsWith("DAQABIQEAAAD")).length).toBeGreaterThanOrEqual(2);
    expect(secrets.filter(isAccessToken).length).toBeGreaterThanOrEqual(5);
    const leaks = (text: string, allowed: (secret: string) => boolean): string[] =>
      secrets
        .filter((secret) => !allowed(secret) && text.includes(secret))
        .map((secret) => secret.slice(0, 12));
    for (const { result, mayShowAccessToken } of runs) {
      expect(leaks(result.stderr, () => false)).toEqual([]);
      expect(leaks(result.stdout, (secret) => mayShowAccessToken && isAccessToken(secret))).toEqual([]);
    }
    for (const entry of walk(box.home).filter((e) => !e.isDirectory)) {
      expect({ file: entry.path, leaks: leaks(readText(entry.path), () => false) }).toEqual({
        file: entry.path,
        leaks: [],
      });
    }
    expectPrivateTree(box.home);
  });
});
