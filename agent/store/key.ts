import { chmod, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { createFileExclusive, ensurePrivateDir } from "../core/atomic.ts";
import { bytes } from "../core/bytes.ts";
import { EntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { storeError } from "./errors.ts";
import { type MachineIdentitySource, UNKNOWN_MACHINE } from "./machine.ts";

/** The token store's AES-256 key. */
export interface KeyProvider {
  /** 32 bytes. The same for the life of the provider; callers get their own copy. */
  getKey(): Promise<Buffer>;
}

export interface FileKeyProviderOptions {
  /** The generated key (paths.keyFile): 32 random bytes, created 0600 in a 0700 directory when missing. */
  readonly keyFile: string;
  /** systemd credential (paths.credentialKeyFile); used instead of keyFile when the file exists. */
  readonly credentialKeyFile: string | undefined;
  readonly machineIdentity: MachineIdentitySource;
  readonly logger: Logger;
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
 */
export class FileKeyProvider implements KeyProvider {
  readonly #options: FileKeyProviderOptions;
  #key: Promise<Buffer> | undefined;

  constructor(options: FileKeyProviderOptions) {
    this.#options = options;
  }

  async getKey(): Promise<Buffer> {
    this.#key ??= this.#derive().catch((error: unknown) => {
      // Not memoised on failure: the user may fix the permissions and the daemon try again.
      this.#key = undefined;
      throw error;
    });
    return Buffer.from(await this.#key);
  }

  async #derive(): Promise<Buffer> {
    // The identity first: creating a key file is the moment to say that it is not machine-bound.
    const salt = await this.#options.machineIdentity.get();
    const material = (await this.#readCredential()) ?? (await this.#readOrCreateKeyFile(salt));
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

  async #readCredential(): Promise<Buffer | undefined> {
    const file = this.#options.credentialKeyFile;
    if (file === undefined) return undefined;
    const material = await readKeyMaterial(file);
    if (material === undefined) return undefined;
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
    const existing = await readKeyMaterial(file);
    if (existing !== undefined) return this.#checkKeyFile(file, existing);
    try {
      await ensurePrivateDir(dirname(file));
      const fresh = Buffer.from(crypto.getRandomValues(new Uint8Array(KEY_BYTES)));
      const created = await createFileExclusive(file, fresh, 0o600);
      fresh.fill(0);
      if (created) {
        this.#options.logger.info({ file }, "Created the token store key");
        // Said here, once per key file, rather than on every run that finds no identity: the
        // CLI's default level shows warnings, and containers have no machine id.
        if (machine === UNKNOWN_MACHINE) {
          this.#options.logger.warn(
            { file },
            "No machine id or board serial found: the new token store key is bound to the key file only, so a copy of the state directory (key file included) would decrypt elsewhere",
          );
        }
      }
    } catch (error) {
      throw storeError(file, "create the key file", error);
    }
    // Read back in both cases: when another process won the race, its key is the one on disk.
    const material = await readKeyMaterial(file);
    if (material === undefined) {
      throw new EntraToolError("E_STORE", {
        message: `The key file ${file} disappeared right after it was created. Check what else manages that directory.`,
      });
    }
    return this.#checkKeyFile(file, material);
  }

  async #checkKeyFile(file: string, material: Buffer): Promise<Buffer> {
    if (material.length !== KEY_BYTES) {
      const length = material.length;
      material.fill(0);
      throw new EntraToolError("E_STORE", {
        message: `The key file ${file} has ${length} bytes instead of ${KEY_BYTES}. Remove it to create a new key (every profile will need to sign in again).`,
      });
    }
    try {
      const mode = (await stat(file)).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        this.#options.logger.warn(
          { file, mode: mode.toString(8) },
          "Key file was readable by others; set to 0600",
        );
        await chmod(file, 0o600);
      }
    } catch (error) {
      throw storeError(file, "set mode 0600 on the key file", error);
    }
    return material;
  }
}

/** Raw bytes of `file`, or undefined when it does not exist; other I/O errors are E_STORE. */
async function readKeyMaterial(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw storeError(file, "read the key file", error);
  }
}
