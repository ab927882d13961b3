import type { ICachePlugin } from "@azure/msal-node";

/** A profile: which app, which tenant, which permissions. Holds no secret. */
export interface Profile {
  readonly name: string;
  /** GUID, verified domain, or one of `organizations`, `common`, `consumers`. */
  readonly tenantId: string;
  /** The app registration's application (client) id: a GUID. */
  readonly clientId: string;
  /** Delegated permissions requested when `--scope` is not given. May be empty. */
  readonly scopes: readonly string[];
  /** e.g. `https://login.microsoftonline.com`; sovereign clouds have other hosts. No trailing slash. */
  readonly authorityHost: string;
  readonly defaultFlow: "device-code";
  /** Which accounts may sign in to this profile; any account when absent. See ./expect.ts. */
  readonly expect?: ProfileExpect;
}

/**
 * An account binding: a device set up for one person or one organisation refuses a sign-in by
 * anyone else (a code typed by the wrong person). At least one of the two is given.
 */
export interface ProfileExpect {
  /** The tenant (directory) the account must be in: a GUID, compared in any case. */
  readonly tenantId?: string;
  /**
   * Who may sign in: a full username (`ada@contoso.com`, compared in any case) or `@contoso.com`
   * for anyone of that domain. Not empty.
   */
  readonly users?: readonly string[];
}

/** Profiles on disk (`profiles.json`). Validates on read and write; errors are EntraToolError E_CONFIG. */
export interface ProfileStore {
  list(): Promise<Profile[]>;
  /** undefined when absent. */
  get(name: string): Promise<Profile | undefined>;
  /** Creates; throws E_PROFILE_EXISTS if the name is taken. */
  create(profile: Profile): Promise<void>;
  /** true when something was deleted. */
  delete(name: string): Promise<boolean>;
}

/**
 * The encrypted, per-profile MSAL token cache. One instance serves the CLI and (later) the
 * daemon; it keeps no process-global state, and per instance only the caches it could not save.
 */
export interface TokenStore {
  /** The MSAL cache plugin that loads and saves `profile`'s cache through the encrypted adapter. */
  cachePlugin(profile: string): ICachePlugin;
  /**
   * MSAL's serialized cache of `profile` as it is on disk, for read-only use; undefined when there
   * is none, or it was unusable (set aside, unless a writer replaced it during the read: then it is
   * left alone). Needs no lock: files are replaced atomically. An undefined here is not proof of
   * "signed out"; the authoritative answer is MSAL's read through `cachePlugin` under the lock.
   */
  readCache(profile: string): Promise<string | undefined>;
  /**
   * Starts, in the background, what reading any profile's tokens needs (the store's key), so that
   * it happens while the caller does something else (get-token reads the profile meanwhile). A
   * hint: it changes nothing on disk and never fails; the read itself reports what is wrong.
   */
  preload?(): void;
  /**
   * Removes every token of `profile` from disk (logout, delete-profile), and its unsaved cache.
   * true when something was removed.
   */
  remove(profile: string): Promise<boolean>;
  /**
   * Whether this instance holds a cache of `profile` that MSAL changed (a sign-in, a refresh) but
   * that could not be saved (a full disk): the plugin keeps it in memory rather than lose tokens
   * the identity provider already issued, and serves the profile from it.
   */
  hasUnsaved(profile: string): boolean;
  /**
   * Saves the unsaved cache of `profile`, if any (a no-op otherwise). Throws the E_STORE error
   * when it still cannot be saved; the cache then stays unsaved.
   */
  flush(profile: string): Promise<void>;
}

/** A held lock. `release` is idempotent. */
export interface Lock {
  release(): Promise<void>;
}

export interface LockOptions {
  /** Aborting stops the wait and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called once, when the lock is busy and we start waiting (to tell the user why nothing happens). */
  readonly onWait?: () => void;
}

/**
 * Exclusive, cross-process, per-name locks that a killed holder cannot leave behind
 * (the kernel drops them with the process).
 */
export interface LockManager {
  acquire(name: string, options?: LockOptions): Promise<Lock>;
}

/**
 * Exclusive, cross-process locks on a directory itself, for read-modify-writes of the store's own
 * files in it (the profiles file, the key file). Like LockManager's, a killed holder cannot leave
 * one behind. Held for a few file operations only, with no other lock taken meanwhile (a profile's
 * lock may be held around one, never the other way round), so they cannot deadlock.
 */
export interface DirectoryLocks {
  /** `dir` must exist. */
  lockDirectory(dir: string, options?: LockOptions): Promise<Lock>;
}
