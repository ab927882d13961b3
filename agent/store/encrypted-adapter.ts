import { readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import type { Adapter } from "lowdb";
import type { Clock } from "../clock.ts";
import { EntraToolError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ensurePrivateDir, writeFileAtomic } from "./atomic.ts";
import { bytes } from "./bytes.ts";
import type { KeyProvider } from "./key.ts";

/*
 * File format, version 1:
 *   "ETS1" (4 bytes) | nonce (12 random bytes) | AES-256-GCM ciphertext of UTF-8 JSON | tag (16 bytes)
 * The magic is the additional authenticated data, so it cannot be swapped without failing the tag.
 * A fresh nonce per write; a key encrypts a few writes per hour at most, far from GCM's limits.
 */
export const MAGIC: Buffer = Buffer.from("ETS1", "ascii");
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = MAGIC.length + NONCE_BYTES;

export interface EncryptedFileAdapterOptions<T> {
  readonly path: string;
  readonly keyProvider: KeyProvider;
  readonly logger: Logger;
  /** Names the set-aside file (`<path>.corrupt-<time>`). */
  readonly clock: Clock;
  /** Decrypted JSON that fails this is treated like a corrupt file. */
  readonly validate: (value: unknown) => value is T;
}

/**
 * A lowdb Adapter that keeps one JSON document encrypted in one file (0600, directory 0700),
 * replaced atomically and durably on every write.
 *
 * Contract of `read()`: the document, or null when there is none *or it cannot be used*
 * (truncated, garbage, wrong key: written on another machine or with another key, invalid JSON,
 * fails `validate`). An unusable file is renamed aside to `<path>.corrupt-<time>` and a warning is
 * logged (path and reason only, never content), so null means "signed out" and the next write
 * starts afresh. Only I/O failures (EACCES, EIO, ...) throw, as E_STORE naming the path.
 */
export class EncryptedFileAdapter<T> implements Adapter<T> {
  readonly #options: EncryptedFileAdapterOptions<T>;

  constructor(options: EncryptedFileAdapterOptions<T>) {
    this.#options = options;
  }

  get path(): string {
    return this.#options.path;
  }

  async read(): Promise<T | null> {
    const { path } = this.#options;
    let raw: Buffer;
    try {
      raw = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw ioError(path, "read", error);
    }
    const key = await this.#options.keyProvider.getKey();
    let decoded: Decoded<T>;
    try {
      decoded = await decodeFile(raw, key, this.#options.validate);
    } finally {
      key.fill(0);
    }
    if (!decoded.ok) {
      await this.#setAside(decoded.reason);
      return null;
    }
    return decoded.value;
  }

  async write(data: T): Promise<void> {
    const { path } = this.#options;
    const key = await this.#options.keyProvider.getKey();
    const plaintext = Buffer.from(JSON.stringify(data), "utf8");
    let file: Buffer;
    try {
      const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
      // WebCrypto's AES-GCM output is ciphertext followed by the 16-byte tag: the file layout.
      const sealed = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce, additionalData: bytes(MAGIC), tagLength: TAG_BYTES * 8 },
        await aesKey(key),
        bytes(plaintext),
      );
      file = Buffer.concat([MAGIC, nonce, new Uint8Array(sealed)]);
    } finally {
      // The JSON holds tokens: do not leave a copy of it in a Buffer we own.
      plaintext.fill(0);
      key.fill(0);
    }
    try {
      await ensurePrivateDir(dirname(path));
      await writeFileAtomic(path, file, 0o600);
    } catch (error) {
      throw ioError(path, "write", error);
    }
  }

  async #setAside(reason: string): Promise<void> {
    const { path, clock, logger } = this.#options;
    const stamp = new Date(clock.now()).toISOString().replaceAll(":", "-");
    const aside = `${path}.corrupt-${stamp}`;
    try {
      await rename(path, aside);
    } catch (error) {
      // Someone else (another process reading at the same time) already moved it: nothing to do.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw ioError(path, "set aside", error);
    }
    logger.warn(
      { path, movedTo: aside, reason },
      "Unusable token store file set aside; the profile is signed out",
    );
  }
}

type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/**
 * AES-256-GCM through WebCrypto rather than node:crypto: the same algorithm, and loading
 * node:crypto would cost a cached `get-token` a third of its start-up time.
 */
function aesKey(key: Buffer): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", bytes(key), "AES-GCM", false, ["encrypt", "decrypt"]);
}

/** Never throws: every way a file can be unusable becomes a reason (without any of its content). */
async function decodeFile<T>(
  raw: Buffer,
  key: Buffer,
  validate: (value: unknown) => value is T,
): Promise<Decoded<T>> {
  if (raw.length < HEADER_BYTES + TAG_BYTES) {
    return { ok: false, reason: `truncated (${raw.length} bytes)` };
  }
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) {
    return { ok: false, reason: "not an entratool token store file (bad magic)" };
  }
  const nonce = raw.subarray(MAGIC.length, HEADER_BYTES);
  let plaintext: Buffer;
  try {
    const opened = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes(nonce), additionalData: bytes(MAGIC), tagLength: TAG_BYTES * 8 },
      await aesKey(key),
      bytes(raw.subarray(HEADER_BYTES)),
    );
    plaintext = Buffer.from(opened);
  } catch {
    return {
      ok: false,
      reason: "authentication failed (another machine's or another key's file, or modified on disk)",
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(plaintext.toString("utf8"));
  } catch {
    return { ok: false, reason: "decrypted content is not valid JSON" };
  } finally {
    plaintext.fill(0);
  }
  if (!validate(value)) return { ok: false, reason: "decrypted content has an unexpected shape" };
  return { ok: true, value };
}

function ioError(path: string, action: string, cause: unknown): EntraToolError {
  const code = (cause as NodeJS.ErrnoException).code ?? "error";
  return new EntraToolError("E_STORE", {
    message: `Cannot ${action} the token store file ${path} (${code}). Check that it and its directory belong to the user running entratool and that the disk is not full or read-only.`,
    cause,
  });
}
