/**
 * A refresh the identity provider completed is never thrown away: when the token file cannot be
 * saved (a full disk, simulated by the writer the store is given), the new cache is kept in memory
 * and used, through msal-node for real against the emulator, until a save succeeds.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { PublicClientApplication, TokenCacheContext } from "@azure/msal-node";
import { describe, expect, it } from "vitest";
import { writeFileAtomic } from "../../agent/core/atomic.ts";
import { systemClock } from "../../agent/core/clock.ts";
import { FileKeyProvider } from "../../agent/store/key.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { MachineIdentity } from "../../agent/store/machine.ts";
import { FileTokenStore } from "../../agent/store/token-store.ts";
import { CLIENT_ID, rejection, StateLog, type World, worldPerTest } from "../auth/world.ts";

const start = worldPerTest();

/** A disk that can be made full: the writer fails with ENOSPC, as write(2) would. */
class Disk {
  full = false;
  writes = 0;
  readonly write = async (path: string, data: Uint8Array, mode: number): Promise<void> => {
    this.writes++;
    if (this.full) {
      throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), {
        code: "ENOSPC",
        path,
      });
    }
    await writeFileAtomic(path, data, mode);
  };
}

/** The world's token store (same key, same files), writing through `disk`. */
function storeOn(w: World, disk: Disk): FileTokenStore {
  const keyProvider = new FileKeyProvider({
    keyFile: join(w.stateDir, "store.key"),
    credentialKeyFile: undefined,
    machineIdentity: new MachineIdentity({
      logger: w.logger,
      machineIdFiles: [join(w.dir, "machine", "machine-id")],
      serialNumberFile: join(w.dir, "machine", "serial-number"),
      cpuinfoFile: join(w.dir, "machine", "cpuinfo"),
    }),
    logger: w.logger,
    tokensDir: join(w.stateDir, "tokens"),
    locks: new FlockLockManager({
      locksDir: join(w.stateDir, "locks"),
      clock: systemClock,
      logger: w.logger,
    }),
    clock: w.clock,
  });
  return new FileTokenStore({
    tokensDir: join(w.stateDir, "tokens"),
    keyProvider,
    logger: w.logger,
    clock: w.clock,
    writeFile: disk.write,
  });
}

/** The files in the token directory (none when there is no directory). */
async function tokenFiles(w: World): Promise<string[]> {
  return readdir(join(w.stateDir, "tokens")).catch(() => []);
}

function warnings(w: World): Array<{ msg: string; code?: string }> {
  return w.logLines
    .map((line) => JSON.parse(line) as { level: string; msg: string; code?: string })
    .filter((record) => record.level === "warn");
}

describe("a token cache that cannot be saved", () => {
  it("keeps a completed refresh in memory, uses its new refresh token, and saves it on flush", async () => {
    const w = await start();
    const disk = new Disk();
    const store = storeOn(w, disk);
    const service = w.service({ tokenStore: store });
    const approve = new StateLog().on((state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    });
    await service.getToken(w.profile(), { onState: approve.onState });
    const [signedInRefreshToken] = w.refreshTokens();
    expect(store.hasUnsaved("default")).toBe(false);

    // The disk fills up; a refresh goes through at the identity provider.
    disk.full = true;
    const refreshed = await service.getToken(w.profile(), { forceRefresh: true, allowDeviceCode: false });
    expect(refreshed.fromCache).toBe(false);
    const afterFirst = w.refreshTokens();
    expect(afterFirst).toHaveLength(2);
    expect(store.hasUnsaved("default")).toBe(true);
    expect(warnings(w)).toEqual([
      expect.objectContaining({
        code: "ENOSPC",
        msg: `The tokens of profile 'default' could not be saved to ${join(w.stateDir, "tokens", "default.cache")} (ENOSPC); they are kept in memory and saving will be tried again.`,
      }),
    ]);
    // The file still holds the redeemed refresh token; this store serves the new one.
    expect(await w.storedCache()).toContain(signedInRefreshToken);
    expect(await store.readCache("default")).toContain(afterFirst[1]);
    expect(await service.getToken(w.profile())).toMatchObject({
      fromCache: true,
      accessToken: refreshed.accessToken,
    });

    // A second refresh redeems the unsaved refresh token (the one on disk is dead: it would fail
    // with invalid_grant, and no device code is allowed here), and still warns only once.
    const again = await service.getToken(w.profile(), { forceRefresh: true, allowDeviceCode: false });
    expect(again.accessToken).not.toBe(refreshed.accessToken);
    const afterSecond = w.refreshTokens();
    expect(afterSecond).toHaveLength(3);
    expect(warnings(w)).toHaveLength(1);

    // flush says why it still cannot save, and keeps the copy.
    const failed = await rejection(store.flush("default"));
    expect(failed.code).toBe("E_STORE");
    expect(failed.message).toContain("(ENOSPC). Free some disk space");
    expect(store.hasUnsaved("default")).toBe(true);

    disk.full = false;
    await store.flush("default");
    expect(store.hasUnsaved("default")).toBe(false);
    const stored = await w.storedCache();
    expect(stored).toContain(afterSecond[2]);
    expect(stored).not.toContain(afterSecond[1]);
    const writes = disk.writes;
    await store.flush("default");
    expect(disk.writes).toBe(writes);
    // Another process (a fresh store) now refreshes from the saved file.
    const fresh = await w.service().getToken(w.profile(), { forceRefresh: true, allowDeviceCode: false });
    expect(fresh.fromCache).toBe(false);
  });

  it("is saved at the next access of MSAL once the disk has room again, changed or not", async () => {
    const w = await start();
    const disk = new Disk();
    const store = storeOn(w, disk);
    const cache = () => new PublicClientApplication({ auth: { clientId: CLIENT_ID } }).getTokenCache();
    const withAccount = JSON.stringify({
      Account: {},
      IdToken: {},
      AccessToken: {},
      RefreshToken: {
        "home-login.microsoftonline.com-refreshtoken-client--": {
          home_account_id: "home",
          environment: "login.microsoftonline.com",
          credential_type: "RefreshToken",
          client_id: CLIENT_ID,
          secret: "RT-UNSAVED",
        },
      },
      AppMetadata: {},
    });
    const changed = cache();
    changed.deserialize(withAccount);
    disk.full = true;
    await store.cachePlugin("default").afterCacheAccess(new TokenCacheContext(changed, true));
    expect(store.hasUnsaved("default")).toBe(true);
    expect(await tokenFiles(w)).toEqual([]);

    // A later access of MSAL in this process loads the unsaved copy, not the (absent) file.
    const loaded = cache();
    await store.cachePlugin("default").beforeCacheAccess(new TokenCacheContext(loaded, false));
    expect(loaded.serialize()).toContain("RT-UNSAVED");

    disk.full = false;
    await store.cachePlugin("default").afterCacheAccess(new TokenCacheContext(loaded, false));
    expect(store.hasUnsaved("default")).toBe(false);
    expect(await w.storedCache()).toContain("RT-UNSAVED");
    expect(warnings(w)).toHaveLength(1);
  });

  it("is dropped by remove (logout), which then counts as removing something", async () => {
    const w = await start();
    const disk = new Disk();
    const store = storeOn(w, disk);
    const changed = new PublicClientApplication({ auth: { clientId: CLIENT_ID } }).getTokenCache();
    changed.deserialize(
      JSON.stringify({ Account: {}, IdToken: {}, AccessToken: {}, RefreshToken: {}, AppMetadata: {} }),
    );
    disk.full = true;
    await store.cachePlugin("default").afterCacheAccess(new TokenCacheContext(changed, true));
    expect(store.hasUnsaved("default")).toBe(true);

    expect(await store.remove("default")).toBe(true);
    expect(store.hasUnsaved("default")).toBe(false);
    expect(await store.readCache("default")).toBeUndefined();
    expect(await store.remove("default")).toBe(false);
    disk.full = false;
    await store.flush("default");
    expect(await tokenFiles(w)).toEqual([]);
  });
});
