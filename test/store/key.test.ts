import { chmod, lstat, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PublicClientApplication, TokenCacheContext } from "@azure/msal-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Logger } from "../../agent/core/log.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { UNKNOWN_MACHINE } from "../../agent/store/machine.ts";
import { FileTokenStore } from "../../agent/store/token-store.ts";
import { captureLogger, keyProvider, type LogRecord, makeTempDir } from "./helpers.ts";

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe("FileKeyProvider", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let keyFile: string;
  let clock: VirtualClock;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    keyFile = join(dir, "state", "store.key");
    clock = new VirtualClock(Date.UTC(2026, 11, 2, 10, 20, 30, 400));
  });
  afterEach(() => cleanup());

  const provider = (
    options: { identity?: string; credentialKeyFile?: string; file?: string; logger?: Logger } = {},
  ) =>
    keyProvider({
      keyFile: options.file ?? keyFile,
      ...(options.credentialKeyFile === undefined ? {} : { credentialKeyFile: options.credentialKeyFile }),
      identity: options.identity ?? "machine-a",
      logger: options.logger ?? captureLogger().logger,
      clock,
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
      const racer = () => keyProvider({ keyFile: file, identity: "m", logger });
      const [a, b] = await Promise.all([racer().getKey(), racer().getKey()]);
      expect(a.equals(b)).toBe(true);
      expect(await readFile(file)).toHaveLength(32);
      expect(records.filter((record) => record.msg === "Created the token store key")).toHaveLength(1);
    }
  });

  it("refuses a key file in a state directory that others can write (the key could have been swapped)", async () => {
    await provider().getKey();
    await chmod(dirname(keyFile), 0o1777);
    await expect(provider().getKey()).rejects.toMatchObject({
      code: "E_STORE",
      message: expect.stringContaining(`The directory ${dirname(keyFile)} can be written by other users`),
    });
    expect((await stat(dirname(keyFile))).mode & 0o7777).toBe(0o1777);
  });
});

describe("FileKeyProvider.preload", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let keyFile: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    keyFile = join(dir, "state", "store.key");
  });
  afterEach(() => cleanup());

  const clock = new VirtualClock(Date.UTC(2026, 11, 2, 10, 20, 30, 400));
  const provider = (logger: Logger = captureLogger().logger) => keyProvider({ keyFile, logger, clock });
  /** Every file and directory under `dir`, with its mode and content: what preload must not change. */
  const snapshot = async (): Promise<string[]> => {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return Promise.all(
      entries.map(async (entry) => {
        const path = join(entry.parentPath, entry.name);
        const mode = ((await lstat(path)).mode & 0o7777).toString(8);
        const content = entry.isFile() ? (await readFile(path)).toString("hex") : "";
        return `${path} ${mode} ${content}`;
      }),
    ).then((lines) => lines.sort());
  };

  it("derives the key getKey would, and getKey then uses it", async () => {
    const key = await provider().getKey();
    const before = await snapshot();
    const source = provider();
    await source.preload();
    expect(await snapshot()).toEqual(before);
    expect((await source.getKey()).equals(key)).toBe(true);
  });

  it("creates nothing when there is no key file; getKey then makes it as always", async () => {
    const source = provider();
    await source.preload();
    expect(await readdir(dir)).toEqual([]);
    expect(await source.getKey()).toHaveLength(32);
    expect(await readFile(keyFile)).toHaveLength(32);
  });

  it("leaves a key file others can read to getKey, which sets it to 0600 and warns", async () => {
    const key = await provider().getKey();
    await chmod(keyFile, 0o644);
    const { logger, records } = captureLogger();
    const source = provider(logger);
    await source.preload();
    expect(await modeOf(keyFile)).toBe(0o644);
    expect(records).toEqual([]);
    expect((await source.getKey()).equals(key)).toBe(true);
    expect(await modeOf(keyFile)).toBe(0o600);
    expect(records.map((record) => record.msg)).toEqual(["Key file was readable by others; set to 0600"]);
  });

  it("leaves a damaged key file to getKey, which repairs it", async () => {
    await provider().getKey();
    await writeFile(keyFile, Buffer.alloc(7, 1));
    const before = await snapshot();
    const { logger, records } = captureLogger();
    const source = provider(logger);
    await source.preload();
    expect(await snapshot()).toEqual(before);
    expect(await source.getKey()).toHaveLength(32);
    expect(await readFile(keyFile)).toHaveLength(32);
    expect(records.filter((record) => record.level === "warn")).toHaveLength(1);
  });

  it("leaves failures to getKey: a shared state directory, a key file that cannot be read", async () => {
    await provider().getKey();
    await chmod(dirname(keyFile), 0o1777);
    const shared = provider();
    await shared.preload();
    await expect(shared.getKey()).rejects.toMatchObject({
      code: "E_STORE",
      message: expect.stringContaining(`The directory ${dirname(keyFile)} can be written by other users`),
    });

    await chmod(dirname(keyFile), 0o700);
    await rm(keyFile);
    await mkdir(keyFile);
    const blocked = provider();
    await blocked.preload();
    await expect(blocked.getKey()).rejects.toMatchObject({
      code: "E_STORE",
      message: expect.stringMatching(/^Cannot read the key file .* \(EISDIR\)/),
    });
  });
});

describe("FileKeyProvider with a damaged key file", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let state: string;
  let keyFile: string;
  let tokensDir: string;
  let clock: VirtualClock;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    state = join(dir, "state");
    keyFile = join(state, "store.key");
    tokensDir = join(state, "tokens");
    clock = new VirtualClock(Date.UTC(2026, 11, 2, 10, 20, 30, 400));
  });
  afterEach(() => cleanup());

  const STAMP = "2026-12-02T10-20-30.400Z";
  const provider = (logger: Logger) => keyProvider({ keyFile, logger, clock });
  const warnings = (records: readonly LogRecord[]) => records.filter((record) => record.level === "warn");
  const sentence = (bytes: number, tokenFiles: string) =>
    `The token store key ${keyFile} was damaged (${bytes} bytes instead of 32); it was set aside as ${keyFile}.corrupt-${STAMP} ${tokenFiles}, and a new key was created: every profile must sign in again.`;

  /** A state directory in use: a key and the token files of two profiles it encrypted. */
  async function stateInUse(): Promise<Buffer> {
    const key = await provider(captureLogger().logger).getKey();
    await mkdir(tokensDir, { recursive: true });
    await writeFile(join(tokensDir, "work.cache"), "encrypted with the old key");
    await writeFile(join(tokensDir, "lab.cache"), "encrypted with the old key too");
    // Not token files of a profile: left where they are.
    await writeFile(join(tokensDir, "work.cache.corrupt-2026-01-01T00-00-00.000Z"), "older copy");
    await writeFile(join(tokensDir, ".work.cache.0123456789ab.tmp"), "crashed write");
    return key;
  }

  it.each([
    { what: "empty after a power cut", damage: Buffer.alloc(0) },
    { what: "cut short", damage: Buffer.alloc(7, 1) },
    { what: "too long", damage: Buffer.alloc(33, 2) },
  ])(
    "$what: it is set aside with the token files it encrypted, a new key is made, and one warning says so",
    async ({ damage }) => {
      const old = await stateInUse();
      await writeFile(keyFile, damage);
      const { logger, records } = captureLogger();

      const fresh = await provider(logger).getKey();
      expect(fresh).toHaveLength(32);
      expect(fresh.equals(old)).toBe(false);
      expect(await readFile(keyFile)).toHaveLength(32);
      expect(((await stat(keyFile)).mode & 0o777).toString(8)).toBe("600");
      expect(await readFile(`${keyFile}.corrupt-${STAMP}`)).toEqual(damage);
      expect((await readdir(tokensDir)).sort()).toEqual([
        ".work.cache.0123456789ab.tmp",
        `lab.cache.corrupt-${STAMP}`,
        "work.cache.corrupt-2026-01-01T00-00-00.000Z",
        `work.cache.corrupt-${STAMP}`,
      ]);
      expect(warnings(records).map((record) => record.msg)).toEqual([
        sentence(damage.length, "with the 2 token files it encrypted"),
      ]);
      // The new key is the one from now on.
      expect((await provider(logger).getKey()).equals(fresh)).toBe(true);
      expect(warnings(records)).toHaveLength(1);
    },
  );

  it("says so when the key encrypted no token file, and when it encrypted one", async () => {
    await mkdir(state, { recursive: true });
    await writeFile(keyFile, "x");
    const none = captureLogger();
    await provider(none.logger).getKey();
    expect(warnings(none.records).map((record) => record.msg)).toEqual([
      sentence(1, "(it encrypted no token files)"),
    ]);

    clock.advance(1000);
    await mkdir(tokensDir);
    await writeFile(join(tokensDir, "work.cache"), "x");
    await writeFile(keyFile, "");
    const one = captureLogger();
    await provider(one.logger).getKey();
    expect(warnings(one.records).map((record) => record.msg)).toEqual([
      sentence(0, "with the 1 token file it encrypted").replaceAll("30.400Z", "31.400Z"),
    ]);
  });

  it("an endless key file (a link to /dev/zero) is damage too, found without reading it all", async () => {
    await mkdir(state, { recursive: true });
    await symlink("/dev/zero", keyFile);
    const { logger, records } = captureLogger();
    expect(await provider(logger).getKey()).toHaveLength(32);
    expect(warnings(records).map((record) => record.msg)).toEqual([
      `The token store key ${keyFile} was damaged (more than 4096 bytes instead of 32); it was set aside as ${keyFile}.corrupt-${STAMP} (it encrypted no token files), and a new key was created: every profile must sign in again.`,
    ]);
    expect((await lstat(`${keyFile}.corrupt-${STAMP}`)).isSymbolicLink()).toBe(true);
    expect(await readFile(keyFile)).toHaveLength(32);
  });

  it("a key file that cannot be read is E_STORE, not damage: nothing is set aside", async () => {
    await mkdir(keyFile, { recursive: true });
    await expect(provider(captureLogger().logger).getKey()).rejects.toMatchObject({
      code: "E_STORE",
      message: `Cannot read the key file ${keyFile} (EISDIR). A directory is in the way: move it aside.`,
    });
    expect(await readdir(state)).toEqual(["store.key"]);
  });

  it("does not repeat the unbound-key note on an unidentified machine: one warning", async () => {
    await mkdir(state, { recursive: true });
    await writeFile(keyFile, "short");
    const { logger, records } = captureLogger();
    await keyProvider({ keyFile, logger, clock, identity: UNKNOWN_MACHINE }).getKey();
    expect(warnings(records)).toHaveLength(1);
    expect(warnings(records)[0]?.msg).toMatch(/^The token store key .* was damaged/);
  });

  it("processes that find the damage at the same moment end with one new key, one copy and one warning", async () => {
    for (let round = 0; round < 5; round++) {
      clock.advance(1000);
      await mkdir(tokensDir, { recursive: true });
      await writeFile(join(tokensDir, "work.cache"), `tokens ${round}`);
      await writeFile(keyFile, `damaged ${round}`);
      const { logger, records } = captureLogger();
      // Each with its own lock manager and file descriptors, as separate processes have.
      const keys = await Promise.all(Array.from({ length: 4 }, () => provider(logger).getKey()));
      for (const key of keys) expect(key.equals(keys[0] as Buffer)).toBe(true);
      expect(warnings(records)).toHaveLength(1);
      const asideKeys = (await readdir(state)).filter((name) => name.startsWith("store.key.corrupt-"));
      expect(asideKeys).toHaveLength(round + 1);
      expect(await readFile(keyFile)).toHaveLength(32);
    }
  });

  it("a too-short systemd credential stays E_CONFIG and sets nothing aside", async () => {
    await mkdir(state, { recursive: true });
    await writeFile(keyFile, "damaged, but not in use");
    const credentialKeyFile = join(dir, "entratool.key");
    await writeFile(credentialKeyFile, "short");
    const { logger, records } = captureLogger();
    await expect(keyProvider({ keyFile, credentialKeyFile, logger, clock }).getKey()).rejects.toMatchObject({
      code: "E_CONFIG",
      message: expect.stringContaining(credentialKeyFile),
    });
    expect((await readdir(state)).sort()).toEqual(["store.key"]);
    expect(await readFile(credentialKeyFile, "utf8")).toBe("short");
    expect(warnings(records)).toEqual([]);
  });

  it("through the token store: the profile reads as signed out with only the key's warning, and signs in afresh", async () => {
    const { logger, records } = captureLogger();
    const store = () => new FileTokenStore({ tokensDir, keyProvider: provider(logger), logger, clock });
    const pca = new PublicClientApplication({
      auth: { clientId: "11111111-2222-3333-4444-555555555555" },
      cache: { cachePlugin: store().cachePlugin("work") },
    });
    const save = async (profile: string) => {
      const cache = pca.getTokenCache();
      cache.deserialize(
        JSON.stringify({ Account: {}, IdToken: {}, AccessToken: {}, RefreshToken: {}, AppMetadata: {} }),
      );
      await store().cachePlugin(profile).afterCacheAccess(new TokenCacheContext(cache, true));
    };
    await save("work");
    await save("lab");
    expect(await store().readCache("work")).toBeDefined();

    await writeFile(keyFile, "");
    const before = records.length;
    expect(await store().readCache("work")).toBeUndefined();
    expect(await store().readCache("lab")).toBeUndefined();
    expect(warnings(records.slice(before)).map((record) => record.msg)).toEqual([
      sentence(0, "with the 2 token files it encrypted"),
    ]);
    await save("work");
    expect(await store().readCache("work")).toBeDefined();
    expect(warnings(records.slice(before))).toHaveLength(1);
  });
});
