#!/usr/bin/env bun
/**
 * The composition root: the only place that reads process.env, picks real implementations and
 * wires them together. Everything below it receives its dependencies.
 */
import { writeSync } from "node:fs";
import type { Interface } from "node:readline";
import pkg from "../package.json" with { type: "json" };
import type { MsalModule } from "./auth/msal.ts";
import { SignInService } from "./auth/signin.ts";
import { runCli } from "./cli/app.ts";
import type { CliIO, Output } from "./cli/context.ts";
import { systemClock } from "./clock.ts";
import { EntraToolError } from "./errors.ts";
import { deferredLogger, humanDestination, parseLevel } from "./log.ts";
import { resolvePaths } from "./paths.ts";
import type * as PinoModule from "./pino-logger.ts";
import { FileKeyProvider } from "./store/key.ts";
import { FlockLockManager } from "./store/lock.ts";
import { MachineIdentity } from "./store/machine.ts";
import { JsonProfileStore } from "./store/profiles.ts";
import { FileTokenStore } from "./store/token-store.ts";

/**
 * Specifiers the bundler cannot follow. In the compiled binary these modules are entrypoints of
 * their own (scripts/build.ts), loaded only when needed: msal-node when a request to Entra is
 * needed, pino when a line is logged. Together they would otherwise double every start.
 * Run from source, they resolve next to this file.
 */
const MSAL_MODULE = "./auth/msal.ts";
const PINO_MODULE = "./pino-logger.ts";

/**
 * stdout or stderr, written with write(2) on the file descriptor. Bun builds Node's
 * `process.stdout`/`process.stderr`/`process.stdin` objects on first touch, which costs a
 * compiled binary more than all of a cached `get-token` (10+ ms), so they are touched only when
 * really needed: terminal width, a question, or a pipe that is full (EAGAIN), after which every
 * later write goes through the stream so that the order is kept.
 */
class FdOutput implements Output {
  readonly #fd: 1 | 2;
  readonly #stream: () => NodeJS.WriteStream;
  #viaStream = false;
  #tty: boolean | undefined;

  constructor(fd: 1 | 2, stream: () => NodeJS.WriteStream) {
    this.#fd = fd;
    this.#stream = stream;
  }

  get isTTY(): boolean {
    this.#tty ??= (require("node:tty") as typeof import("node:tty")).isatty(this.#fd);
    return this.#tty;
  }

  get columns(): number | undefined {
    return this.isTTY ? this.#stream().columns : undefined;
  }

  write(text: string): void {
    if (this.#viaStream) {
      this.#stream().write(text);
      return;
    }
    const data = Buffer.from(text, "utf8");
    let offset = 0;
    try {
      while (offset < data.length) offset += writeSync(this.#fd, data, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // The reader went away (`entratool … | head -1`): nothing more to say to it.
      if (code === "EPIPE") return;
      if (code !== "EAGAIN") throw error;
      this.#viaStream = true;
      this.#stream().write(data.subarray(offset));
    }
  }

  /** Resolves once everything written has left the process. */
  flush(): Promise<void> {
    if (!this.#viaStream) return Promise.resolve();
    return new Promise((resolve) => this.#stream().write("", () => resolve()));
  }
}

/**
 * The terminal, with one line reader for the whole process. Answers typed (or pasted) ahead of
 * their question stay queued for it: a reader per question would take the following lines with
 * it when closed, and the next question would see the end of input.
 */
function terminalIO(stdout: FdOutput, stderr: FdOutput): CliIO & { close(): void } {
  let reader: Interface | undefined;
  const lines: string[] = [];
  let waiter: ((line: string | undefined) => void) | undefined;
  let ended = false;
  let interrupted = false;
  const settle = (line: string | undefined): void => {
    const resolve = waiter;
    waiter = undefined;
    resolve?.(line);
  };
  // node:readline is loaded only when a question is asked: it would add to every start.
  const open = async (): Promise<Interface> => {
    if (reader) return reader;
    const { createInterface } = await import("node:readline");
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    rl.on("line", (line) => {
      if (waiter) settle(line);
      else lines.push(line);
    });
    // Ctrl+C at a question: in raw mode it arrives as input, not as a signal.
    rl.on("SIGINT", () => {
      interrupted = true;
      rl.close();
    });
    rl.on("close", () => {
      ended = true;
      settle(undefined);
    });
    reader = rl;
    return rl;
  };
  return {
    stdout,
    stderr,
    get interactive() {
      return stderr.isTTY && (require("node:tty") as typeof import("node:tty")).isatty(0);
    },
    ask: async (question) => {
      const rl = await open();
      if (!ended) {
        rl.setPrompt(question);
        rl.prompt();
      }
      const typedAhead = lines.shift();
      // Echoed when it was typed; shown again after its question so that the transcript reads right.
      if (typedAhead !== undefined) stderr.write(`${typedAhead}\n`);
      const line =
        typedAhead ??
        (ended
          ? undefined
          : await new Promise<string | undefined>((resolve) => {
              waiter = resolve;
            }));
      if (interrupted) {
        stderr.write("\n");
        throw new EntraToolError("E_CANCELLED", { message: "Cancelled by user." });
      }
      return line;
    },
    close: () => reader?.close(),
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  const env = process.env;
  const stdout = new FdOutput(1, () => process.stdout);
  const stderr = new FdOutput(2, () => process.stderr);
  const io = terminalIO(stdout, stderr);
  // HOME is set for users and for systemd services alike; node:os only when it is not.
  const paths = resolvePaths(env, env.HOME || (await import("node:os")).homedir());
  const logger = deferredLogger(
    {
      level: parseLevel(env.ENTRATOOL_LOG_LEVEL, "warn"),
      // stdout carries the command's output (a token, JSON): logs go to stderr.
      // JSON lines unless a person reads stderr on a terminal (decided when the first line is written).
      destination: {
        write: (line: string) => {
          const human = env.ENTRATOOL_LOG_FORMAT !== "json" && stderr.isTTY;
          if (human) humanDestination((text) => stderr.write(text)).write(line);
          else stderr.write(line);
        },
      },
    },
    (options) => (require(PINO_MODULE) as typeof PinoModule).createLogger(options),
  );
  const clock = systemClock;
  const tokens = new FileTokenStore({
    tokensDir: paths.tokensDir,
    keyProvider: new FileKeyProvider({
      keyFile: paths.keyFile,
      credentialKeyFile: paths.credentialKeyFile,
      machineIdentity: new MachineIdentity({ logger }),
      logger,
    }),
    logger,
    clock,
  });
  const locks = new FlockLockManager({ locksDir: paths.locksDir, clock, logger });
  const signIn = new SignInService({
    tokenStore: tokens,
    locks,
    clock,
    logger,
    fetch,
    env,
    loadMsal: () => import(MSAL_MODULE) as Promise<MsalModule>,
  });
  const profiles = new JsonProfileStore({ file: paths.profilesFile, logger });

  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts += 1;
    // The second Ctrl+C does not wait for anything.
    if (interrupts > 1) process.exit(130);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const code = await runCli(
    {
      io,
      env,
      paths,
      logger,
      clock,
      profiles,
      tokens,
      signIn,
      signal: controller.signal,
      version: pkg.version,
    },
    argv,
  );
  io.close();
  await Promise.all([stdout.flush(), stderr.flush()]);
  return code;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      // runCli turns every failure into a sentence; reaching here means wiring itself failed.
      process.stderr.write(
        `entratool could not start: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
