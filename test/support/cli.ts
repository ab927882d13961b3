import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");
/** The compiled binary under test (built by test/support/global-setup.ts). */
export const BINARY = join(ROOT, "dist", "entratool");

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Sandbox {
  /** ENTRATOOL_HOME of this sandbox. */
  readonly home: string;
  /** A directory on PATH holding `entratool` (a link to the binary), so seed scripts run verbatim. */
  readonly binDir: string;
  readonly env: Record<string, string>;
}

const created: string[] = [];

/** A fresh ENTRATOOL_HOME and environment for the binary. Nothing from the developer's own setup leaks in. */
export function sandbox(extraEnv: Record<string, string> = {}): Sandbox {
  const base = mkdtempSync(join(tmpdir(), "entratool-test-"));
  created.push(base);
  const home = join(base, "home");
  const binDir = join(base, "bin");
  mkdirSync(binDir);
  symlinkSync(BINARY, join(binDir, "entratool"));
  const env: Record<string, string> = {
    PATH: `${binDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    HOME: base,
    ENTRATOOL_HOME: home,
    ENTRATOOL_LOG_LEVEL: "debug",
    LANG: "C.UTF-8",
    ...extraEnv,
  };
  return { home, binDir, env };
}

/** Deletes every sandbox this test file created (call it from afterAll). */
export function removeSandboxes(): void {
  for (const base of created.splice(0)) rmSync(base, { recursive: true, force: true });
}

/** A running child whose output can be awaited line by line. */
export class Running {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly done: Promise<RunResult>;
  #waiters: Array<() => void> = [];

  /**
   * `input` is written to stdin, which is then closed; `null` keeps stdin open for `type()`
   * (a person at a terminal types when asked, not before).
   */
  constructor(command: string, args: readonly string[], env: Record<string, string>, input?: string | null) {
    // detached: a session of its own, without the controlling terminal of whoever runs the tests,
    // as under systemd or CI. (`inTerminal` gives a command a terminal on purpose.)
    this.child = spawn(command, [...args], { env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk;
      this.#wake();
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
      this.#wake();
    });
    if (typeof input === "string") this.child.stdin?.end(input);
    else if (input === undefined) this.child.stdin?.end();
    this.done = new Promise((resolve, reject) => {
      this.child.on("error", reject);
      this.child.on("close", (code, signal) => {
        this.#wake();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  /** Writes to stdin (kept open by `input: null`); `end` closes it afterwards. */
  type(text: string, end = false): void {
    if (end) this.child.stdin?.end(text);
    else this.child.stdin?.write(text);
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /**
   * Resolves with the `nth` match (1 = the first) of `pattern` in the stream's output so far or to
   * come; rejects if the process ends first. `nth` tells apart the prompts of successive commands.
   */
  async waitFor(pattern: RegExp, stream: "stdout" | "stderr" = "stderr", nth = 1): Promise<RegExpMatchArray> {
    const global = new RegExp(
      pattern.source,
      pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`,
    );
    for (;;) {
      const match = [...this[stream].matchAll(global)][nth - 1];
      if (match) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `process ended before ${pattern} appeared${nth > 1 ? ` ${nth} times` : ""}.\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

export function start(args: readonly string[], box: Sandbox, input?: string): Running {
  return new Running(BINARY, args, box.env, input);
}

export function run(args: readonly string[], box: Sandbox, input?: string): Promise<RunResult> {
  return start(args, box, input).done;
}

/**
 * Runs a shell or Python script with the sandbox's environment (the seed's examples). `args` follow
 * the script: `$0 $1 ...` for `bash -c`, `sys.argv[1:]` for `python3 -c`.
 */
export function runScript(
  interpreter: string,
  script: string,
  box: Sandbox,
  env: Record<string, string> = {},
  args: readonly string[] = [],
): Running {
  return new Running(interpreter, ["-c", script, ...args], { ...box.env, ...env });
}

/**
 * Runs a shell command line on a pseudo-terminal (util-linux `script`), as a person at a terminal
 * or in an SSH session would: stdin and stderr of the command are a TTY. Its terminal output,
 * prompts and echo included, arrives on `stdout` of the returned Running; `input` is typed into it
 * (`null`: type later with `Running.type`).
 */
export function inTerminal(
  commandLine: string,
  box: Sandbox,
  input?: string | null,
  env: Record<string, string> = {},
): Running {
  return new Running("script", ["-qec", commandLine, "/dev/null"], { ...box.env, ...env }, input);
}
