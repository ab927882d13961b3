import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Logger } from "../../agent/core/log.ts";
import { FileKeyProvider } from "../../agent/store/key.ts";
import { UNKNOWN_MACHINE } from "../../agent/store/machine.ts";
import { captureLogger, fixedIdentity, type LogRecord, makeTempDir } from "./helpers.ts";

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

  const provider = (
    options: { identity?: string; credentialKeyFile?: string; file?: string; logger?: Logger } = {},
  ) =>
    new FileKeyProvider({
      keyFile: options.file ?? keyFile,
      credentialKeyFile: options.credentialKeyFile,
      machineIdentity: fixedIdentity(options.identity ?? "machine-a"),
      logger: options.logger ?? captureLogger().logger,
    });
  const unboundWarnings = (records: readonly LogRecord[]) =>
    records.filter((record) => record.level === "warn" && /bound to the key file only/.test(record.msg));

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

  it("warns once, when it creates the key file on an unidentified machine, that the key is bound to the file only", async () => {
    const { logger, records } = captureLogger();
    const first = provider({ identity: UNKNOWN_MACHINE, logger });
    const key = await first.getKey();
    expect(unboundWarnings(records)).toEqual([expect.objectContaining({ file: keyFile })]);

    // Later runs find the key file: no warning however often they start.
    await first.getKey();
    expect((await provider({ identity: UNKNOWN_MACHINE, logger }).getKey()).equals(key)).toBe(true);
    expect(unboundWarnings(records)).toHaveLength(1);
  });

  it("does not warn about binding on an identified machine, nor with a systemd credential", async () => {
    const { logger, records } = captureLogger();
    await provider({ logger }).getKey();
    const credentialKeyFile = join(dir, "entratool.key");
    await writeFile(credentialKeyFile, Buffer.alloc(32, 9));
    await provider({
      identity: UNKNOWN_MACHINE,
      credentialKeyFile,
      file: join(dir, "other.key"),
      logger,
    }).getKey();
    await expect(stat(join(dir, "other.key"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(records.filter((record) => record.level === "warn")).toEqual([]);
  });

  it("warns once when two providers on an unidentified machine race to create the key file", async () => {
    const { logger, records } = captureLogger();
    await Promise.all([
      provider({ identity: UNKNOWN_MACHINE, logger }).getKey(),
      provider({ identity: UNKNOWN_MACHINE, logger }).getKey(),
    ]);
    expect(unboundWarnings(records)).toHaveLength(1);
  });

  it("reports a key file it cannot read as E_STORE naming the file, the errno and the fix", async () => {
    await writeFile(join(dir, "state"), "a file where the state directory should be");
    await expect(provider().getKey()).rejects.toMatchObject({
      code: "E_STORE",
      message: `Cannot read the key file ${keyFile} (ENOTDIR). A file is in the way where a directory should be: move it aside.`,
    });
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
