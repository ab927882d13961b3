import { createCipheriv, randomBytes } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { EncryptedFileAdapter } from "../../agent/store/encrypted-adapter.ts";
import type { KeyProvider } from "../../agent/store/key.ts";
import { captureLogger, filesContaining, keyProvider, makeTempDir } from "./helpers.ts";

interface Doc {
  readonly version: 1;
  readonly secret: string;
}
const isDoc = (value: unknown): value is Doc =>
  typeof value === "object" &&
  value !== null &&
  (value as { version?: unknown }).version === 1 &&
  typeof (value as { secret?: unknown }).secret === "string";

const MARKER = "PLAINTEXT-MARKER-7f3a";

/**
 * A KeyProvider that runs `during` once, inside its first getKey. read() asks for the key after it
 * has read the file and before it decides what to do with it: the window in which another process
 * can replace or remove the file. Using the adapter's own dependency as the seam needs no test-only
 * hook in production code, and `ran()` lets a test check that the race was really staged.
 */
function keysThatRace(inner: KeyProvider, during: () => Promise<void>): KeyProvider & { ran(): boolean } {
  let pending: (() => Promise<void>) | undefined = during;
  return {
    getKey: async () => {
      const run = pending;
      pending = undefined;
      await run?.();
      return inner.getKey();
    },
    ran: () => pending === undefined,
  };
}

/** A file in the documented format, sealed by node:crypto (not the code under test). */
function sealByHand(key: Buffer, aad: string, plaintext: string): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.from("ETS1"), nonce, body, cipher.getAuthTag()]);
}

describe("EncryptedFileAdapter", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;
  let clock: VirtualClock;
  let log: ReturnType<typeof captureLogger>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    path = join(dir, "tokens", "work.cache");
    clock = new VirtualClock(Date.UTC(2026, 10, 27, 12, 34, 56, 789));
    log = captureLogger();
  });
  afterEach(() => cleanup());

  const keys = (identity = "machine-a"): KeyProvider =>
    keyProvider({ keyFile: join(dir, "store.key"), identity, logger: log.logger, clock });
  const adapter = (keyProvider: KeyProvider = keys(), at = path) =>
    new EncryptedFileAdapter<Doc>({ path: at, keyProvider, logger: log.logger, clock, validate: isDoc });
  const asideFiles = async () =>
    (await readdir(join(dir, "tokens"))).filter((name) => name.includes(".corrupt-"));
  const warnings = () => log.records.filter((record) => record.level === "warn");

  it("reads null when there is no file", async () => {
    expect(await adapter().read()).toBeNull();
    expect(warnings()).toHaveLength(0);
  });

  it("round-trips a document through an encrypted 0600 file in a 0700 directory", async () => {
    await adapter().write({ version: 1, secret: MARKER });
    expect(await adapter().read()).toEqual({ version: 1, secret: MARKER });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "tokens"))).mode & 0o777).toBe(0o700);
    const raw = await readFile(path);
    expect(raw.subarray(0, 4).toString("ascii")).toBe("ETS1");
    expect(await filesContaining(dir, MARKER)).toEqual([]);
  });

  it("uses a fresh nonce on every write", async () => {
    await adapter().write({ version: 1, secret: "same" });
    const first = await readFile(path);
    await adapter().write({ version: 1, secret: "same" });
    const second = await readFile(path);
    expect(first.equals(second)).toBe(false);
  });

  const unusable: Array<[string, (file: Buffer) => Buffer]> = [
    ["truncated", (file) => file.subarray(0, 20)],
    ["cut before the end of the tag", (file) => file.subarray(0, file.length - 1)],
    ["random garbage", () => Buffer.from("definitely not an entratool store file, just garbage bytes")],
    [
      "one flipped ciphertext bit",
      (file) => Buffer.from(file.map((byte, index) => (index === 20 ? byte ^ 1 : byte))),
    ],
    ["empty", () => Buffer.alloc(0)],
  ];

  for (const [label, damage] of unusable) {
    it(`sets a file aside and reads null when it is ${label}; the next write works`, async () => {
      await adapter().write({ version: 1, secret: MARKER });
      await writeFile(path, damage(await readFile(path)));

      expect(await adapter().read()).toBeNull();
      expect(await asideFiles()).toEqual(["work.cache.corrupt-2026-11-27T12-34-56.789Z"]);
      await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" });
      expect(warnings()).toHaveLength(1);
      expect(warnings()[0]).toMatchObject({ path, reason: expect.any(String) });
      expect(log.raw.join("")).not.toContain(MARKER);

      await adapter().write({ version: 1, secret: "after" });
      expect(await adapter().read()).toEqual({ version: 1, secret: "after" });
    });
  }

  it("keeps only the newest 5 set-aside copies of a file that keeps failing, each with its warning", async () => {
    for (let round = 0; round < 8; round++) {
      clock.advance(60_000);
      await mkdir(join(dir, "tokens"), { recursive: true });
      await writeFile(path, `garbage ${round}, as a failing card leaves it`);
      expect(await adapter().read()).toBeNull();
    }
    const copies = (await asideFiles()).sort();
    expect(copies).toHaveLength(5);
    const contents = await Promise.all(copies.map((name) => readFile(join(dir, "tokens", name), "utf8")));
    expect(contents.map((text) => text.split(",")[0])).toEqual([
      "garbage 3",
      "garbage 4",
      "garbage 5",
      "garbage 6",
      "garbage 7",
    ]);
    expect(warnings()).toHaveLength(8);
  });

  it("names a second copy in the same millisecond with a -1 suffix rather than replacing the first", async () => {
    await mkdir(join(dir, "tokens"), { recursive: true });
    await writeFile(path, "first garbage");
    expect(await adapter().read()).toBeNull();
    await writeFile(path, "second garbage");
    expect(await adapter().read()).toBeNull();
    expect((await asideFiles()).sort()).toEqual([
      "work.cache.corrupt-2026-11-27T12-34-56.789Z",
      "work.cache.corrupt-2026-11-27T12-34-56.789Z-1",
    ]);
    expect(warnings().map((warning) => warning.movedTo)).toEqual([
      join(dir, "tokens", "work.cache.corrupt-2026-11-27T12-34-56.789Z"),
      join(dir, "tokens", "work.cache.corrupt-2026-11-27T12-34-56.789Z-1"),
    ]);
  });

  it("sets aside a file written on another machine (other key) and reads null", async () => {
    await adapter(keys("machine-a")).write({ version: 1, secret: MARKER });
    expect(await adapter(keys("machine-b")).read()).toBeNull();
    expect(await asideFiles()).toHaveLength(1);
    expect(warnings()[0]?.reason).toMatch(/authentication failed/);
    await adapter(keys("machine-b")).write({ version: 1, secret: "b" });
    expect(await adapter(keys("machine-b")).read()).toEqual({ version: 1, secret: "b" });
  });

  it("sets aside a file whose decrypted JSON fails the validator", async () => {
    const loose = new EncryptedFileAdapter<unknown>({
      path,
      keyProvider: keys(),
      logger: log.logger,
      clock,
      validate: (value): value is unknown => true,
    });
    await loose.write({ version: 2, other: MARKER });
    expect(await adapter().read()).toBeNull();
    expect(await asideFiles()).toHaveLength(1);
    expect(warnings()[0]?.reason).toMatch(/unexpected shape/);
  });

  it("reads a file built by hand in the documented format (AAD = magic + file name)", async () => {
    await mkdir(join(dir, "tokens"), { recursive: true });
    await writeFile(
      path,
      sealByHand(await keys().getKey(), "ETS1work.cache", JSON.stringify({ version: 1, secret: "s" })),
    );
    expect(await adapter().read()).toEqual({ version: 1, secret: "s" });
  });

  it("does not decrypt a file copied to another profile's name; the same name decrypts anywhere", async () => {
    await adapter().write({ version: 1, secret: MARKER });
    const lab = join(dir, "tokens", "lab.cache");
    await copyFile(path, lab);
    expect(await adapter(keys(), lab).read()).toBeNull();
    expect(await asideFiles()).toEqual(["lab.cache.corrupt-2026-11-27T12-34-56.789Z"]);
    expect(warnings()[0]).toMatchObject({
      path: lab,
      reason: expect.stringMatching(/authentication failed/),
    });

    // A backup restored under its own name (even in another directory) is still the profile's.
    const backup = join(dir, "backup", "work.cache");
    await mkdir(dirname(backup));
    await copyFile(path, backup);
    expect(await adapter(keys(), backup).read()).toEqual({ version: 1, secret: MARKER });
    expect(await adapter().read()).toEqual({ version: 1, secret: MARKER });
  });

  it("leaves a good file in place when a writer replaced the corrupt one between read and set-aside", async () => {
    await adapter().write({ version: 1, secret: "old" });
    await writeFile(path, Buffer.from("garbage that a crash could have left"));
    const racing = keysThatRace(keys(), () => adapter().write({ version: 1, secret: "new" }));

    // It decrypted what it read (the garbage), so it reports nothing usable, but moves nothing.
    expect(await adapter(racing).read()).toBeNull();
    expect(racing.ran()).toBe(true);
    expect(await asideFiles()).toEqual([]);
    expect(warnings()).toHaveLength(0);
    expect(await adapter().read()).toEqual({ version: 1, secret: "new" });
  });

  it("does nothing when the corrupt file was removed between read and set-aside", async () => {
    await mkdir(join(dir, "tokens"), { recursive: true });
    await writeFile(path, Buffer.from("garbage that a crash could have left"));
    const racing = keysThatRace(keys(), () => unlink(path));

    expect(await adapter(racing).read()).toBeNull();
    expect(racing.ran()).toBe(true);
    expect(await readdir(join(dir, "tokens"))).toEqual([]);
    expect(warnings()).toHaveLength(0);
  });

  it("sets aside a file whose decrypted content is not JSON", async () => {
    // Built by hand in the documented format, with the right key, so only the JSON is wrong.
    await mkdir(join(dir, "tokens"), { recursive: true });
    await writeFile(path, sealByHand(await keys().getKey(), "ETS1work.cache", `{"secret": "${MARKER}"`));

    expect(await adapter().read()).toBeNull();
    expect(await asideFiles()).toHaveLength(1);
    expect(warnings()[0]?.reason).toMatch(/not valid JSON/);
    expect(log.raw.join("")).not.toContain(MARKER);
  });

  it("throws E_STORE naming the path on an I/O error", async () => {
    // A directory where the file should be: reading it fails with EISDIR, an I/O error, not bad content.
    const blocked = new EncryptedFileAdapter<Doc>({
      path: join(dir),
      keyProvider: keys(),
      logger: log.logger,
      clock,
      validate: isDoc,
    });
    await expect(blocked.read()).rejects.toMatchObject({
      code: "E_STORE",
      message: expect.stringMatching(
        /^Cannot read the token store file .* \(EISDIR\)\. A directory is in the way/,
      ),
    });
    await expect(blocked.read()).rejects.toMatchObject({ message: expect.stringContaining(dir) });
  });
});
