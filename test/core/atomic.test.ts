import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
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

  it("tightens an existing leaf to 0700 and leaves its existing parent alone", async () => {
    const parent = join(dir, "shared");
    const leaf = join(parent, "private");
    await mkdir(leaf, { recursive: true });
    await chmod(parent, 0o755);
    await chmod(leaf, 0o755);
    await ensurePrivateDir(leaf);
    expect(await modeOf(leaf)).toBe(0o700);
    expect(await modeOf(parent)).toBe(0o755);
  });

  it("rejects a path that is a file", async () => {
    const file = join(dir, "file");
    await writeFile(file, "x");
    await expect(ensurePrivateDir(file)).rejects.toMatchObject({ code: expect.any(String) });
  });
});
