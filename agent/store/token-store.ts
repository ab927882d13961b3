import type { ICachePlugin, TokenCacheContext } from "@azure/msal-node";
import { fsyncDir, isTempFileOf } from "../core/atomic.ts";
import type { Clock } from "../core/clock.ts";
import { errnoCode } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { basename, join } from "../core/path.ts";
import { isSetAsideOf } from "../core/set-aside.ts";
import { EncryptedFileAdapter, type FileWriter } from "./encrypted-adapter.ts";
import { storeError } from "./errors.ts";
import type { KeyProvider } from "./key.ts";
import { assertValidName } from "./names.ts";
import type { TokenStore } from "./types.ts";

/** What one profile's encrypted file holds. `msalCache` is MSAL's own serialisation, kept opaque. */
export interface TokenCacheDocument {
  readonly version: 1;
  readonly msalCache: string;
}

/** The adapter's validator: `msalCache` must itself be a JSON object, or MSAL's deserialize would throw. */
export function isTokenCacheDocument(value: unknown): value is TokenCacheDocument {
  if (typeof value !== "object" || value === null) return false;
  const { version, msalCache } = value as { version?: unknown; msalCache?: unknown };
  if (version !== 1 || typeof msalCache !== "string") return false;
  try {
    const parsed: unknown = JSON.parse(msalCache);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed);
  } catch {
    return false;
  }
}

export interface FileTokenStoreOptions {
  /** paths.tokensDir; created 0700 on the first write. */
  readonly tokensDir: string;
  readonly keyProvider: KeyProvider;
  readonly logger: Logger;
  readonly clock: Clock;
  /** The durable write of a token file; writeFileAtomic unless a test simulates a full disk. */
  readonly writeFile?: FileWriter;
  /**
   * The directory a person named for entratool's state (Paths.stateRoot: ENTRATOOL_HOME or the
   * state directory): it and everything below it must be private (see ensurePrivateDir).
   */
  readonly privateRoot?: string;
}

/**
 * lowdb is imported where MSAL reads and writes (`Low` around our adapter), not at the top: a
 * cached `get-token` reads through the adapter alone and should not pay for loading it.
 *
 * One encrypted file per profile, `<tokensDir>/<profile>.cache`, holding MSAL's token cache.
 * Every write replaces the whole file atomically, so after a refresh the rotated-out refresh token
 * is gone from disk (not just superseded). Nothing is cached here between MSAL's accesses: each
 * `beforeCacheAccess` reads the disk, so a logout or refresh by another process is seen.
 *
 * Except when a save fails. Refresh tokens are single use: once the identity provider answered a
 * refresh, the old one on disk is dead, and the answer must not be lost because the disk is full.
 * So `afterCacheAccess` never throws (msal-node would drop the result): the cache it could not save
 * is kept as the profile's unsaved cache, one warning is logged, and this instance serves that
 * profile from the unsaved copy (`beforeCacheAccess`, `readCache`) until a save succeeds: on the
 * next access of MSAL, or `flush`. Other processes still see the file, which is stale meanwhile.
 *
 * Contracts for callers:
 * - Cross-process read-modify-write races are not handled here: hold the profile's lock
 *   (LockManager) around a sign-in, refresh or logout.
 * - MSAL's `deserialize` merges into its in-memory cache and `serialize` merges back, so a
 *   PublicClientApplication that lives across a logout (or a set-aside corrupt file) still holds
 *   the old tokens in memory and would write them back on its next change. Create a fresh
 *   PublicClientApplication per operation (cheap), or drop it after `remove`.
 */
export class FileTokenStore implements TokenStore {
  readonly #options: FileTokenStoreOptions;
  /** Profile → MSAL's serialized cache that could not be saved (see the class comment). */
  readonly #unsaved = new Map<string, string>();

  constructor(options: FileTokenStoreOptions) {
    this.#options = options;
  }

  /** Throws E_CONFIG for an invalid profile name, before any path is built. */
  cachePlugin(profile: string): ICachePlugin {
    const adapter = this.#adapter(profile);
    return {
      beforeCacheAccess: async (context: TokenCacheContext): Promise<void> => {
        const unsaved = this.#unsaved.get(profile);
        if (unsaved !== undefined) {
          // Newer than the file, which may hold a refresh token already redeemed.
          context.tokenCache.deserialize(unsaved);
          return;
        }
        // A fresh Low per access: Low.read() keeps the previous data when the file is absent.
        const { Low } = await import("lowdb");
        const db = new Low<TokenCacheDocument>(adapter, { version: 1, msalCache: "" });
        await db.read();
        // No (usable) file: nothing to load. MSAL's deserialize only adds entries, never removes,
        // so it could not clear an app's in-memory cache anyway (see the class comment).
        if (db.data.msalCache !== "") context.tokenCache.deserialize(db.data.msalCache);
      },
      afterCacheAccess: async (context: TokenCacheContext): Promise<void> => {
        const pending = this.#unsaved.has(profile);
        // An unsaved cache is saved at the next access, changed or not.
        if (!context.cacheHasChanged && !pending) return;
        await this.#save(profile, adapter, context.tokenCache.serialize(), pending);
      },
    };
  }

  async readCache(profile: string): Promise<string | undefined> {
    const adapter = this.#adapter(profile);
    const unsaved = this.#unsaved.get(profile);
    if (unsaved !== undefined) return unsaved;
    const document = await adapter.read();
    return document && document.msalCache !== "" ? document.msalCache : undefined;
  }

  preload(): void {
    // Never rejects: nothing to wait for or catch.
    void this.#options.keyProvider.preload?.();
  }

  hasUnsaved(profile: string): boolean {
    return this.#unsaved.has(profile);
  }

  async flush(profile: string): Promise<void> {
    const adapter = this.#adapter(profile);
    const unsaved = this.#unsaved.get(profile);
    if (unsaved === undefined) return;
    await adapter.write({ version: 1, msalCache: unsaved });
    // Unless an access of MSAL put a newer one there while this was written.
    if (this.#unsaved.get(profile) === unsaved) this.#unsaved.delete(profile);
    this.#options.logger.info({ profile, path: adapter.path }, "Unsaved token cache saved");
  }

  /** Never throws: a cache that cannot be saved is kept as the profile's unsaved cache. */
  async #save(
    profile: string,
    adapter: EncryptedFileAdapter<TokenCacheDocument>,
    msalCache: string,
    pending: boolean,
  ): Promise<void> {
    const { logger } = this.#options;
    try {
      const { Low } = await import("lowdb");
      await new Low<TokenCacheDocument>(adapter, { version: 1, msalCache }).write();
    } catch (error) {
      this.#unsaved.set(profile, msalCache);
      const code = errorCode(error);
      const fields = { profile, path: adapter.path, code, reason: (error as Error).message };
      // Said once, when the profile's tokens stop being saved, not at every access after.
      if (pending) {
        logger.debug(fields, "Token cache still not saved; kept in memory");
      } else {
        logger.warn(
          fields,
          `The tokens of profile '${profile}' could not be saved to ${adapter.path} (${code}); they are kept in memory and saving will be tried again.`,
        );
      }
      return;
    }
    this.#unsaved.delete(profile);
    if (pending) logger.info({ profile, path: adapter.path }, "Unsaved token cache saved");
    else logger.debug({ profile, path: adapter.path }, "Token cache saved");
  }

  /**
   * Deletes the profile's cache file, and with it any set-aside `.corrupt-*` copy and any temp file
   * a crashed write left, then syncs the directory. true when anything was deleted.
   */
  async remove(profile: string): Promise<boolean> {
    const path = this.#path(profile);
    const { tokensDir } = this.#options;
    const dropped = this.#unsaved.delete(profile);
    // Loaded here: a removal is rare, and node:fs at the top would cost every start (core/atomic.ts).
    const { readdir, unlink } = await import("node:fs/promises");
    let entries: string[];
    try {
      entries = await readdir(tokensDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return dropped;
      throw storeError(tokensDir, "read the token directory", error);
    }
    const name = basename(path);
    const doomed = entries.filter(
      (entry) => entry === name || isSetAsideOf(path, entry) || isTempFileOf(path, entry),
    );
    let removed = dropped;
    for (const entry of doomed) {
      try {
        await unlink(join(tokensDir, entry));
        removed = true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT")
          throw storeError(join(tokensDir, entry), "remove the token file", error);
      }
    }
    if (removed) {
      try {
        await fsyncDir(tokensDir);
      } catch (error) {
        throw storeError(tokensDir, "sync the token directory", error);
      }
      this.#options.logger.info({ profile }, "Tokens removed from disk");
    }
    return removed;
  }

  #path(profile: string): string {
    assertValidName(profile);
    return join(this.#options.tokensDir, `${profile}.cache`);
  }

  #adapter(profile: string): EncryptedFileAdapter<TokenCacheDocument> {
    return new EncryptedFileAdapter<TokenCacheDocument>({
      path: this.#path(profile),
      keyProvider: this.#options.keyProvider,
      logger: this.#options.logger,
      clock: this.#options.clock,
      validate: isTokenCacheDocument,
      ...(this.#options.writeFile === undefined ? {} : { writeFile: this.#options.writeFile }),
      ...(this.#options.privateRoot === undefined ? {} : { privateRoot: this.#options.privateRoot }),
    });
  }
}

/** The errno code an E_STORE error was made from (ENOSPC, EIO...), or its own code. */
function errorCode(error: unknown): string {
  return errnoCode((error as { cause?: unknown }).cause) ?? errnoCode(error) ?? "error";
}
