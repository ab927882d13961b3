#!/usr/bin/env bun
/**
 * The composition root: the only place that reads process.env, picks real implementations and
 * wires them together. Everything below it receives its dependencies.
 */
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

function output(stream: NodeJS.WriteStream): Output {
  return {
    write: (text) => {
      stream.write(text);
    },
    isTTY: stream.isTTY === true,
    get columns() {
      return stream.columns;
    },
  };
}

/**
 * The terminal, with one line reader for the whole process. Answers typed (or pasted) ahead of
 * their question stay queued for it: a reader per question would take the following lines with
 * it when closed, and the next question would see the end of input.
 */
function terminalIO(): CliIO & { close(): void } {
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
    stdout: output(process.stdout),
    stderr: output(process.stderr),
    interactive: process.stdin.isTTY === true && process.stderr.isTTY === true,
    ask: async (question) => {
      const rl = await open();
      if (!ended) {
        rl.setPrompt(question);
        rl.prompt();
      }
      const typedAhead = lines.shift();
      // Echoed when it was typed; shown again after its question so that the transcript reads right.
      if (typedAhead !== undefined) process.stderr.write(`${typedAhead}\n`);
      const line =
        typedAhead ??
        (ended
          ? undefined
          : await new Promise<string | undefined>((resolve) => {
              waiter = resolve;
            }));
      if (interrupted) {
        process.stderr.write("\n");
        throw new EntraToolError("E_CANCELLED", { message: "Cancelled by user." });
      }
      return line;
    },
    close: () => reader?.close(),
  };
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write("", () => resolve()));
}

export async function main(argv: readonly string[]): Promise<number> {
  const env = process.env;
  const io = terminalIO();
  // HOME is set for users and for systemd services alike; node:os only when it is not.
  const paths = resolvePaths(env, env.HOME || (await import("node:os")).homedir());
  const jsonLogs = env.ENTRATOOL_LOG_FORMAT === "json" || !process.stderr.isTTY;
  const logger = deferredLogger(
    {
      level: parseLevel(env.ENTRATOOL_LOG_LEVEL, "warn"),
      // stdout carries the command's output (a token, JSON): logs go to stderr.
      destination: jsonLogs ? process.stderr : humanDestination((text) => process.stderr.write(text)),
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
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
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
