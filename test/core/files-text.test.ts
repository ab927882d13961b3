import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { readFileCapped } from "../../agent/core/files.ts";
import { safeLine, safeText } from "../../agent/core/text.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-files-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("readFileCapped", () => {
  test("reads a file up to the cap", async () => {
    const file = join(dir, "config.json");
    await writeFile(file, "x".repeat(100));
    expect((await readFileCapped(file, 100)).toString()).toBe("x".repeat(100));
  });

  test("a file over the cap is EFBIG", async () => {
    const file = join(dir, "config.json");
    await writeFile(file, "x".repeat(101));
    await expect(readFileCapped(file, 100)).rejects.toMatchObject({ code: "EFBIG" });
  });

  test("an endless file is EFBIG after reading no more than the cap", async () => {
    const before = process.memoryUsage().rss;
    await expect(readFileCapped("/dev/zero", 1024 * 1024)).rejects.toMatchObject({ code: "EFBIG" });
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });

  test("a FIFO fed forever is EFBIG after the cap", async () => {
    const fifo = join(dir, "config.json");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const writer = spawn("sh", ["-c", `exec yes > '${fifo}'`], { stdio: "ignore" });
    try {
      await expect(readFileCapped(fifo, 64 * 1024)).rejects.toMatchObject({ code: "EFBIG" });
    } finally {
      writer.kill();
    }
  });

  test("a file larger than a first read is read whole, up to the cap", async () => {
    const file = join(dir, "big.json");
    await writeFile(file, "y".repeat(200_000));
    expect((await readFileCapped(file)).toString()).toBe("y".repeat(200_000));
    await expect(readFileCapped(file, 199_999)).rejects.toMatchObject({ code: "EFBIG" });
  });

  test("a missing file, a directory: the system's own codes", async () => {
    await expect(readFileCapped(dir)).rejects.toMatchObject({ code: "EISDIR" });
    await expect(readFileCapped(join(dir, "absent"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("terminal-safe text", () => {
  test("escape sequences, C1 controls, bell and bidi overrides are removed", () => {
    const hostile = "ABCD\u001b[2J\u001b]0;title\u0007-EFGH\u009b31m\u202e";
    expect(safeLine(hostile)).toBe("ABCD[2J]0;title-EFGH31m");
  });

  test("safeText keeps newlines; safeLine folds them", () => {
    expect(safeText("a\r\nb\tc")).toBe("a\nb c");
    expect(safeLine(" a\n\n b ")).toBe("a b");
  });

  test("ordinary text, accents and non-Latin scripts pass unchanged", () => {
    const text = "Ouvrez https://microsoft.com/devicelogin et entrez le code ABCD-EFGH — 認証";
    expect(safeText(text)).toBe(text);
  });
});
