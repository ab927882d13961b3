import type { Stats } from "node:fs";
import type { Adapter } from "lowdb";
import { ensurePrivateDir, writeFileAtomic } from "../core/atomic.ts";
import { bytes } from "../core/bytes.ts";
import type { Clock } from "../core/clock.ts";
import { stat } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { basename, dirname } from "../core/path.ts";
import { setAside } from "../core/set-aside.ts";
import { storeError } from "./errors.ts";
import type { KeyProvider } from "./key.ts";

/*
 * File format, version 1:
 *   "ETS1" (4 bytes) | nonce (12 random bytes) | AES-256-GCM ciphertext of UTF-8 JSON | tag (16 bytes)
 * The additional authenticated data is the magic followed by the file's base name (UTF-8, e.g.
 * "work.cache"): neither can be changed without failing the tag, so one profile's file copied over
 * another's does not decrypt as the other's (it is set aside like any unusable file).
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
  /** Names the set-aside file (`<path>.corrupt-<time>`, see core/set-aside.ts). */
  readonly clock: Clock;
  /** Decrypted JSON that fails this is treated like a corrupt file. */
  readonly validate: (value: unknown) => value is T;
  /** The durable write; writeFileAtomic unless a test hands in one that fails like a full disk. */
  readonly writeFile?: FileWriter;
  /**
   * The directory a person named for entratool's state (Paths.stateRoot: ENTRATOOL_HOME or the
   * state directory): it and everything below it must be private (see ensurePrivateDir).
   */
  readonly privateRoot?: string;
}

/** Writes `data` to `path` with `mode`, atomically and durably, as writeFileAtomic does. */
export type FileWriter = (path: string, data: Uint8Array, mode: number) => Promise<void>;

/**
 * A lowdb Adapter that keeps one JSON document encrypted in one file (0600, directory 0700),
 * replaced atomically and durably on every write.
 *
 * Contract of `read()`: the document, or null when there is none *or it cannot be used*
 * (truncated, garbage, wrong key: written on another machine or with another key, invalid JSON,
 * fails `validate`). An unusable file is renamed aside to `<path>.corrupt-<time>` (core/set-aside.ts:
 * only the newest few copies are kept) and a warning is logged (path and reason only, never
 * content), so null means "signed out" and the next write starts afresh. Only I/O failures (EACCES, EIO, ...) throw, as E_STORE naming the path.
 *
 * `read()` is safe without a lock (a lock-free fast path uses it while another process may write):
 * writers replace the file atomically, and a file is set aside only while the path still names the
 * very file that was read. If it was replaced (or removed) in between, read() returns null and
 * leaves the path alone; a caller that must know retries under the lock.
 */
export class EncryptedFileAdapter<T> implements Adapter<T> {
  readonly #options: EncryptedFileAdapterOptions<T>;
  readonly #aad: Buffer;

  constructor(options: EncryptedFileAdapterOptions<T>) {
    this.#options = options;
    this.#aad = Buffer.concat([MAGIC, Buffer.from(basename(options.path), "utf8")]);
  }

  get path(): string {
    return this.#options.path;
  }

  async read(): Promise<T | null> {
    const file = await readWithIdentity(this.#options.path);
    if (file === undefined) return null;
    const key = await this.#options.keyProvider.getKey();
    let decoded: Decoded<T>;
    try {
      decoded = await decodeFile(file.raw, key, this.#aad, this.#options.validate);
    } finally {
      key.fill(0);
    }
    if (!decoded.ok) {
      await this.#setAside(decoded.reason, file.identity);
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
        { name: "AES-GCM", iv: nonce, additionalData: bytes(this.#aad), tagLength: TAG_BYTES * 8 },
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
      await ensurePrivateDir(dirname(path), this.#options.privateRoot);
      await (this.#options.writeFile ?? writeFileAtomic)(path, file, 0o600);
    } catch (error) {
      throw storeError(path, "write the token store file", error);
    }
  }

  /**
   * Renames the unusable file that was read (`read`) aside, unless the path no longer names it: a
   * writer may have replaced it with a good file meanwhile, which must stay. What remains is the
   * instant between this stat and the rename, against the whole decryption before; under the
   * profile's lock (MSAL's path) no writer runs at all.
   */
  async #setAside(reason: string, read: FileIdentity): Promise<void> {
    const { path, clock, logger } = this.#options;
    let current: FileIdentity;
    try {
      current = identityOf(await stat(path));
    } catch (error) {
      // Already gone (another reader set it aside, or a logout): nothing to do.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw storeError(path, "check the token store file", error);
    }
    if (!sameFile(current, read)) {
      logger.debug(
        { path, reason },
        "Unusable token store file was replaced while it was read; left in place",
      );
      return;
    }
    let aside: string | undefined;
    try {
      aside = await setAside(path, { clock });
    } catch (error) {
      throw storeError(path, "set aside the token store file", error);
    }
    // Someone else (another process reading at the same time) already moved it: nothing to do.
    if (aside === undefined) return;
    logger.warn(
      { path, movedTo: aside, reason },
      "Unusable token store file set aside; the profile is signed out",
    );
  }
}

/**
 * Which file was read: device and inode, plus size and modification time because an inode number
 * freed by a replaced file can be reused at once by the next one. As Bun's Stats give them: numbers
 * (an inode number above 2^53 loses its lowest bits, which size and mtime still tell apart), the
 * time in ms with a fraction (to a fraction of a microsecond at today's dates).
 */
interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

function identityOf(info: Stats): FileIdentity {
  return { dev: info.dev, ino: info.ino, size: info.size, mtimeMs: info.mtimeMs };
}

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/**
 * The file's bytes and the identity of the file the path named just before they were read, or
 * undefined when there is no file.
 *
 * A stat, then the read, through Bun's file API rather than one node:fs FileHandle (open, fstat,
 * read): a cached `get-token` reads this file at every start, and loading node:fs's JavaScript
 * layer would cost it more than the read (core/files.ts). The identity may then be of a file that
 * was replaced before the read, but #setAside needs no more: it acts only when the path still
 * names that file afterwards, and a path that named it before and after the read named it during
 * the read too (a replacement gets a new identity, and files are only ever replaced, not rewritten).
 */
async function readWithIdentity(path: string): Promise<{ raw: Buffer; identity: FileIdentity } | undefined> {
  try {
    const identity = identityOf(await stat(path));
    const read = await Bun.file(path).bytes();
    return { raw: Buffer.from(read.buffer, read.byteOffset, read.length), identity };
  } catch (error) {
    // Absent, or removed between the stat and the read (a logout): there is no file.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw storeError(path, "read the token store file", error);
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
  aad: Buffer,
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
      { name: "AES-GCM", iv: bytes(nonce), additionalData: bytes(aad), tagLength: TAG_BYTES * 8 },
      await aesKey(key),
      bytes(raw.subarray(HEADER_BYTES)),
    );
    plaintext = Buffer.from(opened);
  } catch {
    return {
      ok: false,
      reason:
        "authentication failed (another machine's or another key's file, another profile's file copied here, or modified on disk)",
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
