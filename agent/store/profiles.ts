import { dirname } from "node:path";
import { ensurePrivateDir, writeFileAtomic } from "../core/atomic.ts";
import { EntraToolError } from "../core/errors.ts";
import { MAX_CONFIG_FILE_BYTES, readFileCapped } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { SerialQueue } from "../core/serial.ts";
import { storeError } from "./errors.ts";
import { validateExpect } from "./expect.ts";
import { DOMAIN, GUID, isValidName, NAME_RULE } from "./names.ts";
import type { DirectoryLocks, Profile, ProfileStore } from "./types.ts";

export type ProfileValidation =
  | { readonly ok: true; readonly profile: Profile }
  | { readonly ok: false; readonly errors: readonly string[] };

const PROFILE_FIELDS = new Set([
  "name",
  "tenantId",
  "clientId",
  "scopes",
  "authorityHost",
  "defaultFlow",
  "expect",
]);
const TENANT_ALIASES = new Set(["organizations", "common", "consumers"]);

/**
 * Checks an untrusted value (a hand-edited profiles.json entry, CLI input) and returns either a
 * normalised Profile (authorityHost without trailing slash) or every problem at once, each message
 * starting with the field it is about. Unknown fields are errors too: they are usually typos
 * (`clientID`) that would otherwise be silently ignored.
 */
export function validateProfile(input: unknown): ProfileValidation {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, errors: ["profile: must be a JSON object"] };
  }
  const record = input as Record<string, unknown>;
  const errors: string[] = [];

  const { name, tenantId, clientId, scopes, authorityHost, defaultFlow } = record;
  if (typeof name !== "string" || !isValidName(name)) {
    errors.push(`name: must be ${NAME_RULE}`);
  }
  if (
    typeof tenantId !== "string" ||
    !(GUID.test(tenantId) || TENANT_ALIASES.has(tenantId) || DOMAIN.test(tenantId))
  ) {
    errors.push(
      "tenantId: must be a GUID, a domain name such as contoso.onmicrosoft.com, or one of organizations, common, consumers",
    );
  }
  if (typeof clientId !== "string" || !GUID.test(clientId)) {
    errors.push("clientId: must be the app registration's application (client) id, a GUID");
  }
  if (!Array.isArray(scopes)) {
    errors.push("scopes: must be a list of scope strings (may be empty)");
  } else {
    scopes.forEach((scope: unknown, index) => {
      if (typeof scope !== "string" || scope === "" || /\s/.test(scope)) {
        errors.push(`scopes[${index}]: must be a non-empty scope without spaces, e.g. User.Read`);
      }
    });
  }
  const host = normaliseAuthorityHost(authorityHost);
  if (host === undefined) {
    errors.push(
      "authorityHost: must be an https:// URL with no path or query, e.g. https://login.microsoftonline.com",
    );
  }
  if (defaultFlow !== "device-code") {
    errors.push('defaultFlow: must be "device-code" (the only flow entratool supports)');
  }
  const expected = record.expect === undefined ? undefined : validateExpect(record.expect);
  if (expected?.ok === false) errors.push(...expected.errors);
  for (const key of Object.keys(record)) {
    if (!PROFILE_FIELDS.has(key)) errors.push(`${key}: unknown field`);
  }

  if (errors.length > 0 || host === undefined) return { ok: false, errors };
  return {
    ok: true,
    profile: {
      name: name as string,
      tenantId: tenantId as string,
      clientId: clientId as string,
      scopes: [...(scopes as string[])],
      authorityHost: host,
      defaultFlow: "device-code",
      // Absent rather than undefined, so that the file and `list-profiles --output json` omit it.
      ...(expected?.ok ? { expect: expected.expect } : {}),
    },
  };
}

/** `https://host[:port]` without a trailing slash, or undefined when not an acceptable authority host. */
function normaliseAuthorityHost(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const clean =
    url.protocol === "https:" &&
    url.username === "" &&
    url.password === "" &&
    url.pathname === "/" &&
    !value.includes("?") &&
    !value.includes("#");
  return clean ? url.origin : undefined;
}

interface ProfilesFile {
  readonly version: 1;
  readonly profiles: readonly Profile[];
}

export interface JsonProfileStoreOptions {
  /** paths.profilesFile. Its directory is created 0700 on the first write. */
  readonly file: string;
  readonly logger: Logger;
  /** Every change is a read-modify-write under the lock of the file's directory. */
  readonly locks: DirectoryLocks;
}

/** A profiles file holds a few hundred bytes a profile; this bounds the memory a bad path can take. */
export const MAX_PROFILES_FILE_BYTES = MAX_CONFIG_FILE_BYTES;

/** How many problems an E_CONFIG message lists (the rest are counted). */
const SHOWN_PROBLEMS = 3;

/**
 * Profiles in one plain JSON file `{ "version": 1, "profiles": [...] }` (0600): no secrets, but
 * the user may edit it. An absent file means no profiles. A file that is not valid JSON or fails
 * validation is E_CONFIG naming the file and the first problems, and is left where it is for the
 * user to fix (unlike the token store, it is not set aside).
 *
 * Operations of one instance run one after another, and every change (create, delete) reads,
 * changes and replaces the file holding the lock of its directory, so changes made by several
 * processes at once are all kept. Reads take no lock: the file is replaced atomically.
 */
export class JsonProfileStore implements ProfileStore {
  readonly #file: string;
  readonly #logger: Logger;
  readonly #locks: DirectoryLocks;
  /** Serialises the operations of this instance (the lock serialises processes). */
  readonly #queue = new SerialQueue();

  constructor(options: JsonProfileStoreOptions) {
    this.#file = options.file;
    this.#logger = options.logger;
    this.#locks = options.locks;
  }

  list(): Promise<Profile[]> {
    return this.#queue.run(async () => [...(await this.#read())]);
  }

  get(name: string): Promise<Profile | undefined> {
    return this.#queue.run(async () => (await this.#read()).find((profile) => profile.name === name));
  }

  create(profile: Profile): Promise<void> {
    return this.#queue.run(async () => {
      const checked = validateProfile(profile);
      if (!checked.ok) {
        throw new EntraToolError("E_CONFIG", {
          message: `Invalid profile: ${summarise(checked.errors)}.`,
          details: { errors: checked.errors },
        });
      }
      await this.#underLock(async () => {
        const profiles = await this.#read();
        if (profiles.some((existing) => existing.name === checked.profile.name)) {
          throw new EntraToolError("E_PROFILE_EXISTS", {
            message: `A profile named '${checked.profile.name}' already exists. Delete it first or choose another name.`,
          });
        }
        await this.#write([...profiles, checked.profile]);
      });
      this.#logger.info({ profile: checked.profile.name }, "Profile created");
    });
  }

  delete(name: string): Promise<boolean> {
    return this.#queue.run(async () => {
      // Nothing to delete needs no lock, and must not create the directory for it.
      if (!(await this.#read()).some((profile) => profile.name === name)) return false;
      const deleted = await this.#underLock(async () => {
        const profiles = await this.#read();
        const remaining = profiles.filter((profile) => profile.name !== name);
        if (remaining.length === profiles.length) return false;
        await this.#write(remaining);
        return true;
      });
      if (deleted) this.#logger.info({ profile: name }, "Profile deleted");
      return deleted;
    });
  }

  /** Runs a read-modify-write of the file holding its directory's lock (made 0700 when missing). */
  async #underLock<T>(change: () => Promise<T>): Promise<T> {
    const dir = dirname(this.#file);
    try {
      await ensurePrivateDir(dir);
    } catch (error) {
      throw storeError(dir, "create the configuration directory", error);
    }
    const lock = await this.#locks.lockDirectory(dir);
    try {
      return await change();
    } finally {
      await lock.release();
    }
  }

  async #read(): Promise<Profile[]> {
    let text: string;
    try {
      text = (await readFileCapped(this.#file, MAX_PROFILES_FILE_BYTES)).toString("utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return [];
      if (code === "EFBIG") {
        throw new EntraToolError("E_CONFIG", {
          message: `The profiles file ${this.#file} is larger than ${MAX_PROFILES_FILE_BYTES / 1024 / 1024} MiB, more than any profiles file needs: fix it, or remove it to start without profiles.`,
          details: { file: this.#file, limit: MAX_PROFILES_FILE_BYTES },
        });
      }
      throw storeError(this.#file, "read the profiles file", error);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new EntraToolError("E_CONFIG", {
        message: `The profiles file ${this.#file} is not valid JSON (${(error as Error).message}). Fix it, or remove it to start without profiles.`,
        cause: error,
      });
    }
    const checked = parseProfilesFile(parsed);
    if (!checked.ok) {
      throw new EntraToolError("E_CONFIG", {
        message: `The profiles file ${this.#file} is invalid: ${summarise(checked.errors)}. Fix it, or remove it to start without profiles.`,
        details: { file: this.#file, errors: checked.errors },
      });
    }
    return checked.profiles;
  }

  async #write(profiles: readonly Profile[]): Promise<void> {
    const document: ProfilesFile = { version: 1, profiles };
    try {
      await writeFileAtomic(this.#file, `${JSON.stringify(document, null, 2)}\n`, 0o600);
    } catch (error) {
      throw storeError(this.#file, "write the profiles file", error);
    }
  }
}

function parseProfilesFile(
  value: unknown,
): { ok: true; profiles: Profile[] } | { ok: false; errors: readonly string[] } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, errors: ['must be an object { "version": 1, "profiles": [...] }'] };
  }
  const { version, profiles } = value as { version?: unknown; profiles?: unknown };
  const errors: string[] = [];
  if (version !== 1) errors.push(`version: must be 1 (found ${JSON.stringify(version) ?? "nothing"})`);
  if (!Array.isArray(profiles)) {
    errors.push("profiles: must be a list");
    return { ok: false, errors };
  }
  const valid: Profile[] = [];
  const seen = new Set<string>();
  profiles.forEach((entry: unknown, index) => {
    const checked = validateProfile(entry);
    if (!checked.ok) {
      for (const error of checked.errors) errors.push(`profiles[${index}].${error}`);
      return;
    }
    if (seen.has(checked.profile.name)) {
      errors.push(`profiles[${index}].name: '${checked.profile.name}' is used twice`);
    }
    seen.add(checked.profile.name);
    valid.push(checked.profile);
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, profiles: valid };
}

function summarise(errors: readonly string[]): string {
  const shown = errors.slice(0, SHOWN_PROBLEMS).join("; ");
  const more = errors.length - SHOWN_PROBLEMS;
  return more > 0 ? `${shown}; and ${more} more` : shown;
}
