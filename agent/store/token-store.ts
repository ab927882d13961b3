import { readdir, unlink } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ICachePlugin, TokenCacheContext } from "@azure/msal-node";
import { fsyncDir, isTempFileOf } from "../core/atomic.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { isSetAsideOf } from "../core/set-aside.ts";
import { EncryptedFileAdapter } from "./encrypted-adapter.ts";
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

  constructor(options: FileTokenStoreOptions) {
    this.#options = options;
  }

  /** Throws E_CONFIG for an invalid profile name, before any path is built. */
  cachePlugin(profile: string): ICachePlugin {
    const adapter = this.#adapter(profile);
    const logger = this.#options.logger;
    return {
      beforeCacheAccess: async (context: TokenCacheContext): Promise<void> => {
        // A fresh Low per access: Low.read() keeps the previous data when the file is absent.
        const { Low } = await import("lowdb");
        const db = new Low<TokenCacheDocument>(adapter, { version: 1, msalCache: "" });
        await db.read();
        // No (usable) file: nothing to load. MSAL's deserialize only adds entries, never removes,
        // so it could not clear an app's in-memory cache anyway (see the class comment).
        if (db.data.msalCache !== "") context.tokenCache.deserialize(db.data.msalCache);
      },
      afterCacheAccess: async (context: TokenCacheContext): Promise<void> => {
        if (!context.cacheHasChanged) return;
        const { Low } = await import("lowdb");
        const db = new Low<TokenCacheDocument>(adapter, {
          version: 1,
          msalCache: context.tokenCache.serialize(),
        });
        await db.write();
        logger.debug({ profile, path: adapter.path }, "Token cache saved");
      },
    };
  }

  async readCache(profile: string): Promise<string | undefined> {
    const document = await this.#adapter(profile).read();
    return document && document.msalCache !== "" ? document.msalCache : undefined;
  }

  /**
   * Deletes the profile's cache file, and with it any set-aside `.corrupt-*` copy and any temp file
   * a crashed write left, then syncs the directory. true when anything was deleted.
   */
  async remove(profile: string): Promise<boolean> {
    const path = this.#path(profile);
    const { tokensDir } = this.#options;
    let entries: string[];
    try {
      entries = await readdir(tokensDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw storeError(tokensDir, "read the token directory", error);
    }
    const name = basename(path);
    const doomed = entries.filter(
      (entry) => entry === name || isSetAsideOf(path, entry) || isTempFileOf(path, entry),
    );
    let removed = false;
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
    });
  }
}
