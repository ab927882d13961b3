import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, test } from "vitest";

/**
 * The house in layers (README "Architecture"): each folder may import only the layers below it and
 * itself, and no module may reach itself again through its imports. Type-only imports count too: a
 * type is a dependency of the design even when it costs nothing at run time. Dynamic `import("…")`
 * of a literal path counts as well; computed specifiers (the composition root's lazily loaded
 * entrypoints) are the only way around, and they live in agent/main.ts alone.
 */

const ROOT = resolve(import.meta.dirname, "..");

interface Layer {
  readonly name: string;
  /** Path prefixes (relative to the repository) of the files in this layer. */
  readonly paths: readonly string[];
  /** Layers this one may import, besides itself; "all below": every layer listed before it. */
  readonly may: readonly string[] | "all below";
}

/** Lowest first. A file belongs to the first layer with a matching prefix. */
const LAYERS: readonly Layer[] = [
  { name: "core", paths: ["agent/core/"], may: [] },
  { name: "linux", paths: ["agent/linux/"], may: ["core"] },
  { name: "store", paths: ["agent/store/"], may: ["core", "linux"] },
  { name: "bus", paths: ["display/bus/"], may: ["core", "linux"] },
  // The session's state type is the one thing display/ takes from agent/auth (screens derive from it).
  { name: "session-state", paths: ["agent/auth/session-state.ts"], may: [] },
  { name: "auth", paths: ["agent/auth/"], may: ["core", "linux", "store", "session-state"] },
  { name: "display", paths: ["display/"], may: ["core", "linux", "bus", "session-state"] },
  {
    name: "telemetry",
    paths: ["agent/telemetry/"],
    may: ["core", "linux", "store", "session-state", "auth"],
  },
  // The configuration puts together the schemas that live with their code (displays, sources,
  // sinks, the outbox), so it sits above them.
  {
    name: "config",
    paths: ["agent/config/"],
    may: ["core", "linux", "store", "bus", "display", "session-state", "telemetry"],
  },
  // First-boot provisioning checks the operator's file with the configuration's schema.
  { name: "provision", paths: ["agent/provision/"], may: ["core", "linux", "store", "config"] },
  { name: "service", paths: ["agent/service/"], may: "all below" },
  { name: "cli", paths: ["agent/cli/"], may: "all below" },
  // The composition root and the entrypoints it loads lazily, beside it.
  { name: "root", paths: ["agent/"], may: "all below" },
];

function layerOf(file: string): Layer | undefined {
  return LAYERS.find((layer) => layer.paths.some((prefix) => file === prefix || file.startsWith(prefix)));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

// `import … from "x"`, `export … from "x"`, `import "x"`, `import("x")`, `require("x")`.
const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)|\brequire\(\s*["']([^"']+)["']\s*\)/g;

/** Comments removed, so that an example in a comment is not an import. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

/** The repository files `file` imports (relative specifiers only; packages and node: are not ours). */
function importsOf(file: string): string[] {
  const text = code(readFileSync(join(ROOT, file), "utf8"));
  const found: string[] = [];
  for (const match of text.matchAll(SPECIFIER)) {
    const specifier = match[1] ?? match[2] ?? match[3] ?? "";
    if (!specifier.startsWith(".")) continue;
    found.push(relative(ROOT, resolve(ROOT, dirname(file), specifier)));
  }
  return found;
}

/**
 * The files `file` loads when it is evaluated: static imports that are not `import type` (dynamic
 * imports are loaded only when called, and type-only imports are erased).
 */
function valueImportsOf(file: string): string[] {
  const text = code(readFileSync(join(ROOT, file), "utf8"));
  const found: string[] = [];
  for (const match of text.matchAll(
    /(?:^|[\s;])(?:import|export)\s+(?!type\s)(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/g,
  )) {
    const specifier = match[1] ?? "";
    if (specifier.startsWith(".")) found.push(relative(ROOT, resolve(ROOT, dirname(file), specifier)));
  }
  return found;
}

/** The node: modules (or their bare names) that `file` loads when it is evaluated, as valueImportsOf. */
function nodeValueImportsOf(file: string): string[] {
  const text = code(readFileSync(join(ROOT, file), "utf8"));
  const found: string[] = [];
  for (const match of text.matchAll(
    /(?:^|[\s;])(?:import|export)\s+(?!type\s)(?:[^"';]*?\s+from\s+)?["']([^"'.][^"']*)["']/g,
  )) {
    found.push(match[1] ?? "");
  }
  return found;
}

/** Every file evaluated when `entry` is. */
function loadedWith(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const next of valueImportsOf(file)) visit(next);
  };
  visit(entry);
  return seen;
}

const files = [...sourceFiles("agent"), ...sourceFiles("display")];
const graph = new Map(files.map((file) => [file, importsOf(file)]));

/** Every import circle, each as the list of files around it (found by depth-first search). */
function circles(): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === "open") found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of files) if (state.get(file) === undefined) visit(file);
  return found;
}

describe("the house in layers", () => {
  test("the parser sees every kind of import", () => {
    expect(importsOf("agent/main.ts")).toContain("agent/core/clock.ts");
    expect(graph.get("display/screens.ts")).toEqual(["agent/auth/session-state.ts"]);
  });

  test("every file of agent/ and display/ is in a layer", () => {
    expect(files.filter((file) => layerOf(file) === undefined)).toEqual([]);
  });

  test("no import circles", () => {
    expect(circles().map((circle) => circle.join(" -> "))).toEqual([]);
  });

  test("no import runs upwards or sideways through the layers", () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      const from = layerOf(file);
      for (const target of imports) {
        if (target.startsWith("test/") || target.startsWith("scripts/")) {
          wrong.push(`${file} -> ${target} (production code never imports tests or scripts)`);
          continue;
        }
        const to = layerOf(target);
        if (from === undefined || to === undefined || to === from) continue;
        const allowed =
          from.may === "all below" ? LAYERS.indexOf(to) < LAYERS.indexOf(from) : from.may.includes(to.name);
        if (!allowed) wrong.push(`${file} (${from.name}) -> ${target} (${to.name})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test("the real-hardware path never loads a simulator (previews and tests load them when asked)", () => {
    const simulator =
      /^display\/(sim\/|simulated\.ts|preview\.ts|drivers\/[^/]+\/(sim|simulate|picture)\.ts)/;
    for (const entry of [
      "agent/main.ts",
      "agent/display-cli.ts",
      "display/hardware.ts",
      "display/registry.ts",
    ]) {
      const loaded = [...loadedWith(entry)];
      expect(loaded.length, entry).toBeGreaterThan(3);
      expect(
        loaded.filter((file) => simulator.test(file)),
        entry,
      ).toEqual([]);
    }
  });

  test("nothing loaded at every start imports node:fs, node:fs/promises, node:util or node:path", () => {
    // Loading their JavaScript layer costs every start of the compiled binary a few ms, more than a
    // cached `get-token` does otherwise (README "Benchmark"): Bun's file API reads and stats, what
    // writes imports node:fs inside the function that needs it, and agent/core/path.ts does paths.
    const slow = /^(?:node:)?(?:fs|fs\/promises|util|path)$/;
    const loaded = [...loadedWith("agent/main.ts")];
    expect(loaded).toContain("agent/store/encrypted-adapter.ts");
    const found = loaded.flatMap((file) =>
      nodeValueImportsOf(file)
        .filter((specifier) => slow.test(specifier))
        .map((specifier) => `${file} imports ${specifier}`),
    );
    expect(found).toEqual([]);
    expect(nodeValueImportsOf("agent/linux/fd-stream.ts")).toContain("node:fs");
  });

  test("the low layer imports nothing of ours above it", () => {
    const core = [...graph].filter(([file]) => layerOf(file)?.name === "core");
    expect(core.length).toBeGreaterThan(5);
    for (const [file, imports] of core) {
      for (const target of imports) expect(target, file).toMatch(/^agent\/core\//);
    }
  });
});
