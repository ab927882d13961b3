import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createFileExclusive, ensurePrivateDir, writeFileAtomic } from "../../agent/core/atomic.ts";
import { makeTempDir } from "../store/helpers.ts";

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe("writeFileAtomic", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it("writes the content with mode 0600 and leaves no temp file", async () => {
    const target = join(dir, "data.json");
    await writeFileAtomic(target, '{"a":1}');
    expect(await readFile(target, "utf8")).toBe('{"a":1}');
    expect(await modeOf(target)).toBe(0o600);
    expect(await readdir(dir)).toEqual(["data.json"]);
  });

  it("writes bytes and honours another mode", async () => {
    const target = join(dir, "blob");
    await writeFileAtomic(target, new Uint8Array([0, 1, 2, 255]), 0o640);
    expect([...(await readFile(target))]).toEqual([0, 1, 2, 255]);
    expect(await modeOf(target)).toBe(0o640);
  });

  it("overwrites a file that was chmod'ed 0644 and the result is 0600 again", async () => {
    const target = join(dir, "data.json");
    await writeFileAtomic(target, "old");
    await chmod(target, 0o644);
    await writeFileAtomic(target, "new");
    expect(await readFile(target, "utf8")).toBe("new");
    expect(await modeOf(target)).toBe(0o600);
    expect(await readdir(dir)).toEqual(["data.json"]);
  });

  it("fails without leaving a temp file when the target cannot be replaced", async () => {
    const target = join(dir, "occupied");
    await mkdir(join(target, "child"), { recursive: true });
    await expect(writeFileAtomic(target, "x")).rejects.toMatchObject({ code: expect.any(String) });
    expect(await readdir(dir)).toEqual(["occupied"]);
  });

  it("fails when the directory does not exist", async () => {
    await expect(writeFileAtomic(join(dir, "missing", "f"), "x")).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("createFileExclusive", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it("creates once; a second writer loses and the first content stays", async () => {
    const target = join(dir, "key");
    const results = await Promise.all([
      createFileExclusive(target, "first"),
      createFileExclusive(target, "second"),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const content = await readFile(target, "utf8");
    expect(content).toBe(results[0] ? "first" : "second");
    expect(await modeOf(target)).toBe(0o600);
    expect(await readdir(dir)).toEqual(["key"]);
  });
});

describe("ensurePrivateDir", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it("creates missing parents and the leaf with 0700", async () => {
    const leaf = join(dir, "a", "b", "c");
    await ensurePrivateDir(leaf);
    expect(await modeOf(join(dir, "a"))).toBe(0o700);
    expect(await modeOf(join(dir, "a", "b"))).toBe(0o700);
    expect(await modeOf(leaf)).toBe(0o700);
  });

  it("creates the leaf 0700 even under a umask that would take bits off", async () => {
    const leaf = join(dir, "strict", "leaf");
    const previous = process.umask(0o277);
    try {
      await ensurePrivateDir(leaf);
    } finally {
      process.umask(previous);
    }
    expect(await modeOf(join(dir, "strict"))).toBe(0o700);
    expect(await modeOf(leaf)).toBe(0o700);
  });

  it("leaves the mode of existing directories alone: a 0755 leaf and a 0755 parent stay 0755", async () => {
    const parent = join(dir, "shared");
    const existingLeaf = join(dir, "existing");
    await mkdir(parent);
    await mkdir(existingLeaf);
    await chmod(parent, 0o755);
    await chmod(existingLeaf, 0o755);
    await ensurePrivateDir(join(parent, "private"));
    await ensurePrivateDir(existingLeaf);
    expect(await modeOf(parent)).toBe(0o755);
    expect(await modeOf(join(parent, "private"))).toBe(0o700);
    expect(await modeOf(existingLeaf)).toBe(0o755);
  });

  it.each([
    { mode: 0o1777, shown: "1777", group: "own" },
    { mode: 0o770, shown: "0770", group: "another" },
    { mode: 0o702, shown: "0702", group: "own" },
  ])(
    "refuses an existing directory of mode $shown ($group group) with E_STORE and leaves it as it is",
    async ({ mode, shown, group }) => {
      const shared = join(dir, "shared");
      await mkdir(shared);
      // 65534 is nogroup on Debian: a group that is not this user's.
      if (group === "another") await chown(shared, process.getuid?.() ?? 0, 65534);
      await chmod(shared, mode);
      await expect(ensurePrivateDir(shared)).rejects.toMatchObject({
        code: "E_STORE",
        message: `The directory ${shared} can be written by other users (mode ${shown}), so entratool will not keep its files there: make it private to this user ('chmod go-w ${shared}') or set ENTRATOOL_HOME to a directory of its own.`,
      });
      expect((await stat(shared)).mode & 0o7777).toBe(mode);
      expect(await readdir(shared)).toEqual([]);
    },
  );

  it("creates nothing in a directory others could rename it out of (writable, no sticky bit)", async () => {
    const shared = join(dir, "shared");
    await mkdir(shared);
    await chmod(shared, 0o777);
    await expect(ensurePrivateDir(join(shared, "state", "tokens"))).rejects.toMatchObject({
      code: "E_STORE",
      message: `entratool would create ${join(shared, "state")} in ${shared}, which other users can write (mode 0777) without the sticky bit, so they could replace it: set ENTRATOOL_HOME to a directory of your own.`,
    });
    expect(await readdir(shared)).toEqual([]);
  });

  it("creates its private directories in /tmp-like directories (sticky) and in the user's own group's", async () => {
    const sticky = join(dir, "tmp");
    await mkdir(sticky);
    await chmod(sticky, 0o1777);
    await ensurePrivateDir(join(sticky, "home", "state"));
    expect(await modeOf(join(sticky, "home"))).toBe(0o700);
    expect(await modeOf(join(sticky, "home", "state"))).toBe(0o700);
    // A user private group (umask 002 systems): group-writable, but the group is the user.
    const own = join(dir, "own");
    await mkdir(own);
    await chmod(own, 0o775);
    await ensurePrivateDir(own);
    await ensurePrivateDir(join(own, "entratool"));
    expect(await modeOf(own)).toBe(0o775);
    expect(await modeOf(join(own, "entratool"))).toBe(0o700);
  });

  it("rejects a path that is a file, or lies under one, with ENOTDIR", async () => {
    const file = join(dir, "file");
    await writeFile(file, "x");
    await expect(ensurePrivateDir(file)).rejects.toMatchObject({ code: "ENOTDIR" });
    await expect(ensurePrivateDir(join(file, "below"))).rejects.toMatchObject({ code: "ENOTDIR" });
  });
});
