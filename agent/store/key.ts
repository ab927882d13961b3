import { createFileExclusive, ensurePrivateDir } from "../core/atomic.ts";
import { bytes } from "../core/bytes.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError } from "../core/errors.ts";
import { readFileCapped, stat } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { dirname, join } from "../core/path.ts";
import { setAside } from "../core/set-aside.ts";
import { storeError } from "./errors.ts";
import { type MachineIdentitySource, UNKNOWN_MACHINE } from "./machine.ts";
import { isValidName } from "./names.ts";
import type { DirectoryLocks } from "./types.ts";

/** The token store's AES-256 key. */
export interface KeyProvider {
  /** 32 bytes. The same for the life of the provider; callers get their own copy. */
  getKey(): Promise<Buffer>;
  /**
   * Starts deriving the key in the background from what is already there, so that the first
   * `getKey` finds it ready. Only reads: a key file that is missing, damaged or too open, and any
   * failure, are left to `getKey`, which makes, repairs or reports them as it always does. Resolves
   * when it is done; never rejects.
   */
  preload?(): Promise<void>;
}

export interface FileKeyProviderOptions {
  /** The generated key (paths.keyFile): 32 random bytes, created 0600 in a 0700 directory when missing. */
  readonly keyFile: string;
  /** systemd credential (paths.credentialKeyFile); used instead of keyFile when the file exists. */
  readonly credentialKeyFile: string | undefined;
  readonly machineIdentity: MachineIdentitySource;
  readonly logger: Logger;
  /**
   * paths.tokensDir: the token files (`<profile>.cache`) this key encrypts. When the key file is
   * found damaged they are set aside with it, since no key can open them any more.
   */
  readonly tokensDir: string;
  /** Creating and replacing the key file happen under the lock of its directory. */
  readonly locks: DirectoryLocks;
  /** Names the set-aside files. */
  readonly clock: Clock;
  /**
   * The directory a person named for entratool's state (Paths.stateRoot: ENTRATOOL_HOME or the
   * state directory): it and everything below it must be private (see ensurePrivateDir).
   */
  readonly privateRoot?: string;
}

export const KEY_BYTES = 32;
/** HKDF `info`: a new format or derivation gets a new label, so old and new keys never collide. */
export const KEY_INFO = "entratool token store v1";
const MIN_CREDENTIAL_BYTES = 32;

/**
 * Key = HKDF-SHA256(ikm = key material, salt = machine identity, info = KEY_INFO). The material is
 * the systemd credential when one is passed (`LoadCredentialEncrypted=` can bind it to the TPM),
 * else a key file generated on first use. Because the machine identity is mixed in, a copied state
 * directory, key file included, does not decrypt on another machine.
 *
 * A key file of the wrong size (cut short by a power cut, 0 bytes, overwritten) cannot be used, and
 * a board without a keyboard must get going again by itself: the file is set aside
 * (`store.key.corrupt-<time>`) together with every token file it encrypted, a new key is made, and
 * one warning says so; every profile then signs in again with a new code. That happens under the
 * lock of the key's directory, and whoever gets the lock second finds the new key and uses it, so
 * processes that find the damage at the same moment end with one new key. A systemd credential
 * that is too short stays an error: it is the administrator's file, read-only to us.
 */
export class FileKeyProvider implements KeyProvider {
  readonly #options: FileKeyProviderOptions;
  #key: Promise<Buffer> | undefined;
  /** What `preload` derived: the key, or undefined when the key file needs more than reading. */
  #preloaded: Promise<Buffer | undefined> | undefined;

  constructor(options: FileKeyProviderOptions) {
    this.#options = options;
  }

  async getKey(): Promise<Buffer> {
    this.#key ??= this.#first().catch((error: unknown) => {
      // Not memoised on failure: the user may fix the permissions and the daemon try again.
      this.#key = undefined;
      throw error;
    });
    return Buffer.from(await this.#key);
  }

  async preload(): Promise<void> {
    if (this.#key !== undefined || this.#preloaded !== undefined) return;
    // A failure is getKey's to report, when it reads again.
    this.#preloaded = this.#deriveExisting().catch(() => undefined);
    await this.#preloaded;
  }

  /** The preloaded key when there is one, else the key derived now (made or repaired if need be). */
  async #first(): Promise<Buffer> {
    const preloaded = await this.#preloaded;
    this.#preloaded = undefined;
    return preloaded ?? (await this.#derive());
  }

  async #derive(): Promise<Buffer> {
    // The identity first: creating a key file is the moment to say that it is not machine-bound.
    const salt = await this.#options.machineIdentity.get();
    const material = (await this.#readCredential()) ?? (await this.#readOrCreateKeyFile(salt));
    return deriveKey(material, salt);
  }

  /**
   * #derive when the key material needs nothing but reading, the identity read at the same time;
   * undefined when the key file is missing, damaged or open to others (see #readPrivateKeyFile).
   */
  async #deriveExisting(): Promise<Buffer | undefined> {
    const [salt, material] = await Promise.allSettled([
      this.#options.machineIdentity.get(),
      this.#readCredential().then((credential) => credential ?? this.#readPrivateKeyFile()),
    ]);
    if (material.status === "rejected") throw material.reason;
    if (salt.status === "rejected") {
      material.value?.fill(0);
      throw salt.reason;
    }
    return material.value === undefined ? undefined : await deriveKey(material.value, salt.value);
  }

  /**
   * The key file's material when it has the right size and it and its directory are private, as
   * #checkKeyFile would find them without changing anything; else undefined.
   */
  async #readPrivateKeyFile(): Promise<Buffer | undefined> {
    const file = this.#options.keyFile;
    const existing = await readKeyFile(file);
    if (existing.kind !== "key") return undefined;
    try {
      // What ensurePrivateDir and the mode check of #checkKeyFile accept, judged without either.
      const [dir, info] = await Promise.all([stat(dirname(file)), stat(file)]);
      if (dir.isDirectory() && (dir.mode & 0o022) === 0 && (info.mode & 0o077) === 0)
        return existing.material;
    } catch {
      // Gone meanwhile, or not for us to stat: getKey says what.
    }
    existing.material.fill(0);
    return undefined;
  }

  async #readCredential(): Promise<Buffer | undefined> {
    const file = this.#options.credentialKeyFile;
    if (file === undefined) return undefined;
    let material: Buffer;
    try {
      // Bun's reader, not node:fs: a service reads its credential at every start (see core/files.ts).
      const read = await Bun.file(file).bytes();
      material = Buffer.from(read.buffer, read.byteOffset, read.length);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw storeError(file, "read the key file", error);
    }
    if (material.length < MIN_CREDENTIAL_BYTES) {
      const length = material.length;
      material.fill(0);
      throw new EntraToolError("E_CONFIG", {
        message: `The key credential ${file} has ${length} bytes; it needs at least ${MIN_CREDENTIAL_BYTES} random bytes (e.g. 'head -c 32 /dev/urandom | systemd-creds encrypt --name=entratool.key - entratool.key').`,
      });
    }
    return material;
  }

  async #readOrCreateKeyFile(machine: string): Promise<Buffer> {
    const file = this.#options.keyFile;
    const existing = await readKeyFile(file);
    if (existing.kind === "key") return this.#checkKeyFile(file, existing.material);
    const dir = dirname(file);
    try {
      await ensurePrivateDir(dir, this.#options.privateRoot);
    } catch (error) {
      throw storeError(dir, "create the state directory", error);
    }
    const lock = await this.#options.locks.lockDirectory(dir);
    try {
      return await this.#createOrReplace(file, machine);
    } finally {
      await lock.release();
    }
  }

  /** Under the directory's lock: the key file made, repaired, or (made by another) read. */
  async #createOrReplace(file: string, machine: string): Promise<Buffer> {
    // Another process may have made or repaired it while this one waited for the lock.
    const current = await readKeyFile(file);
    if (current.kind === "key") return this.#checkKeyFile(file, current.material);
    const damaged = current.kind === "damaged" ? await this.#setAsideDamaged(file) : undefined;
    let created: boolean;
    try {
      const fresh = Buffer.from(crypto.getRandomValues(new Uint8Array(KEY_BYTES)));
      created = await createFileExclusive(file, fresh, 0o600);
      fresh.fill(0);
    } catch (error) {
      throw storeError(file, "create the key file", error);
    }
    const { logger } = this.#options;
    if (current.kind === "damaged" && damaged !== undefined) {
      const went =
        damaged.aside === undefined ? "was removed meanwhile" : `was set aside as ${damaged.aside}`;
      logger.warn(
        { file, size: current.size, movedTo: damaged.aside, tokenFiles: damaged.tokenFiles },
        `The token store key ${file} was damaged (${current.size} instead of ${KEY_BYTES}); it ${went} ${withTokenFiles(damaged.tokenFiles.length)}, and a new key was created: every profile must sign in again.`,
      );
    } else if (created) {
      logger.info({ file }, "Created the token store key");
    }
    // Said once per key file rather than on every run that finds no identity: the CLI's default
    // level shows warnings, and containers have no machine id. After a repair the one warning above
    // is the line a person needs; this note was given when the first key was made.
    if (created && machine === UNKNOWN_MACHINE) {
      const note =
        "No machine id or board serial found: the new token store key is bound to the key file only, so a copy of the state directory (key file included) would decrypt elsewhere";
      if (damaged === undefined) logger.warn({ file }, note);
      else logger.info({ file }, note);
    }
    // Read back in both cases: when another process won the race, its key is the one on disk.
    const written = await readKeyFile(file);
    if (written.kind !== "key") {
      throw new EntraToolError("E_STORE", {
        message: `The key file ${file} ${written.kind === "absent" ? "disappeared" : "was damaged"} right after it was created. Check what else manages that directory.`,
      });
    }
    return this.#checkKeyFile(file, written.material);
  }

  /**
   * Sets aside every token file the damaged key encrypted, then the key file itself: in that
   * order, so that a crash in between leaves the damaged key to be found (and this repeated) rather
   * than token files no key opens. Where the key went (undefined only if something else took it
   * away meanwhile) and where each token file went.
   */
  async #setAsideDamaged(file: string): Promise<{ aside: string | undefined; tokenFiles: string[] }> {
    const { tokensDir, clock } = this.#options;
    // node:fs only when something is repaired or changed: loading it costs every start (core/atomic.ts).
    const { readdir } = await import("node:fs/promises");
    let entries: string[];
    try {
      entries = await readdir(tokensDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT")
        throw storeError(tokensDir, "read the token directory", error);
      entries = [];
    }
    const tokenFiles: string[] = [];
    for (const entry of entries.sort()) {
      const profile = /^(.+)\.cache$/.exec(entry)?.[1];
      if (profile === undefined || !isValidName(profile)) continue;
      const path = join(tokensDir, entry);
      try {
        const aside = await setAside(path, { clock });
        if (aside !== undefined) tokenFiles.push(aside);
      } catch (error) {
        throw storeError(path, "set aside the token file", error);
      }
    }
    try {
      return { aside: await setAside(file, { clock }), tokenFiles };
    } catch (error) {
      throw storeError(file, "set aside the damaged key file", error);
    }
  }

  /**
   * A key file of the right size, kept only in a directory others cannot write (they could have
   * swapped the key) and readable by its owner alone.
   */
  async #checkKeyFile(file: string, material: Buffer): Promise<Buffer> {
    try {
      await ensurePrivateDir(dirname(file), this.#options.privateRoot);
    } catch (error) {
      material.fill(0);
      throw storeError(dirname(file), "check the state directory", error);
    }
    try {
      const mode = (await stat(file)).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        this.#options.logger.warn(
          { file, mode: mode.toString(8) },
          "Key file was readable by others; set to 0600",
        );
        const { chmod } = await import("node:fs/promises");
        await chmod(file, 0o600);
      }
    } catch (error) {
      throw storeError(file, "set mode 0600 on the key file", error);
    }
    return material;
  }
}

/** Key = HKDF-SHA256(ikm = material, salt = machine identity, info = KEY_INFO); zeroes `material`. */
async function deriveKey(material: Buffer, salt: string): Promise<Buffer> {
  try {
    // WebCrypto rather than node:crypto: same HKDF, and loading node:crypto would cost a
    // cached `get-token` a third of its start-up time.
    const base = await crypto.subtle.importKey("raw", bytes(material), "HKDF", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: Buffer.from(salt, "utf8"),
        info: Buffer.from(KEY_INFO, "utf8"),
      },
      base,
      KEY_BYTES * 8,
    );
    return Buffer.from(bits);
  } finally {
    material.fill(0);
  }
}

/** A key file is 32 bytes: more than this is damage, and is not read any further. */
const MAX_KEY_FILE_BYTES = 4096;

type KeyFileContent =
  | { readonly kind: "absent" }
  | { readonly kind: "key"; readonly material: Buffer }
  /** `size` as said to a person: "7 bytes", "more than 4096 bytes". */
  | { readonly kind: "damaged"; readonly size: string };

/**
 * The key file's material when it has the right size. At most MAX_KEY_FILE_BYTES are read, so a
 * key file replaced by something endless (a link to /dev/zero) cannot take the memory. I/O errors
 * are E_STORE: only content is damage, a file we cannot read is not.
 */
async function readKeyFile(file: string): Promise<KeyFileContent> {
  let raw: Buffer;
  try {
    raw = await readFileCapped(file, MAX_KEY_FILE_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { kind: "absent" };
    if (code === "EFBIG") return { kind: "damaged", size: `more than ${MAX_KEY_FILE_BYTES} bytes` };
    throw storeError(file, "read the key file", error);
  }
  if (raw.length === KEY_BYTES) return { kind: "key", material: raw };
  raw.fill(0);
  return { kind: "damaged", size: `${raw.length} bytes` };
}

/** "with the 2 token files it encrypted", for the one warning of a repair. */
function withTokenFiles(count: number): string {
  if (count === 0) return "(it encrypted no token files)";
  return `with the ${count} token file${count === 1 ? "" : "s"} it encrypted`;
}
