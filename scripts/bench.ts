/**
 * `npm run bench`: sign-in start-up and footprint, measured in one run against one local emulator.
 *
 *   1. process start → user code on stderr: dist/entratool vs the reference script
 *      (scripts/bench-reference.mjs, msal-node's device code sample) on Node.
 *   2. a cached `get-token --output json` vs an empty program compiled the same way (and plain
 *      `bun` starting an empty file, for context).
 *   3. peak RSS of each: a whole sign-in, the cached call, the empty program.
 *
 * Goals: (1) ≤ 0.5× the reference; (2) ≤ 3× the empty program; RSS ≤ 60 MiB.
 * Prints a table and writes bench/results.json. Usage: bun scripts/bench.ts [--runs N]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { machine, type Stats, stats, writeResults } from "./bench-results.ts";
import { DEFAULT_TENANT_ID, DEMO_CLIENT_ID, demoProfileArgs, EntraEmulator } from "./emulator/server.ts";

const root = join(import.meta.dir, "..");
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15;
const MIB = 1024 * 1024;
const CODE = /code ([A-Z0-9]{4}-?[A-Z0-9]{4})/;

interface Run {
  readonly ms: number;
  /** Peak resident set, bytes (0 unless measured with `peakRss`). */
  readonly maxRss: number;
  readonly stdout: string;
}

const GNU_TIME = "/usr/bin/time";

/**
 * Runs a command; when `onCode` is given, the clock stops at the first user code on stderr and
 * `onCode` decides whether the process is killed there or left to finish (sign in).
 */
async function measure(
  cmd: string[],
  env: Record<string, string>,
  onCode?: (code: string) => "kill" | "continue",
): Promise<Run> {
  const started = performance.now();
  const proc = Bun.spawn(cmd, { env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  return await collect(proc, cmd, started, onCode);
}

/**
 * Peak RSS of a run that ends by itself, from GNU time's `%M` (kilobytes): the kernel's own
 * account of the child. (Bun's `resourceUsage().maxRSS` was seen reporting the parent's figure.)
 */
async function peakRss(
  cmd: string[],
  env: Record<string, string>,
  onCode?: (code: string) => "continue",
): Promise<Run> {
  const out = join(tmpdir(), `entratool-bench-rss-${process.pid}`);
  const proc = Bun.spawn([GNU_TIME, "-f", "%M", "-o", out, ...cmd], {
    env,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const run = await collect(proc, cmd, performance.now(), onCode);
  const kib = Number(readFileSync(out, "utf8").trim().split("\n").pop());
  rmSync(out, { force: true });
  return { ...run, maxRss: kib * 1024 };
}

async function collect(
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">,
  cmd: string[],
  started: number,
  onCode?: (code: string) => "kill" | "continue",
): Promise<Run> {
  let ms = 0;
  const stderr = (async () => {
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) {
      text += decoder.decode(chunk, { stream: true });
      const match = ms === 0 ? CODE.exec(text) : null;
      if (match && onCode) {
        ms = performance.now() - started;
        if (onCode(match[1] ?? "") === "kill") proc.kill("SIGKILL");
      }
    }
    return text;
  })();
  const stdout = await new Response(proc.stdout).text();
  const exitCode = await proc.exited;
  const errText = await stderr;
  if (!onCode) ms = performance.now() - started;
  if (onCode && ms === 0) throw new Error(`no user code from ${cmd.join(" ")}:\n${errText}`);
  if (!onCode && exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${exitCode}:\n${errText}`);
  return { ms, maxRss: 0, stdout };
}

function compileEmpty(dir: string): string {
  const source = join(dir, "empty.ts");
  const out = join(dir, "empty");
  writeFileSync(source, "");
  const result = spawnSync(
    process.execPath,
    ["build", "--compile", "--minify", "--bytecode", source, "--outfile", out],
    { encoding: "utf8" },
  );
  if (result.status !== 0) throw new Error(`compiling the empty program failed: ${result.stderr}`);
  return out;
}

function nodeVersion(): string {
  return spawnSync("node", ["--version"], { encoding: "utf8" }).stdout.trim();
}

async function main(): Promise<void> {
  if (!existsSync(GNU_TIME)) {
    process.stderr.write("The benchmark measures peak RSS with GNU time: apt-get install -y time\n");
    process.exit(2);
  }
  spawnSync(process.execPath, [join(root, "scripts", "build.ts"), "--host-only"], { stdio: "inherit" });
  const work = mkdtempSync(join(tmpdir(), "entratool-bench-"));
  const emulator = new EntraEmulator({ tlsDir: join(root, ".emulator"), port: 0, defaults: { interval: 1 } });
  const { authorityHost, caPath } = await emulator.start();
  try {
    const home = join(work, "home");
    const base = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work, NODE_EXTRA_CA_CERTS: caPath };
    const env = { ...base, ENTRATOOL_HOME: home };
    const binary = join(root, "dist", "entratool");
    const entratool = (...args: string[]) => [binary, ...args];
    const reference = ["node", join(root, "scripts", "bench-reference.mjs")];
    const refEnv = { ...base, AUTHORITY: `${authorityHost}/${DEFAULT_TENANT_ID}`, CLIENT_ID: DEMO_CLIENT_ID };
    const empty = compileEmpty(work);
    const emptyTs = join(work, "empty.ts");

    await measure(entratool(...demoProfileArgs({ authorityHost, scopes: ["User.Read"] })), env);

    // 1. Start → user code, interleaved so that both see the same machine load.
    const toCode = { entratool: [] as Run[], reference: [] as Run[] };
    for (let i = 0; i < RUNS; i++) {
      toCode.entratool.push(
        await measure(entratool("get-token", "--flow", "device-code"), env, () => "kill"),
      );
      toCode.reference.push(await measure(reference, refEnv, () => "kill"));
    }

    // 3 (first part). A whole sign-in each, approved as soon as the code shows: peak RSS.
    const approve = (userCode: string) => {
      emulator.approve({ userCode });
      return "continue" as const;
    };
    const fullEntratool = await peakRss(entratool("get-token", "--flow", "device-code"), env, approve);
    const fullReference = await peakRss(reference, refEnv, approve);

    // 2. Cached token vs an empty program.
    const cached: Run[] = [];
    const emptyRuns: Run[] = [];
    const bunEmpty: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      cached.push(await measure(entratool("get-token", "--output", "json"), env));
      emptyRuns.push(await measure([empty], base));
      bunEmpty.push(await measure([process.execPath, emptyTs], base));
    }
    const cachedRss = await peakRss(entratool("get-token", "--output", "json"), env);
    const emptyRss = await peakRss([empty], base);
    const bunEmptyRss = await peakRss([process.execPath, emptyTs], base);
    const fromCache = cached.every((run) => (JSON.parse(run.stdout) as { from_cache: boolean }).from_cache);
    if (!fromCache) throw new Error("a cached get-token went to the network");

    const codeE = stats(toCode.entratool.map((r) => r.ms));
    const codeR = stats(toCode.reference.map((r) => r.ms));
    const cachedS = stats(cached.map((r) => r.ms));
    const emptyS = stats(emptyRuns.map((r) => r.ms));
    const bunEmptyS = stats(bunEmpty.map((r) => r.ms));
    const rss = {
      signInEntratool: fullEntratool.maxRss,
      signInReference: fullReference.maxRss,
      cachedEntratool: cachedRss.maxRss,
      emptyProgram: emptyRss.maxRss,
      bunEmptyProgram: bunEmptyRss.maxRss,
    };
    const goals = [
      {
        goal: "start → user code ≤ 0.5× reference",
        actual: codeE.median / codeR.median,
        limit: 0.5,
      },
      {
        goal: "cached get-token ≤ 3× empty compiled program",
        actual: cachedS.median / emptyS.median,
        limit: 3,
      },
      { goal: "peak RSS, sign-in ≤ 60 MiB", actual: rss.signInEntratool / MIB, limit: 60 },
      { goal: "peak RSS, cached get-token ≤ 60 MiB", actual: rss.cachedEntratool / MIB, limit: 60 },
    ].map((g) => ({ ...g, actual: Math.round(g.actual * 100) / 100, pass: g.actual <= g.limit }));

    const ranOn = { ...machine(), node: nodeVersion() };
    const fmt = (s: Stats) => `${s.median.toFixed(1)} ms (${s.min.toFixed(1)}–${s.max.toFixed(1)})`;
    const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;
    const rows: [string, string, string][] = [
      ["start → user code: entratool", fmt(codeE), "–"],
      ["start → user code: reference (Node)", fmt(codeR), "–"],
      ["whole sign-in: entratool", `${fullEntratool.ms.toFixed(1)} ms to code`, mib(rss.signInEntratool)],
      [
        "whole sign-in: reference (Node)",
        `${fullReference.ms.toFixed(1)} ms to code`,
        mib(rss.signInReference),
      ],
      ["cached get-token --output json", fmt(cachedS), mib(rss.cachedEntratool)],
      ["empty program, compiled", fmt(emptyS), mib(rss.emptyProgram)],
      ["empty program, bun empty.ts", fmt(bunEmptyS), mib(rss.bunEmptyProgram)],
    ];
    const width = Math.max(...rows.map((r) => r[0].length));
    process.stdout.write(
      `\n${ranOn.cpu}, ${ranOn.cores} cores, Bun ${ranOn.bun}, Node ${ranOn.node}; ${RUNS} runs, median (min–max)\n\n`,
    );
    process.stdout.write(`${"measurement".padEnd(width)}  ${"time".padEnd(30)}  peak RSS\n`);
    for (const [name, time, peak] of rows)
      process.stdout.write(`${name.padEnd(width)}  ${time.padEnd(30)}  ${peak}\n`);
    process.stdout.write("\n");
    for (const g of goals) process.stdout.write(`${g.pass ? "PASS" : "FAIL"}  ${g.goal}: ${g.actual}\n`);

    mkdirSync(join(root, "bench"), { recursive: true });
    const results = {
      date: new Date().toISOString(),
      machine: ranOn,
      runs: RUNS,
      timeToUserCodeMs: { entratool: codeE, reference: codeR },
      cachedGetTokenMs: cachedS,
      emptyProgramMs: { compiled: emptyS, bun: bunEmptyS },
      peakRssBytes: rss,
      goals,
    };
    // Keep the other benchmarks' figures ("displays", "idleCpu", "agent": their own scripts).
    writeResults(results);
    process.stdout.write("\nwrote bench/results.json\n");
  } finally {
    await emulator.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
