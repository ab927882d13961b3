import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
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

/** A fresh ENTRATOOL_HOME and environment for the binary. Nothing from the developer's own setup leaks in. */
export function sandbox(extraEnv: Record<string, string> = {}): Sandbox {
  const base = mkdtempSync(join(tmpdir(), "entratool-test-"));
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

/** A running child whose output can be awaited line by line. */
export class Running {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly done: Promise<RunResult>;
  #waiters: Array<() => void> = [];

  constructor(command: string, args: readonly string[], env: Record<string, string>, input?: string) {
    this.child = spawn(command, [...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk;
      this.#wake();
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
      this.#wake();
    });
    if (input !== undefined) this.child.stdin?.end(input);
    else this.child.stdin?.end();
    this.done = new Promise((resolve, reject) => {
      this.child.on("error", reject);
      this.child.on("close", (code, signal) => {
        this.#wake();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Resolves with the first match of `pattern` in stdout+stderr; rejects if the process ends first. */
  async waitFor(pattern: RegExp, stream: "stdout" | "stderr" = "stderr"): Promise<RegExpMatchArray> {
    for (;;) {
      const match = this[stream].match(pattern);
      if (match) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `process ended before ${pattern} appeared.\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
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

/** Runs a shell or Python script with the sandbox's environment (the seed's examples). */
export function runScript(
  interpreter: string,
  script: string,
  box: Sandbox,
  env: Record<string, string> = {},
) {
  return new Running(interpreter, ["-c", script], { ...box.env, ...env });
}
