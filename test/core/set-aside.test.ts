import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { isSetAsideOf, setAside } from "../../agent/core/set-aside.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-aside-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("setAside", () => {
  test("renames the file beside itself with the time, keeping its content", async () => {
    const clock = new VirtualClock(Date.UTC(2026, 11, 2, 10, 20, 30, 400));
    const file = join(dir, "store.key");
    await writeFile(file, "damaged");
    const aside = await setAside(file, { clock });
    expect(aside).toBe(join(dir, "store.key.corrupt-2026-12-02T10-20-30.400Z"));
    expect(await readFile(aside as string, "utf8")).toBe("damaged");
    expect(await readdir(dir)).toEqual(["store.key.corrupt-2026-12-02T10-20-30.400Z"]);
  });

  test("a file already gone is no error", async () => {
    expect(await setAside(join(dir, "absent"), { clock: new VirtualClock() })).toBeUndefined();
  });

  test("two in the same millisecond are both kept", async () => {
    const clock = new VirtualClock();
    const file = join(dir, "a.cache");
    await writeFile(file, "1");
    const first = await setAside(file, { clock });
    await writeFile(file, "2");
    const second = await setAside(file, { clock });
    expect(first).not.toBe(second);
    expect(await readFile(second as string, "utf8")).toBe("2");
    expect(await readFile(first as string, "utf8")).toBe("1");
  });

  test("a fault that repeats keeps only the newest few copies of that file, and leaves others alone", async () => {
    const clock = new VirtualClock();
    const file = join(dir, "a.cache");
    const other = join(dir, "b.cache");
    await writeFile(other, "b");
    await setAside(other, { clock });
    for (let i = 0; i < 8; i++) {
      clock.advance(1000);
      await writeFile(file, String(i));
      await setAside(file, { clock, keep: 3 });
    }
    const names = (await readdir(dir)).sort();
    const copies = names.filter((name) => isSetAsideOf(file, name));
    expect(copies).toHaveLength(3);
    const contents = await Promise.all(copies.map((name) => readFile(join(dir, name), "utf8")));
    expect(contents).toEqual(["5", "6", "7"]);
    expect(names.filter((name) => isSetAsideOf(other, name))).toHaveLength(1);
  });

  test("recognises only its own copies", () => {
    expect(isSetAsideOf("/s/a.cache", "a.cache.corrupt-2026-12-02T10-20-30.400Z")).toBe(true);
    expect(isSetAsideOf("/s/a.cache", "a.cache.corrupt-2026-12-02T10-20-30.400Z-2")).toBe(true);
    expect(isSetAsideOf("/s/a.cache", "ab.cache.corrupt-2026-12-02T10-20-30.400Z")).toBe(false);
    expect(isSetAsideOf("/s/a.cache", "a.cache.corrupt-yesterday")).toBe(false);
  });
});
