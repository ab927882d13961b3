import { copyFile, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PublicClientApplication, TokenCacheContext } from "@azure/msal-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import type { KeyProvider } from "../../agent/store/key.ts";
import { FileTokenStore } from "../../agent/store/token-store.ts";
import { captureLogger, filesContaining, keyProvider as makeKeyProvider, makeTempDir } from "./helpers.ts";

const CLIENT_ID = "11111111-2222-3333-4444-555555555555";
const TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const HOME = `00000000-0000-0000-0000-000000000001.${TENANT}`;
const ENV = "login.microsoftonline.com";

/** An MSAL cache (its own JSON schema) holding one account and one refresh token. */
function msalCacheWith(refreshToken: string): string {
  return JSON.stringify({
    Account: {
      [`${HOME}-${ENV}-${TENANT}`]: {
        home_account_id: HOME,
        environment: ENV,
        realm: TENANT,
        local_account_id: "00000000-0000-0000-0000-000000000001",
        username: "pi@contoso.onmicrosoft.com",
        authority_type: "MSSTS",
        name: "Pi User",
      },
    },
    IdToken: {},
    AccessToken: {},
    RefreshToken: {
      [`${HOME}-${ENV}-refreshtoken-${CLIENT_ID}--`]: {
        home_account_id: HOME,
        environment: ENV,
        credential_type: "RefreshToken",
        client_id: CLIENT_ID,
        secret: refreshToken,
      },
    },
    AppMetadata: {},
  });
}

describe("FileTokenStore", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let tokensDir: string;
  let keyProvider: KeyProvider;
  let log: ReturnType<typeof captureLogger>;
  let clock: VirtualClock;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    tokensDir = join(dir, "state", "tokens");
    log = captureLogger();
    clock = new VirtualClock();
    keyProvider = makeKeyProvider({ keyFile: join(dir, "state", "store.key"), logger: log.logger, clock });
  });
  afterEach(() => cleanup());

  const store = () => new FileTokenStore({ tokensDir, keyProvider, logger: log.logger, clock });
  const app = (profile = "work") =>
    new PublicClientApplication({
      auth: { clientId: CLIENT_ID, authority: `https://${ENV}/${TENANT}` },
      cache: { cachePlugin: store().cachePlugin(profile) },
    });
  /** What MSAL does after a sign-in or refresh: the in-memory cache changed, so persist it. */
  const save = async (pca: PublicClientApplication, profile: string, msalCache: string) => {
    const cache = pca.getTokenCache();
    cache.deserialize(msalCache);
    await store().cachePlugin(profile).afterCacheAccess(new TokenCacheContext(cache, true));
  };

  it("persists MSAL's cache encrypted; after a rotation only the new refresh token exists, nowhere in plaintext", async () => {
    const writer = app();
    await save(writer, "work", msalCacheWith("RT-SECRET-1"));
    expect(await readdir(tokensDir)).toEqual(["work.cache"]);
    expect(await filesContaining(dir, "RT-SECRET-1")).toEqual([]);

    await save(writer, "work", msalCacheWith("RT-SECRET-2"));
    expect(await filesContaining(dir, "RT-SECRET-1")).toEqual([]);
    expect(await filesContaining(dir, "RT-SECRET-2")).toEqual([]);
    expect(await readdir(tokensDir)).toEqual(["work.cache"]);
    expect((await stat(join(tokensDir, "work.cache"))).mode & 0o777).toBe(0o600);

    // A new process (a fresh MSAL app) loads it from disk through beforeCacheAccess.
    const reader = app();
    const accounts = await reader.getTokenCache().getAllAccounts();
    expect(accounts.map((account) => account.homeAccountId)).toEqual([HOME]);
    const loaded = reader.getTokenCache().serialize();
    expect(loaded).toContain("RT-SECRET-2");
    expect(loaded).not.toContain("RT-SECRET-1");
    expect(log.raw.join("")).not.toMatch(/RT-SECRET/);
  });

  it("does not write when MSAL reports no change", async () => {
    const pca = app();
    pca.getTokenCache().deserialize(msalCacheWith("RT-SECRET-1"));
    await store().cachePlugin("work").afterCacheAccess(new TokenCacheContext(pca.getTokenCache(), false));
    await expect(stat(tokensDir)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("keeps profiles apart", async () => {
    await save(app("work"), "work", msalCacheWith("RT-WORK"));
    await save(app("lab"), "lab", msalCacheWith("RT-LAB"));
    const lab = app("lab");
    await lab.getTokenCache().getAllAccounts();
    expect(lab.getTokenCache().serialize()).toContain("RT-LAB");
    expect(lab.getTokenCache().serialize()).not.toContain("RT-WORK");
  });

  it("starts signed out without a file", async () => {
    const pca = app();
    expect(await pca.getTokenCache().getAllAccounts()).toEqual([]);
  });

  it("remove() deletes the profile's tokens (and only that profile's)", async () => {
    await save(app(), "work", msalCacheWith("RT-SECRET-1"));
    await save(app("other"), "other", msalCacheWith("RT-OTHER"));
    expect(await app().getTokenCache().getAllAccounts()).toHaveLength(1);
    // A set-aside copy and a temp file left by a crash belong to the profile too.
    await writeFile(join(tokensDir, "work.cache.corrupt-2026-11-27T12-00-00.000Z"), "x");
    await writeFile(join(tokensDir, "work.cache.corrupt-2026-11-27T12-00-00.000Z-1"), "x");
    await writeFile(join(tokensDir, ".work.cache.0123456789ab.tmp"), "x");
    // Another profile's copies, and a name that only looks like one, stay.
    await writeFile(join(tokensDir, "other.cache.corrupt-2026-11-27T12-00-00.000Z"), "x");
    await writeFile(join(tokensDir, "work.cache.corrupt-by-hand"), "x");

    expect(await store().remove("work")).toBe(true);
    expect((await readdir(tokensDir)).sort()).toEqual([
      "other.cache",
      "other.cache.corrupt-2026-11-27T12-00-00.000Z",
      "work.cache.corrupt-by-hand",
    ]);
    expect(await app().getTokenCache().getAllAccounts()).toEqual([]);
    expect(await app("other").getTokenCache().getAllAccounts()).toHaveLength(1);
    expect(await store().remove("work")).toBe(false);
  });

  it("remove() of a profile that never signed in is false", async () => {
    expect(await store().remove("never")).toBe(false);
  });

  it("reads a corrupt cache as signed out and sets it aside", async () => {
    await save(app(), "work", msalCacheWith("RT-SECRET-1"));
    const file = join(tokensDir, "work.cache");
    await writeFile(file, (await readFile(file)).subarray(0, 30));
    expect(await app().getTokenCache().getAllAccounts()).toEqual([]);
    expect((await readdir(tokensDir)).some((name) => name.startsWith("work.cache.corrupt-"))).toBe(true);
    expect(log.records.some((record) => record.level === "warn")).toBe(true);
  });

  it("does not accept one profile's cache file copied over another's", async () => {
    await save(app("work"), "work", msalCacheWith("RT-WORK"));
    await save(app("lab"), "lab", msalCacheWith("RT-LAB"));
    await copyFile(join(tokensDir, "work.cache"), join(tokensDir, "lab.cache"));

    expect(await store().readCache("lab")).toBeUndefined();
    expect((await readdir(tokensDir)).filter((name) => name.startsWith("lab.cache.corrupt-"))).toHaveLength(
      1,
    );
    expect(await store().readCache("work")).toContain("RT-WORK");
  });

  it.each(["../escape", "a/b", "", ".hidden", "x".repeat(65), "white space"])(
    "rejects the profile name %j with E_CONFIG before touching the disk",
    async (name) => {
      expect(() => store().cachePlugin(name)).toThrow(expect.objectContaining({ code: "E_CONFIG" }));
      await expect(store().remove(name)).rejects.toMatchObject({ code: "E_CONFIG" });
      await expect(stat(tokensDir)).rejects.toMatchObject({ code: "ENOENT" });
    },
  );
});
