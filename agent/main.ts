#!/usr/bin/env bun
/**
 * The composition root: the only place that reads process.env, picks real implementations and
 * wires them together. Everything below it receives its dependencies.
 */
import pkg from "../package.json" with { type: "json" };
import type * as AgentCli from "./agent-cli.ts";
import type { MsalModule } from "./auth/msal.ts";
import { SignInSession } from "./auth/session.ts";
import { SignInService } from "./auth/signin.ts";
import { SystemTimeSync } from "./auth/time-sync.ts";
import { runCli } from "./cli/app.ts";
import { Terminal } from "./cli/terminal.ts";
import { systemClock } from "./core/clock.ts";
import { deferredLogger, humanDestination, parseLevel } from "./core/log.ts";
import { resolvePaths } from "./core/paths.ts";
import type * as DisplayCli from "./display-cli.ts";
import { openServiceNotifier } from "./linux/sd-notify.ts";
import type * as PinoModule from "./pino-logger.ts";
import type * as QrModule from "./qr.ts";
import { FileKeyProvider } from "./store/key.ts";
import { FlockLockManager } from "./store/lock.ts";
import { MachineIdentity } from "./store/machine.ts";
import { JsonProfileStore } from "./store/profiles.ts";
import { FileTokenStore } from "./store/token-store.ts";

/**
 * Specifiers the bundler cannot follow. In the compiled binary these modules are entrypoints of
 * their own (scripts/build.ts), loaded only when needed: msal-node when a request to Entra is
 * needed, pino when a line is logged, the QR encoder when a code is shown, the display drivers
 * for `display` and `get-token --config`. Together they would
 * otherwise double every start.
 * Run from source, they resolve next to this file; compiled, every one of them must sit in agent/
 * with this file (the embedded files' paths are relative to the entrypoints' common directory).
 */
const MSAL_MODULE = "./auth/msal.ts";
const PINO_MODULE = "./pino-logger.ts";
const QR_MODULE = "./qr.ts";
const DISPLAY_MODULE = "./display-cli.ts";
const AGENT_MODULE = "./agent-cli.ts";

export async function main(argv: readonly string[]): Promise<number> {
  const env = process.env;
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
  const isAgent = argv[0] === "agent";
  // The agent reloads its configuration on SIGHUP; for every other command it keeps its default
  // meaning (the terminal went away: stop).
  const hangups = new Set<() => void>();
  if (isAgent) {
    process.on("SIGHUP", () => {
      for (const listener of [...hangups]) listener();
    });
  }
  const io = new Terminal(controller.signal);
  const stderr = io.stderr;
  // HOME is set for users and for systemd services alike; node:os only when it is not.
  const paths = resolvePaths(env, env.HOME || (await import("node:os")).homedir());
  const logger = deferredLogger(
    {
      // The agent runs for months: what it does at info goes to the journal.
      level: parseLevel(env.ENTRATOOL_LOG_LEVEL, isAgent ? "info" : "warn"),
      // A command's stdout carries its output (a token, JSON): logs go to stderr. The agent has
      // no output: its log goes to stdout (the journal under systemd), its prompt to stderr.
      // JSON lines unless a person reads a terminal (decided when the first line is written).
      destination: {
        write: (line: string) => {
          const out = isAgent ? io.stdout : stderr;
          const human = env.ENTRATOOL_LOG_FORMAT !== "json" && out.isTTY;
          if (human) humanDestination((text) => out.write(text)).write(line);
          else out.write(line);
        },
      },
    },
    (options) => (require(PINO_MODULE) as typeof PinoModule).createLogger(options),
  );
  const clock = systemClock;
  // The directories a person named for entratool, and everything below them, must be private.
  const privateRoot = paths.stateRoot;
  const locks = new FlockLockManager({ locksDir: paths.locksDir, clock, logger, privateRoot });
  const tokens = new FileTokenStore({
    tokensDir: paths.tokensDir,
    keyProvider: new FileKeyProvider({
      keyFile: paths.keyFile,
      credentialKeyFile: paths.credentialKeyFile,
      machineIdentity: new MachineIdentity({ logger }),
      logger,
      tokensDir: paths.tokensDir,
      locks,
      clock,
      privateRoot,
    }),
    logger,
    clock,
    privateRoot,
  });
  const signIn = new SignInService({
    // A Pi has no real-time clock: until network time, TLS and token expiry cannot be trusted.
    timeSync: new SystemTimeSync({ clock }),
    tokenStore: tokens,
    locks,
    clock,
    logger,
    fetch,
    env,
    discoveryDir: paths.discoveryDir,
    privateRoot,
    loadMsal: () => import(MSAL_MODULE) as Promise<MsalModule>,
  });
  const profiles = new JsonProfileStore({
    file: paths.profilesFile,
    logger,
    locks,
    privateRoot: paths.configRoot,
  });

  const code = await runCli(
    {
      io,
      env,
      paths,
      logger,
      clock,
      profiles,
      tokens,
      locks,
      openSession: (profile) =>
        new SignInSession({ profile, engine: signIn, tokenStore: tokens, locks, clock, logger }),
      signIn,
      loadAgent: () => import(AGENT_MODULE) as Promise<typeof AgentCli>,
      // systemd's notification socket, for the agent only (Type=notify: READY, STATUS, WATCHDOG).
      serviceNotifier: isAgent ? await openServiceNotifier(env, logger) : undefined,
      onHangup: (listener) => {
        hangups.add(listener);
        return () => hangups.delete(listener);
      },
      loadDisplays: () => import(DISPLAY_MODULE) as Promise<typeof DisplayCli>,
      qr: (text) => (require(QR_MODULE) as typeof QrModule).qrMatrix(text),
      signal: controller.signal,
      version: pkg.version,
    },
    argv,
  );
  await io.close();
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
