import { hostname } from "node:os";
import { loadConfig } from "../config/load.ts";
import { type AgentConfig, isValidDevice, type ResolvedAgentConfig } from "../config/schema.ts";
import { EntraToolError, toEntraToolError } from "../core/errors.ts";
import { join as joinPath } from "../core/path.ts";
import { Agent, type AgentDisplays } from "../service/agent.ts";
import { ControlServer } from "../service/control-server.ts";
import { MemoryKeeper } from "../service/memory.ts";
import type { Profile } from "../store/types.ts";
import { SqliteOutbox } from "../telemetry/outbox.ts";
import { createSink } from "../telemetry/sinks/index.ts";
import { createSource } from "../telemetry/sources/index.ts";
import { flag, type OptionSpec, parse, stringOption } from "./args.ts";
import type { CliContext } from "./context.ts";
import { describeSignIn } from "./status.ts";

export const AGENT_HELP = `Usage: entratool agent [--config FILE]

Runs the agent: keeps the profile of the configuration signed in (the code on every configured
display when a person must sign in), collects telemetry from its sources and delivers it to its
sinks with the sign-in's tokens, through a durable outbox. Listens on a unix socket for
'entratool send', 'entratool status' and 'entratool get-token'. SIGHUP reloads the configuration;
SIGTERM or Ctrl+C stops it in order.

  --config FILE   the configuration (default: config.json in the configuration directory)
`;

const OPTIONS: OptionSpec = {
  config: { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** The whole stop stays within 10 s: the sinks drain this long, the rest is quick. */
const DRAIN_MS = 5000;
const STOP_LIMIT_MS = 9500;

/** The configuration file: --config, else config.json in the configuration directory. */
export function configFileOf(
  ctx: CliContext,
  named: string | undefined,
): { file: string; isDefault: boolean } {
  return named === undefined
    ? { file: joinPath(ctx.paths.configDir, "config.json"), isDefault: true }
    : { file: named, isDefault: false };
}

/**
 * Fills in what the file may leave out: the device id (the host name), and splits a profile
 * written into the file into its name and itself.
 */
export function resolveConfig(config: AgentConfig, host: () => string = hostname): ResolvedAgentConfig {
  const { profile, device, ...rest } = config;
  const named = typeof profile === "string" ? { profile } : { profile: profile.name, inlineProfile: profile };
  if (device !== undefined) return { ...rest, ...named, device };
  const name = host().split(".")[0] ?? "";
  if (!isValidDevice(name)) {
    throw new EntraToolError("E_CONFIG", {
      message: `The host name '${name}' cannot be a device id: set "device" in the configuration file.`,
    });
  }
  return { ...rest, ...named, device: name };
}

/**
 * The configuration's profile: the one written into `file`, else the one of that name in
 * profiles.json. A missing one names both ways to give it.
 */
export async function profileOf(
  ctx: CliContext,
  config: ResolvedAgentConfig,
  file: string,
): Promise<Profile> {
  if (config.inlineProfile) return config.inlineProfile;
  const profile = await ctx.profiles.get(config.profile);
  if (profile) return profile;
  throw new EntraToolError("E_PROFILE_NOT_FOUND", {
    message: `Profile '${config.profile}' does not exist: write it into ${file} ("profile": { "tenantId": …, "clientId": …, "scopes": [...] }) or create it with 'entratool create-profile --name ${config.profile} --tenant-id <tenant> --client-id <app id>'.`,
  });
}

export async function agentCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("agent", argv, OPTIONS);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(AGENT_HELP);
    return 0;
  }
  const { file, isDefault } = configFileOf(ctx, stringOption(parsed, "config"));
  const config = resolveConfig(await loadConfig(file, { isDefault }));
  const profile = await profileOf(ctx, config, file);
  const { logger, clock } = ctx;
  const agent = new Agent({
    config,
    profile,
    clock,
    monotonic: () => performance.now(),
    logger,
    engine: ctx.signIn,
    openSession: ctx.openSession,
    openDisplays: (current) => openDisplays(ctx, current),
    openOutbox: (current) =>
      SqliteOutbox.open({
        file: joinPath(ctx.paths.stateDir, "outbox", "outbox.db"),
        device: current.device,
        clock,
        logger,
        maxBytes: current.outbox.maxBytes,
        maxAgeSeconds: current.outbox.maxAgeSeconds,
        privateRoot: ctx.paths.stateRoot,
      }),
    createSink: (sinkConfig, index, deps) => createSink(sinkConfig, index, { ...deps, fetch }),
    createSource: (sourceConfig, _index, deps) => createSource(sourceConfig, deps),
    onState: (state) => ctx.serviceNotifier?.notify(`STATUS=${describeSignIn(state)}`),
    drainMs: DRAIN_MS,
    version: ctx.version,
  });
  const memory = new MemoryKeeper({
    clock,
    logger,
    heapUsed: () => process.memoryUsage().heapUsed,
    collect: () => Bun.gc(true),
  });
  const server = new ControlServer({
    path: ctx.paths.socketFile,
    privateRoot: ctx.paths.socketRoot,
    ownDir: ctx.paths.socketDirOwned,
    logger,
    clock,
    handler: {
      send: async (messages) => {
        const accepted = await agent.send(messages);
        // Bulk ingest is what makes garbage: look at the heap after each request.
        memory.check();
        return { accepted: accepted.length, ids: accepted.map((message) => message.id) };
      },
      status: async () => agent.status(),
      getToken: async (request, peer) => {
        if (request.profile !== undefined && request.profile !== profile.name) {
          throw new EntraToolError("E_AGENT_REFUSED", {
            message: `The entratool agent signs in profile '${profile.name}', not '${request.profile}'.`,
          });
        }
        const result = await agent.token(request);
        logger.info(
          { pid: peer.pid, uid: peer.uid, scopes: result.scopes },
          "token handed out over the socket",
        );
        return {
          tokenType: result.tokenType,
          profile: result.profile,
          fromCache: result.fromCache,
          accessToken: result.accessToken,
          expiresAt: result.expiresAt,
          scopes: result.scopes,
          account: result.account,
        };
      },
    },
  });
  // First: a second agent on the same state must fail before it shows a code anywhere.
  await server.start();
  memory.start();
  let reloading = Promise.resolve();
  let offHangup: (() => void) | undefined;
  let watchdog: AbortController | undefined;
  try {
    await agent.start();
    // SIGHUP from here on: a reload during the start would build a second pipeline.
    offHangup = ctx.onHangup?.(() => {
      reloading = reloading.then(async () => {
        try {
          const next = resolveConfig(await loadConfig(file, { isDefault }));
          await agent.reload(next);
        } catch (error) {
          const reason = toEntraToolError(error);
          logger.error(
            { code: reason.code, errors: reason.details.errors },
            `the configuration was not reloaded, the running one is kept: ${reason.message}`,
          );
        }
      });
    });
    logger.info(
      { profile: profile.name, device: config.device, socket: ctx.paths.socketFile },
      "entratool agent started",
    );
    const notifier = ctx.serviceNotifier;
    notifier?.notify("READY=1");
    watchdog =
      notifier?.watchdogPingMs === undefined ? undefined : pingWatchdog(ctx, notifier.watchdogPingMs);
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      ctx.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    logger.info("entratool agent stopping");
    ctx.serviceNotifier?.notify("STOPPING=1\nSTATUS=stopping");
  } finally {
    offHangup?.();
    watchdog?.abort();
    // A reload under way finishes first; all of it within the stop's time limit.
    const stopped = reloading
      .then(() => Promise.all([agent.stop(), server.stop(), memory.stop()]))
      .then(() => true);
    const limit = new AbortController();
    const inTime = await Promise.race([
      stopped,
      clock.sleep(STOP_LIMIT_MS, limit.signal).then(
        () => false,
        () => false,
      ),
    ]);
    limit.abort();
    if (!inTime) logger.warn(`the agent did not stop within ${STOP_LIMIT_MS} ms; exiting anyway`);
  }
  logger.info("entratool agent stopped");
  return 0;
}

/**
 * Pings systemd's watchdog every `everyMs` from the event loop: a loop that is wedged stops the
 * pings, and systemd restarts the agent. Returns what stops the pings.
 */
function pingWatchdog(ctx: CliContext, everyMs: number): AbortController {
  const stop = new AbortController();
  void (async () => {
    while (!stop.signal.aborted) {
      ctx.serviceNotifier?.notify("WATCHDOG=1");
      await ctx.clock.sleep(everyMs, stop.signal).catch(() => {});
    }
  })();
  return stop;
}

async function openDisplays(ctx: CliContext, config: ResolvedAgentConfig): Promise<AgentDisplays> {
  const module = await ctx.loadDisplays();
  return module.openSignInDisplays({
    clock: ctx.clock,
    logger: ctx.logger,
    env: ctx.env,
    io: { stderr: ctx.io.stderr },
    qr: ctx.qr,
    displays: config.displays,
    // The terminal only when the configuration lists it: under systemd stderr is the journal.
    terminal: false,
  });
}
