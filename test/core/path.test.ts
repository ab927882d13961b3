import * as node from "node:path";
import { describe, expect, test } from "vitest";
import * as ours from "../../agent/core/path.ts";

/** Paths as they come: from the environment, with odd slashes, dots, and names with dots in them. */
const SAMPLES: readonly string[] = [
  "",
  "/",
  "//",
  "///",
  ".",
  "..",
  "./",
  "../",
  "a",
  "a/",
  "/a",
  "/a/",
  "//a",
  "//a//",
  "/a/b/c",
  "/a/b/c/",
  "/a//b///c",
  "/a/./b/../c",
  "/a/b/../../..",
  "/../a",
  "a/../..",
  "../a/b",
  "./a/./b/.",
  "a/b/../../c/./d",
  "/srv/et/state/tokens/work.cache",
  ".work.cache.0a1b2c3d4e5f.tmp",
  "/srv/et/state/tokens/.work.cache.0a1b2c3d4e5f.tmp",
  "/var/lib/entratool/store.key.corrupt-2026-11-27T12-00-00.000Z",
  "/a/...",
  "/a/.../b",
  "/a/..b/c",
  "/a/b./c",
  "...",
  "/run/credentials/entratool.service/entratool.key",
];

/** Every sample, and random paths made of the pieces that matter to the algorithms. */
function cases(count: number): string[] {
  const pieces = ["/", "//", ".", "..", "...", "a", "bc", ".d", "e.", "x.y"];
  let seed = 20261127;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const made: string[] = [];
  for (let i = 0; i < count; i++) {
    let path = "";
    for (let n = random(7); n > 0; n--) path += pieces[random(pieces.length)];
    made.push(path);
  }
  return [...SAMPLES, ...made];
}

describe("core/path gives node:path's answers", () => {
  const paths = cases(2000);

  test("dirname, basename, normalize", () => {
    for (const path of paths) {
      expect(ours.dirname(path), `dirname(${JSON.stringify(path)})`).toBe(node.dirname(path));
      expect(ours.basename(path), `basename(${JSON.stringify(path)})`).toBe(node.basename(path));
      expect(ours.normalize(path), `normalize(${JSON.stringify(path)})`).toBe(node.normalize(path));
    }
  });

  test("join and resolve, of one, two and three parts", () => {
    for (let i = 0; i < paths.length; i++) {
      const a = paths[i] as string;
      const b = paths[(i * 7 + 3) % paths.length] as string;
      const c = paths[(i * 13 + 5) % paths.length] as string;
      for (const parts of [[a], [a, b], [a, b, c]]) {
        const shown = JSON.stringify(parts);
        expect(ours.join(...parts), `join(${shown})`).toBe(node.join(...parts));
        expect(ours.resolve(...parts), `resolve(${shown})`).toBe(node.resolve(...parts));
      }
    }
    expect(ours.join()).toBe(node.join());
    expect(ours.resolve()).toBe(node.resolve());
  });
});
