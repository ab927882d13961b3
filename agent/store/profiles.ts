import * as v from "valibot";
import { ensurePrivateDir, writeFileAtomic } from "../core/atomic.ts";
import { EntraToolError } from "../core/errors.ts";
import { MAX_CONFIG_FILE_BYTES, readFileCapped } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { dirname } from "../core/path.ts";
import { formatIssues, must, pathItem, strict } from "../core/schema.ts";
import { SerialQueue } from "../core/serial.ts";
import { storeError } from "./errors.ts";
import { ExpectSchema } from "./expect.ts";
import { DOMAIN, GUID, isValidName, NAME_RULE } from "./names.ts";
import type { DirectoryLocks, Profile, ProfileStore } from "./types.ts";

export type ProfileValidation =
  | { readonly ok: true; readonly profile: Profile }
  | { readonly ok: false; readonly errors: readonly string[] };

const TENANT_ALIASES = new Set(["organizations", "common", "consumers"]);
const TENANT_RULE =
  "a GUID, a domain name such as contoso.onmicrosoft.com, or one of organizations, common, consumers";
const CLIENT_RULE = "the app registration's application (client) id, a GUID";
const SCOPE_RULE = "a non-empty scope without spaces, e.g. User.Read";
const SCOPES_RULE = "a list of scope strings (may be empty)";
const HOST_RULE = "an https:// URL with no path or query, e.g. https://login.microsoftonline.com";
const FLOW_RULE = '"device-code" (the only flow entratool supports)';

/** A string that passes `test`, with one sentence for anything else. */
function text(rule: string, test: (value: string) => boolean) {
  return v.pipe(v.string(must(rule)), v.check(test, must(rule)));
}

/**
 * One profile (an entry of profiles.json, or what create-profile builds), valibot like every
 * configuration file. The output is normalised: authorityHost without a trailing slash.
 */
export const ProfileSchema = strict(
  {
    name: text(NAME_RULE, isValidName),
    tenantId: text(TENANT_RULE, (t) => GUID.test(t) || TENANT_ALIASES.has(t) || DOMAIN.test(t)),
    clientId: text(CLIENT_RULE, (c) => GUID.test(c)),
    scopes: v.array(
      text(SCOPE_RULE, (scope) => scope !== "" && !/\s/.test(scope)),
      must(SCOPES_RULE),
    ),
    authorityHost: v.pipe(
      text(HOST_RULE, (host) => normaliseAuthorityHost(host) !== undefined),
      v.transform((host) => normaliseAuthorityHost(host) as string),
    ),
    defaultFlow: v.literal("device-code", must(FLOW_RULE)),
    expect: v.optional(ExpectSchema),
  },
  {
    what: "a JSON object",
    required: {
      name: NAME_RULE,
      tenantId: TENANT_RULE,
      clientId: CLIENT_RULE,
      scopes: SCOPES_RULE,
      authorityHost: HOST_RULE,
      defaultFlow: FLOW_RULE,
    },
  },
);

/** The file: `{ "version": 1, "profiles": [...] }`, no two profiles with one name. */
const ProfilesFileSchema = strict(
  {
    version: v.literal(1, must("1")),
    profiles: v.pipe(
      v.array(ProfileSchema, must("a list")),
      v.rawCheck<v.InferOutput<typeof ProfileSchema>[]>(({ dataset, addIssue }) => {
        const list: unknown = dataset.value;
        if (!Array.isArray(list)) return;
        const seen = new Set<string>();
        list.forEach((profile: Profile, index) => {
          if (seen.has(profile.name)) {
            addIssue({
              message: `'${profile.name}' is used twice`,
              path: [pathItem(list, index, profile), pathItem(profile, "name", profile.name)],
            });
          }
          seen.add(profile.name);
        });
      }),
    ),
  },
  { what: 'an object { "version": 1, "profiles": [...] }', required: { version: "1", profiles: "a list" } },
);

/**
 * Checks an untrusted value (a hand-edited profiles.json entry, CLI input) and returns either a
 * normalised Profile or every problem at once, each message starting with the field it is about.
 * Unknown fields are errors too: they are usually typos (`clientID`) that would otherwise be
 * silently ignored.
 */
export function validateProfile(input: unknown): ProfileValidation {
  const result = v.safeParse(ProfileSchema, input);
  if (!result.success) return { ok: false, errors: formatIssues(result.issues, "profile").map(field) };
  return { ok: true, profile: result.output };
}

/** `profile.tenantId: …` → `tenantId: …`: a profile's problems start with its field. */
function field(error: string): string {
  return error.replace(/^profile\./, "");
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
  /**
   * The directory a person named for entratool's configuration (Paths.configRoot): it and
   * everything below it must be private (see ensurePrivateDir).
   */
  readonly privateRoot?: string;
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
  readonly #privateRoot: string | undefined;
  /** Serialises the operations of this instance (the lock serialises processes). */
  readonly #queue = new SerialQueue();

  constructor(options: JsonProfileStoreOptions) {
    this.#file = options.file;
    this.#logger = options.logger;
    this.#locks = options.locks;
    this.#privateRoot = options.privateRoot;
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
      await ensurePrivateDir(dir, this.#privateRoot);
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
  const result = v.safeParse(ProfilesFileSchema, value);
  if (!result.success) return { ok: false, errors: formatIssues(result.issues) };
  return { ok: true, profiles: result.output.profiles };
}

function summarise(errors: readonly string[]): string {
  const shown = errors.slice(0, SHOWN_PROBLEMS).join("; ");
  const more = errors.length - SHOWN_PROBLEMS;
  return more > 0 ? `${shown}; and ${more} more` : shown;
}
