/**
 * `npm run bench:idle`: what an idle board costs while it waits for a sign-in with a button.
 *
 * This machine has no GPIO chip, so what can be measured is measured apart:
 *   (a) the button's watch. This file, compiled with `bun build --compile` as the agent is, runs
 *       as three idle processes side by side:
 *         idle    nothing but Bun itself (and a read of stdin, which every mode has);
 *         watch   the real GpioCdev/CdevGpioLine.watch on a stand-in line fd: the fake GPIO
 *                 kernel of the tests (test/display/bus/fake-gpio-kernel.ts) answers the ioctls
 *                 and hands out a real pipe's read end from GPIO_V2_GET_LINE_IOCTL;
 *         poll10  the watch as it was before, a non-blocking read(2) of the line fd every 10 ms on
 *                 a timer (reproduced below, `pollEvery10ms`).
 *       Each sits idle for the window, then gets a few edges (real encoded gpio_v2_line_event
 *       structs written into the pipe) whose latency it measures, then closes the line.
 *   (b) the whole program: dist/entratool `get-token --flow device-code` against the local Entra
 *       emulator, waiting for a sign-in that does not come, as under systemd (no terminal: its
 *       countdown ticks once a second, and it polls the emulator every 5 s). No button: there
 *       is no GPIO chip for it; the button's share is (watch − idle) from (a).
 * All four run at once, for the same window. CPU is read from /proc/<pid>/stat (utime+stime, in
 * clock ticks of 10 ms) and, finer, from /proc/<pid>/task/<tid>/schedstat (ns on a CPU, summed
 * over threads); wake-ups are voluntary context switches summed over threads (the main thread's
 * alone is /proc/<pid>/status).
 *
 * Goal: the watch, and the whole program with a button, at most 0.2 % of one core when idle.
 * Prints a table, writes the figures into bench/results.json under "idleCpu" (other keys kept).
 * Usage: bun scripts/bench-idle.ts [--seconds N]   (30 by default; the run takes about N + 15 s)
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, type } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type Clock, systemClock } from "../agent/core/clock.ts";
import { Errno } from "../agent/linux/errno.ts";
import { type Libc, openLibc } from "../agent/linux/libc.ts";
import { GpioCdev } from "../display/bus/gpio-cdev.ts";
import { decodeLineEvent, encodeLineEvent, GpioLineEventId } from "../display/bus/gpio-uapi.ts";
import type { Edge } from "../display/bus/types.ts";
import { FakeGpioKernel } from "../test/display/bus/fake-gpio-kernel.ts";
import { kernelFds } from "../test/linux/kernel-fds.ts";
import { writeResults } from "./bench-results.ts";

const GOAL_PERCENT = 0.2;
const EDGES = 10;
const LINE = { chip: "gpiochip0", name: "GPIO27", offset: 27 } as const;

type Mode = "idle" | "watch" | "poll10";

// ---------------------------------------------------------------------------------------------
// The child: one compiled program, three modes, driven by lines on stdin.

interface Stand {
  /** Queues one edge event on the stand-in line fd. */
  emit(edge: Edge): void;
  /** Set to be told of each edge the watch delivers. */
  onEdge: ((edge: Edge, at: number) => void) | undefined;
  /** Ends the watch and closes the line; the figures to report. */
  close(): Promise<Record<string, unknown>>;
}

async function child(mode: Mode): Promise<void> {
  const stand = mode === "watch" ? await watchStand() : mode === "poll10" ? await pollStand() : undefined;
  process.stdout.write("ready\n");
  for await (const command of console) {
    if (command.startsWith("edges") && stand !== undefined) {
      process.stdout.write(`${JSON.stringify({ latencyMs: await edges(stand, EDGES) })}\n`);
    } else if (command === "quit") {
      process.stdout.write(`${JSON.stringify((await stand?.close()) ?? {})}\n`);
      break;
    }
  }
  // Nothing else: the process must end by itself, which shows that the closed watch left nothing
  // in the event loop.
}

/**
 * `count` edges, one at a time, 20 to 30 ms apart: ms from the write to the listener, for each.
 * The gaps vary so that the edges do not fall in step with the 10 ms timer of the old loop.
 */
async function edges(stand: Stand, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const edge: Edge = i % 2 === 0 ? "rising" : "falling";
    const seen = new Promise<void>((resolve) => {
      stand.onEdge = () => resolve();
    });
    const written = performance.now();
    stand.emit(edge);
    await seen;
    latencies.push(performance.now() - written);
    await Bun.sleep(20 + Math.random() * 10);
  }
  return latencies;
}

function event(edge: Edge, seqno: number): Uint8Array {
  return encodeLineEvent({
    timestampNs: BigInt(Date.now()) * 1_000_000n,
    id: edge === "rising" ? GpioLineEventId.RISING_EDGE : GpioLineEventId.FALLING_EDGE,
    offset: LINE.offset,
    seqno,
    lineSeqno: seqno,
  });
}

/** The real GpioCdev and CdevGpioLine.watch, over the tests' fake GPIO kernel and a real pipe. */
async function watchStand(): Promise<Stand> {
  const dir = mkdtempSync(join(tmpdir(), "entratool-bench-gpio-"));
  writeFileSync(join(dir, LINE.chip), "");
  const kernel = new FakeGpioKernel(
    dir,
    [
      {
        node: LINE.chip,
        name: LINE.chip,
        label: "pinctrl-bcm2711",
        lineNames: Array.from({ length: 58 }, (_, i) => `GPIO${i}`),
      },
    ],
    { libc: await openLibc(), fds: await kernelFds() },
  );
  const gpio = new GpioCdev({ clock: systemClock, devDir: dir, libc: kernel.libc });
  // As agent/display-cli.ts requests the sign-in button.
  const line = await gpio.requestLine(
    { name: LINE.name },
    { direction: "input", bias: "pull-up", activeLow: true, edges: "both" },
  );
  let seqno = 0;
  const stand: Stand = {
    emit: (edge) => kernel.write(LINE.chip, LINE.offset, event(edge, ++seqno)),
    onEdge: undefined,
    close: async () => {
      stop();
      await line.close();
      const released = !kernel.isHeld(LINE.chip, LINE.offset);
      kernel.dispose();
      rmSync(dir, { recursive: true, force: true });
      return { released };
    },
  };
  const stop = line.watch((edge, at) => stand.onEdge?.(edge, at));
  return stand;
}

/** The watch as it was: the line fd read, non-blocking, every 10 ms. */
async function pollStand(): Promise<Stand> {
  const fds = await kernelFds();
  const libc = await openLibc();
  const [readEnd, writeEnd] = fds.pipe({ nonBlocking: true });
  const controller = new AbortController();
  let seqno = 0;
  const stand: Stand = {
    emit: (edge) => fds.write(writeEnd, event(edge, ++seqno)),
    onEdge: undefined,
    close: async () => {
      controller.abort();
      await polling;
      fds.close(readEnd);
      fds.close(writeEnd);
      return {};
    },
  };
  const polling = pollEvery10ms(libc, readEnd, systemClock, controller.signal, (edge, at) =>
    stand.onEdge?.(edge, at),
  );
  return stand;
}

/** The loop CdevGpioLine ran before this bench's change, as it was (one listener). */
async function pollEvery10ms(
  libc: Libc,
  fd: number,
  clock: Clock,
  signal: AbortSignal,
  listener: (edge: Edge, at: number) => void,
): Promise<void> {
  const size = 48;
  const buffer = new Uint8Array(size * 16);
  for (;;) {
    try {
      await clock.sleep(10, signal);
    } catch {
      return;
    }
    for (;;) {
      const count = libc.read(fd, buffer);
      if (count < 0) {
        const errno = libc.errno();
        if (errno === Errno.EINTR) continue;
        if (errno === Errno.EAGAIN) break;
        return;
      }
      for (let at = 0; at + size <= count; at += size) {
        const e = decodeLineEvent(buffer.subarray(at, at + size));
        listener(
          e.id === GpioLineEventId.RISING_EDGE ? "rising" : "falling",
          Number(e.timestampNs / 1000n) / 1000,
        );
      }
      if (count < buffer.length) break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The parent: builds, starts, samples, reports.

const root = join(import.meta.dir, "..");

interface Sample {
  readonly at: number;
  /** utime + stime, clock ticks. */
  readonly ticks: number;
  /** Time on a CPU, ns, summed over threads (schedstat). */
  readonly cpuNs: number;
  readonly voluntary: number;
  readonly involuntary: number;
  readonly rssKiB: number;
  readonly threads: number;
}

function sample(pid: number): Sample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (text: string, name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1]);
  let cpuNs = 0;
  let voluntary = 0;
  let involuntary = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      cpuNs += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      const task = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      voluntary += field(task, "voluntary_ctxt_switches");
      involuntary += field(task, "nonvoluntary_ctxt_switches");
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return {
    at: performance.now(),
    // Fields 14 and 15 of /proc/<pid>/stat; the slice starts at field 3.
    ticks: Number(fields[11]) + Number(fields[12]),
    cpuNs,
    voluntary,
    involuntary,
    rssKiB: field(status, "VmRSS"),
    threads: field(status, "Threads"),
  };
}

/** A child whose stdout is read line by line. */
class Running {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr = "";
  readonly #lines: string[] = [];
  #wake: (() => void) | undefined;

  constructor(command: string, args: readonly string[], env?: Record<string, string>) {
    // detached: a session of its own and no controlling terminal, as under systemd.
    this.proc = spawn(command, [...args], { stdio: ["pipe", "pipe", "pipe"], detached: true, env });
    createInterface({ input: this.proc.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      this.#lines.push(line);
      this.#wake?.();
    });
    this.proc.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
      this.#wake?.();
    });
    this.exited = new Promise((resolve) => this.proc.on("exit", (code) => resolve(code)));
  }

  get pid(): number {
    const pid = this.proc.pid;
    if (pid === undefined) throw new Error("the child did not start");
    return pid;
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  async line(what: string, timeoutMs = 20_000): Promise<string> {
    return await this.until(() => this.#lines.shift(), what, timeoutMs);
  }

  /** Waits until `check` returns something (checked on each output), or fails after `timeoutMs`. */
  async until<T>(check: () => T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = check();
      if (found !== undefined) return found;
      if (performance.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  }

  /** Resolves with the exit code, or kills the child and resolves with "killed" after `ms`. */
  async exit(ms: number): Promise<number | null | "killed"> {
    const timeout = new Promise<"killed">((resolve) =>
      setTimeout(() => {
        this.proc.kill("SIGKILL");
        resolve("killed");
      }, ms),
    );
    return await Promise.race([this.exited, timeout]);
  }
}

function run(cmd: string, args: readonly string[], env?: Record<string, string>): string {
  const result = spawnSync(cmd, [...args], { cwd: root, encoding: "utf8", env });
  if (result.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

interface Figures {
  readonly name: string;
  readonly what: string;
  readonly cpuPercentTicks: number;
  readonly cpuPercent: number;
  readonly wakeupsPerSecond: number;
  readonly involuntaryPerSecond: number;
  readonly rssMiB: number;
  readonly threads: number;
  latencyMs?: { readonly median: number; readonly max: number };
}

function figures(name: string, what: string, a: Sample, b: Sample, clkTck: number): Figures {
  const seconds = (b.at - a.at) / 1000;
  return {
    name,
    what,
    cpuPercentTicks: round((100 * (b.ticks - a.ticks)) / clkTck / seconds, 3),
    cpuPercent: round((100 * (b.cpuNs - a.cpuNs)) / 1e9 / seconds, 3),
    wakeupsPerSecond: round((b.voluntary - a.voluntary) / seconds, 1),
    involuntaryPerSecond: round((b.involuntary - a.involuntary) / seconds, 1),
    rssMiB: round(b.rssKiB / 1024, 1),
    threads: b.threads,
  };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function lscpu(): Record<string, string> {
  const out = spawnSync("lscpu", [], { encoding: "utf8" }).stdout ?? "";
  const pick = (key: string) => new RegExp(`^${key}:\\s+(.+)$`, "m").exec(out)?.[1]?.trim() ?? "";
  return { model: pick("Model name"), hypervisor: pick("Hypervisor vendor") };
}

async function parent(): Promise<void> {
  const argSeconds = process.argv.indexOf("--seconds");
  const seconds = argSeconds > 0 ? Number(process.argv[argSeconds + 1]) : 30;
  if (!(seconds > 0)) throw new Error("--seconds takes a positive number");
  const clkTck = Number(run("getconf", ["CLK_TCK"]).trim()) || 100;
  const work = mkdtempSync(join(tmpdir(), "entratool-bench-idle-"));
  const { EntraEmulator, demoProfileArgs } = await import("./emulator/server.ts");
  const emulator = new EntraEmulator({ tlsDir: join(root, ".emulator"), port: 0 });
  const started: Running[] = [];
  try {
    // Built as scripts/build.ts builds the agent.
    const program = join(work, "bench-idle");
    const compileFlags = ["build", "--compile", "--minify", "--bytecode", "--sourcemap=none"];
    run(process.execPath, [...compileFlags, join(root, "scripts", "bench-idle.ts"), "--outfile", program]);
    run(process.execPath, [join(root, "scripts", "build.ts"), "--host-only"]);
    const binary = join(root, "dist", "entratool");
    process.stdout.write(`built ${program} and dist/entratool\n`);

    const { authorityHost, caPath } = await emulator.start();
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: work,
      ENTRATOOL_HOME: join(work, "home"),
      NODE_EXTRA_CA_CERTS: caPath,
      ENTRATOOL_AUTHORITY_HOST: authorityHost,
      LANG: "C.UTF-8",
    };
    run(binary, demoProfileArgs(), env);

    const modes: ReadonlyArray<[Mode, string]> = [
      ["idle", "compiled Bun program, idle"],
      ["watch", "compiled, CdevGpioLine.watch (epoll)"],
      ["poll10", "compiled, old 10 ms read loop"],
    ];
    const children = modes.map(([mode]) => new Running(program, ["--child", mode]));
    const agent = new Running(binary, ["get-token", "--flow", "device-code"], env);
    started.push(...children, agent);
    for (const [i, c] of children.entries()) {
      const ready = await c.line(`ready from ${modes[i]?.[0]}`);
      if (ready !== "ready") throw new Error(`unexpected ${ready}`);
    }
    await agent.until(() => /Enter code: ([A-Z0-9-]+)/.exec(agent.stderr)?.[1], "user code from entratool");
    // Start-up's own work (JIT, a first GC, the first poll of the emulator) is over by now.
    await Bun.sleep(2000);

    const all = [...children, agent];
    const before = all.map((c) => sample(c.pid));
    process.stdout.write(`idle for ${seconds} s...\n`);
    await Bun.sleep(seconds * 1000);
    const after = all.map((c) => sample(c.pid));
    const names = [
      ...modes.map(([mode, what]) => [mode, what] as const),
      ["entratool", "dist/entratool get-token, waiting for a sign-in"] as const,
    ];
    const rows = names.map(([name, what], i) => {
      const a = before[i];
      const b = after[i];
      if (a === undefined || b === undefined) throw new Error("missing sample");
      return figures(name, what, a, b, clkTck);
    });

    // Then a few edges, and the line closed.
    for (const [i, c] of children.entries()) {
      const row = rows[i];
      if (row === undefined || c === children[0]) continue;
      c.send("edges");
      const { latencyMs } = JSON.parse(await c.line("edge latencies")) as { latencyMs: number[] };
      row.latencyMs = { median: round(median(latencyMs), 2), max: round(Math.max(...latencyMs), 2) };
    }
    const closed: Record<string, unknown> = {};
    for (const [i, c] of children.entries()) {
      c.send("quit");
      const reply = JSON.parse(await c.line("close report")) as Record<string, unknown>;
      c.proc.stdin?.end();
      closed[modes[i]?.[0] ?? "?"] = { ...reply, exit: await c.exit(5000) };
    }
    agent.proc.kill("SIGINT");
    const agentExit = await agent.exit(5000);

    report(rows, closed, agentExit, seconds, clkTck);
  } finally {
    for (const c of started) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    await emulator.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function report(
  rows: readonly Figures[],
  closed: Record<string, unknown>,
  agentExit: number | null | "killed",
  seconds: number,
  clkTck: number,
): void {
  const row = (name: string): Figures => {
    const found = rows.find((r) => r.name === name);
    if (found === undefined) throw new Error(`no figures for ${name}`);
    return found;
  };
  const idle = row("idle");
  const watch = row("watch");
  const agent = row("entratool");
  const buttonShare = round(Math.max(0, watch.cpuPercent - idle.cpuPercent), 3);
  const withButton = round(agent.cpuPercent + buttonShare, 3);

  const header = [
    "process",
    "CPU % (ticks)",
    "CPU % (schedstat)",
    "wake-ups/s",
    "RSS MiB",
    "threads",
    "edge ms med/max",
  ];
  const lines = rows.map((r) => [
    `${r.name}: ${r.what}`,
    r.cpuPercentTicks.toFixed(3),
    r.cpuPercent.toFixed(3),
    r.wakeupsPerSecond.toFixed(1),
    r.rssMiB.toFixed(1),
    String(r.threads),
    r.latencyMs === undefined ? "-" : `${r.latencyMs.median.toFixed(2)} / ${r.latencyMs.max.toFixed(2)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const format = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  process.stdout.write(`\nIdle for ${seconds} s, all four at once; CPU in % of one core.\n`);
  process.stdout.write(`${format(header)}\n${lines.map(format).join("\n")}\n`);
  process.stdout.write(
    `\nbutton's share (watch - idle): ${buttonShare.toFixed(3)} %; entratool waiting + button: ${withButton.toFixed(3)} %\n`,
  );
  process.stdout.write(`closing: ${JSON.stringify(closed)}; entratool after SIGINT: exit ${agentExit}\n\n`);

  const watchClosed = closed.watch as { released?: boolean; exit?: unknown } | undefined;
  const goals = [
    {
      goal: `the button's watch, idle: <= ${GOAL_PERCENT} % of a core`,
      actual: `${watch.cpuPercent} % (${watch.cpuPercentTicks} % by ticks), ${watch.wakeupsPerSecond} wake-ups/s`,
      pass: watch.cpuPercent <= GOAL_PERCENT && watch.cpuPercentTicks <= GOAL_PERCENT,
    },
    {
      goal: `entratool waiting for a sign-in, with the button's share: <= ${GOAL_PERCENT} % of a core`,
      actual: `${withButton} %`,
      pass: withButton <= GOAL_PERCENT,
    },
    {
      goal: "the watched line is released on close, and the process then ends by itself",
      actual: `released ${watchClosed?.released}, exit ${String(watchClosed?.exit)}`,
      pass: watchClosed?.released === true && watchClosed.exit === 0,
    },
  ];
  for (const g of goals) process.stdout.write(`${g.pass ? "PASS" : "FAIL"}  ${g.goal}: ${g.actual}\n`);

  const cpu = lscpu();
  const idleCpu = {
    date: new Date().toISOString(),
    machine: {
      cpu: cpu.model || cpus()[0]?.model || "unknown",
      cores: cpus().length,
      hypervisor: cpu.hypervisor || undefined,
      os: `${type()} ${process.arch}`,
      kernel: release(),
      bun: Bun.version,
      clockTicksPerSecond: clkTck,
    },
    idleSeconds: seconds,
    edges: EDGES,
    processes: Object.fromEntries(rows.map(({ name, ...rest }) => [name, rest])),
    buttonSharePercent: buttonShare,
    entratoolWithButtonPercent: withButton,
    closing: closed,
    goals,
    notMeasured:
      "No GPIO chip here: the line fd is a pipe from the tests' fake GPIO kernel, so the kernel's own cost of an idle GPIO line and Bun on the Pi's ARM cores are not in these figures; entratool ran without a button (none can be configured without a chip).",
  };
  writeResults({ idleCpu });
  process.stdout.write("\nwrote bench/results.json (idleCpu)\n");
  if (goals.some((g) => !g.pass)) process.exitCode = 1;
}

// No top-level await: `--bytecode` builds a CommonJS program, as for the agent.
const childArg = process.argv.indexOf("--child");
const main = childArg > 0 ? child((process.argv[childArg + 1] ?? "idle") as Mode) : parent();
main.catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 2;
});
