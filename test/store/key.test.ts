import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileKeyProvider } from "../../agent/store/key.ts";
import { captureLogger, fixedIdentity, makeTempDir } from "./helpers.ts";

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe("FileKeyProvider", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let keyFile: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    keyFile = join(dir, "state", "store.key");
  });
  afterEach(() => cleanup());

  const provider = (options: { identity?: string; credentialKeyFile?: string; file?: string } = {}) =>
    new FileKeyProvider({
      keyFile: options.file ?? keyFile,
      credentialKeyFile: options.credentialKeyFile,
      machineIdentity: fixedIdentity(options.identity ?? "machine-a"),
      logger: captureLogger().logger,
    });

  it("creates a 32-byte key file 0600 in a 0700 directory and reuses it", async () => {
    const key = await provider().getKey();
    expect(key).toHaveLength(32);
    const material = await readFile(keyFile);
    expect(material).toHaveLength(32);
    expect(await modeOf(keyFile)).toBe(0o600);
    expect(await modeOf(dirname(keyFile))).toBe(0o700);
    // The file holds key material, not the derived key.
    expect(material.equals(key)).toBe(false);

    const again = await provider().getKey();
    expect(again.equals(key)).toBe(true);
    expect((await readFile(keyFile)).equals(material)).toBe(true);
  });

  it("returns the same key on every call, as independent copies", async () => {
    const source = provider();
    const first = await source.getKey();
    first.fill(0);
    const second = await source.getKey();
    expect(second.equals(Buffer.alloc(32))).toBe(false);
    expect(second.equals(await source.getKey())).toBe(true);
  });

  it("prefers the systemd credential and does not create a key file", async () => {
    const credentials = join(dir, "credentials");
    await mkdir(credentials);
    const credentialKeyFile = join(credentials, "entratool.key");
    await writeFile(credentialKeyFile, Buffer.alloc(48, 7));
    const fromCredential = await provider({ credentialKeyFile }).getKey();
    await expect(stat(keyFile)).rejects.toMatchObject({ code: "ENOENT" });

    const fromKeyFile = await provider().getKey();
    expect(fromCredential.equals(fromKeyFile)).toBe(false);
    expect((await provider({ credentialKeyFile }).getKey()).equals(fromCredential)).toBe(true);
  });

  it("uses the key file when the credential directory has no key", async () => {
    const credentialKeyFile = join(dir, "credentials", "entratool.key");
    const key = await provider({ credentialKeyFile }).getKey();
    expect(key.equals(await provider().getKey())).toBe(true);
  });

  it("rejects a credential shorter than 32 bytes with E_CONFIG", async () => {
    const credentialKeyFile = join(dir, "short.key");
    await writeFile(credentialKeyFile, "too short");
    await expect(provider({ credentialKeyFile }).getKey()).rejects.toMatchObject({
      code: "E_CONFIG",
      message: expect.stringContaining(credentialKeyFile),
    });
  });

  it("rejects a key file of the wrong length with E_STORE naming it", async () => {
    await mkdir(dirname(keyFile), { recursive: true });
    await writeFile(keyFile, "not a key");
    await expect(provider().getKey()).rejects.toMatchObject({
      code: "E_STORE",
      message: expect.stringContaining(keyFile),
    });
  });

  it("derives a different key from the same key file on another machine", async () => {
    const here = await provider({ identity: "machine-a" }).getKey();
    const there = await provider({ identity: "machine-b" }).getKey();
    expect(here.equals(there)).toBe(false);
  });

  it("ends with one key file when two providers race on a fresh directory", async () => {
    for (let round = 0; round < 10; round++) {
      const file = join(dir, `race-${round}`, "store.key");
      const { logger, records } = captureLogger();
      const racer = () =>
        new FileKeyProvider({
          keyFile: file,
          credentialKeyFile: undefined,
          machineIdentity: fixedIdentity("m"),
          logger,
        });
      const [a, b] = await Promise.all([racer().getKey(), racer().getKey()]);
      expect(a.equals(b)).toBe(true);
      expect(await readFile(file)).toHaveLength(32);
      expect(records.filter((record) => record.msg === "Created the token store key")).toHaveLength(1);
    }
  });
});
