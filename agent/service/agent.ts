import type { SignInSession } from "../auth/session.ts";
import type { SessionState } from "../auth/session-state.ts";
import type { SignInService, TokenResult } from "../auth/signin.ts";
import type { ResolvedAgentConfig as AgentConfig, SinkConfig, SourceConfig } from "../config/schema.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Profile } from "../store/types.ts";
import { renamed } from "../telemetry/sinks/index.ts";
import { SinkRunner } from "../telemetry/sinks/runner.ts";
import type { JsonValue, Message, NewMessage, Outbox, Sink, SinkHealth, Source } from "../telemetry/types.ts";
import { Keeper } from "./keeper.ts";
import { AgentTokens } from "./tokens.ts";

/** What a running sign-in display set offers the agent (display/sign-in.ts SignInDisplays). */
export interface AgentDisplays {
  onState(state: SessionState): void;
  onButton(listener: (action: "new-code" | "sign-out") => void): () => void;
  close(): Promise<void>;
}

/** What the MQTT sinks publish as their retained state. */
export type PublishedState = "online" | "awaiting-sign-in";

export interface SinkDeps {
  readonly device: string;
  readonly tokens: AgentTokens;
  /** The profile's scopes: the default of sinks that name none of their own. */
  readonly defaultScopes: readonly string[];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly state: {
    current(): PublishedState;
    subscribe(listener: (state: PublishedState) => void): () => void;
  };
  readonly health: () => JsonValue;
}

export interface SourceDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly append: (messages: readonly NewMessage[]) => Promise<unknown>;
}

export interface AgentOptions {
  readonly config: AgentConfig;
  readonly profile: Profile;
  readonly clock: Clock;
  readonly monotonic: () => number;
  readonly logger: Logger;
  readonly engine: Pick<SignInService, "getToken">;
  readonly openSession: (profile: Profile) => SignInSession;
  readonly openDisplays: (config: AgentConfig) => Promise<AgentDisplays>;
  readonly openOutbox: (config: AgentConfig) => Promise<Outbox>;
  readonly createSink: (config: SinkConfig, index: number, deps: SinkDeps) => Sink;
  readonly createSource: (config: SourceConfig, index: number, deps: SourceDeps) => Source;
  /** Told every sign-in state (sd_notify STATUS, say). */
  readonly onState?: (state: SessionState) => void;
  /** How long sinks may drain on stop, ms; default 5000 (the whole stop stays within 10 s). */
  readonly drainMs?: number;
  /** The agent's version and start, for status. */
  readonly version: string;
  /** The Keeper's tuning, for tests. */
  readonly keeper?: { readonly unusedCodesPauseMs?: number; readonly random?: () => number };
}

/** The status object of `entratool status --output json` (and the socket's `status`). */
export interface AgentStatus {
  readonly version: string;
  readonly pid: number;
  readonly startedAt: string;
  readonly device: string;
  readonly profile: string;
  readonly signIn: {
    readonly state: SessionState["kind"];
    readonly signedIn: boolean;
    readonly account?: string;
    readonly tokenExpiresAt?: string;
    readonly code?: {
      readonly userCode: string;
      readonly verificationUri: string;
      readonly expiresAt: string;
    };
    readonly message?: string;
  };
  readonly outbox: { readonly messages: number; readonly bytes: number; readonly dropped: number };
  /** The agent's own memory, bytes: resident, and the JavaScript heap in use. */
  readonly memory: { readonly rssBytes: number; readonly heapUsedBytes: number };
  readonly sinks: readonly (Omit<SinkHealth, "lastSuccess"> & { readonly lastSuccess?: string })[];
  readonly sources: readonly string[];
}

interface Pipeline {
  readonly outbox: Outbox;
  readonly runners: readonly SinkRunner[];
  readonly sources: readonly Source[];
  readonly displays: AgentDisplays;
  readonly offs: readonly (() => void)[];
}

/**
 * The daemon: one profile's sign-in kept alive (Keeper), its states on every display, telemetry
 * from the sources through the durable outbox to every sink. Start order: session and keeper,
 * displays, outbox, sinks, sources; stop in reverse: sources first, the outbox flushed (appends
 * in flight finish), sinks drained for a bounded time, then closed. `reload` swaps the pipeline
 * for a new configuration's (the socket and this object stay).
 */
export class Agent {
  readonly #options: AgentOptions;
  readonly #startedAt: number;
  #config: AgentConfig;
  #session: SignInSession | undefined;
  #keeper: Keeper | undefined;
  #tokens: AgentTokens | undefined;
  #pipeline: Pipeline | undefined;
  #appending = new Set<Promise<unknown>>();
  #stopped = false;
  #lastLogged: SessionState["kind"] | undefined;

  constructor(options: AgentOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#startedAt = options.clock.now();
  }

  get config(): AgentConfig {
    return this.#config;
  }

  async start(): Promise<void> {
    const options = this.#options;
    const session = options.openSession(options.profile);
    let keeper: Keeper | undefined;
    const tokens = new AgentTokens({
      profile: options.profile,
      engine: options.engine,
      clock: options.clock,
      logger: options.logger,
      signedIn: () => keeper?.signedIn() ?? false,
      onSignInLost: (error) => keeper?.signInLost(error),
    });
    keeper = new Keeper({
      session,
      tokens,
      clock: options.clock,
      logger: options.logger,
      monotonic: options.monotonic,
      ...(options.keeper?.unusedCodesPauseMs === undefined
        ? {}
        : { unusedCodesPauseMs: options.keeper.unusedCodesPauseMs }),
      ...(options.keeper?.random ? { random: options.keeper.random } : {}),
    });
    this.#session = session;
    this.#keeper = keeper;
    this.#tokens = tokens;
    if (options.onState) keeper.subscribe(options.onState);
    // The journal says when the board is signed in, and as whom (the screens say it to the person).
    keeper.subscribe((state) => {
      if (state.kind === "signed-in" && this.#lastLogged === "refreshing") {
        options.logger.info({ expiresAt: new Date(state.expiresAt).toISOString() }, "token refreshed");
      } else if (state.kind === "signed-in" && !state.fromCache) {
        options.logger.info({ account: state.username, tenantId: state.tenantId }, "signed in");
      } else if (state.kind === "signed-in" && this.#lastLogged !== "signed-in") {
        options.logger.info({ account: state.username }, "signed in (saved sign-in)");
      }
      this.#lastLogged = state.kind;
    });
    this.#pipeline = await this.#startPipeline(this.#config);
    keeper.start();
  }

  /**
   * Applies a new configuration: the pipeline (displays, outbox, sinks, sources) is stopped in
   * order and started from the new one. A change of profile needs a restart (a sign-in belongs to
   * its profile): it is refused with a clear error and the running configuration is kept.
   */
  async reload(config: AgentConfig): Promise<void> {
    if (config.profile !== this.#config.profile) {
      throw new EntraToolError("E_CONFIG", {
        message: `The new configuration names profile '${config.profile}' instead of '${this.#config.profile}': restart the agent to change the profile.`,
      });
    }
    // A profile written into the file is compared field by field: new scopes or another tenant
    // are another sign-in too.
    if (JSON.stringify(config.inlineProfile) !== JSON.stringify(this.#config.inlineProfile)) {
      throw new EntraToolError("E_CONFIG", {
        message: `The new configuration changes profile '${config.profile}': restart the agent to change the profile.`,
      });
    }
    const old = this.#pipeline;
    this.#pipeline = undefined;
    if (old) await this.#stopPipeline(old);
    try {
      this.#pipeline = await this.#startPipeline(config);
    } catch (error) {
      // The new configuration could not be started (its outbox, say): the old one runs again.
      this.#pipeline = await this.#startPipeline(this.#config);
      throw error;
    }
    this.#config = config;
    this.#options.logger.info(
      { sinks: config.sinks.length, sources: config.sources.length, displays: config.displays.length },
      "configuration reloaded",
    );
  }

  /** Stops in order, within about drainMs + a few seconds. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const pipeline = this.#pipeline;
    this.#pipeline = undefined;
    if (pipeline) await this.#stopPipeline(pipeline, true);
    await this.#keeper?.stop();
  }

  /** Appends messages handed over by `send`; resolves once they are durable. */
  async send(messages: readonly NewMessage[]): Promise<readonly Message[]> {
    const pipeline = this.#pipeline;
    if (!pipeline) {
      throw new EntraToolError("E_AGENT_REFUSED", {
        message: "The agent is stopping or reloading its configuration: send the messages again in a moment.",
      });
    }
    return this.#track(pipeline.outbox.append(messages));
  }

  /** A token from the agent's sign-in (the socket's get-token): no second sign-in, no second refresh. */
  async token(request: { scopes?: readonly string[]; forceRefresh?: boolean }): Promise<TokenResult> {
    const tokens = this.#tokens;
    if (!tokens || !this.#keeper?.signedIn()) {
      const state = this.#keeper?.state;
      const code = state?.kind === "code-issued" || state?.kind === "waiting" ? state.userCode : undefined;
      throw new EntraToolError("E_SIGN_IN_REQUIRED", {
        message:
          code === undefined
            ? "The entratool agent is not signed in yet: see 'entratool status' for why."
            : `The entratool agent is not signed in yet: sign in with code ${code} (see 'entratool status').`,
      });
    }
    return tokens.result({
      ...(request.scopes ? { scopes: request.scopes } : {}),
      ...(request.forceRefresh ? { forceRefresh: true } : {}),
    });
  }

  status(): AgentStatus {
    const now = this.#options.clock.now();
    const state = this.#keeper?.state ?? { kind: "idle", profile: this.#config.profile };
    const pipeline = this.#pipeline;
    const stats = pipeline?.outbox.stats(now);
    return {
      version: this.#options.version,
      pid: process.pid,
      startedAt: new Date(this.#startedAt).toISOString(),
      device: this.#config.device,
      profile: this.#config.profile,
      signIn: signInStatus(state, this.#keeper?.signedIn() ?? false),
      outbox: { messages: stats?.messages ?? 0, bytes: stats?.bytes ?? 0, dropped: stats?.dropped ?? 0 },
      memory: memoryNow(),
      sinks: (pipeline?.runners ?? []).map((runner) => {
        const { lastSuccess, ...health } = runner.health(now);
        return lastSuccess === undefined
          ? health
          : { ...health, lastSuccess: new Date(lastSuccess).toISOString() };
      }),
      sources: (pipeline?.sources ?? []).map((source) => source.name),
    };
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#appending.add(promise);
    const done = (): void => {
      this.#appending.delete(promise);
    };
    promise.then(done, done);
    return promise;
  }

  async #startPipeline(config: AgentConfig): Promise<Pipeline> {
    const options = this.#options;
    const keeper = this.#keeper as Keeper;
    const tokens = this.#tokens as AgentTokens;
    const logger = options.logger;
    const displays = await options.openDisplays(config);
    const offs: Array<() => void> = [];
    const runners: SinkRunner[] = [];
    const sources: Source[] = [];
    let outbox: Outbox | undefined;
    try {
      offs.push(keeper.subscribe((state) => displays.onState(state)));
      offs.push(displays.onButton((action) => keeper.press(action)));
      const opened = await options.openOutbox(config);
      outbox = opened;
      const published = (): PublishedState => (keeper.signedIn() ? "online" : "awaiting-sign-in");
      const stateListeners = new Set<(state: PublishedState) => void>();
      let last = published();
      // The retained MQTT state follows the sign-in: looked at on every state and every new token
      // (the first sign-in's state comes before its token is held).
      const recheck = (): void => {
        const now = published();
        if (now === last) return;
        last = now;
        for (const listener of stateListeners) listener(now);
      };
      offs.push(keeper.subscribe(recheck));
      const sinkDeps: SinkDeps = {
        device: config.device,
        tokens,
        defaultScopes: options.profile.scopes,
        clock: options.clock,
        logger,
        state: {
          current: published,
          subscribe: (listener) => {
            stateListeners.add(listener);
            return () => stateListeners.delete(listener);
          },
        },
        health: () => this.#health(),
      };
      const names = new Set<string>();
      for (const [index, sinkConfig] of config.sinks.entries()) {
        let sink = options.createSink(sinkConfig, index, sinkDeps);
        // The second of two sinks with one name gets "#2" (its cursor must be its own).
        const base = sink.name.replace(/#\d+$/, "");
        for (let n = 2; names.has(sink.name); n++) {
          if (!names.has(`${base}#${n}`)) sink = renamed(sink, `${base}#${n}`);
        }
        names.add(sink.name);
        runners.push(
          new SinkRunner({ sink, type: sinkConfig.type, outbox: opened, clock: options.clock, logger }),
        );
      }
      // Sinks no longer configured keep no messages.
      opened.retain([...names]);
      // A new token wakes every sink waiting for one.
      offs.push(
        tokens.onChange(() => {
          recheck();
          for (const runner of runners) runner.tokensChanged();
        }),
      );
      // Sinks before sources: nothing is collected that has nowhere to go yet (it would wait in
      // the outbox anyway, but a broken sink configuration shows first).
      for (const runner of runners) {
        await runner.start().catch((error: unknown) => {
          logger.warn({ err: error, sink: runner.name }, `sink ${runner.name} did not start; it will retry`);
        });
      }
      for (const [index, sourceConfig] of config.sources.entries()) {
        const source = options.createSource(sourceConfig, index, {
          clock: options.clock,
          logger,
          append: (messages) => this.#track(opened.append(messages)),
        });
        sources.push(source);
        await source.start();
      }
      return { outbox: opened, runners, sources, displays, offs };
    } catch (error) {
      // Nothing half-started stays behind: what was started is stopped, in the usual order.
      if (outbox === undefined) {
        for (const off of offs) off();
        await displays.close();
      } else {
        await this.#stopPipeline({ outbox, runners, sources, displays, offs });
      }
      throw error;
    }
  }

  async #stopPipeline(pipeline: Pipeline, final = false): Promise<void> {
    const logger = this.#options.logger;
    // 1. Sources: nothing new is collected.
    await Promise.all(
      pipeline.sources.map((source) =>
        source.stop().catch((error: unknown) => {
          logger.warn({ err: error, source: source.name }, "a source did not stop cleanly");
        }),
      ),
    );
    // 2. The outbox: appends in flight (a source's last reading, a `send`) finish and are durable.
    await Promise.allSettled([...this.#appending]);
    // 3. Sinks: what is pending is sent for a bounded time, then they close.
    const drainMs = this.#options.drainMs ?? 5000;
    await Promise.all(
      pipeline.runners.map((runner) =>
        runner.stop(drainMs).catch((error: unknown) => {
          logger.warn({ err: error, sink: runner.name }, "a sink did not stop cleanly");
        }),
      ),
    );
    for (const off of pipeline.offs) off();
    // 4. The displays take the code off (on the final stop, the keeper's last state stays shown).
    if (final) this.#session?.cancel();
    await pipeline.displays.close();
    pipeline.outbox.close();
  }

  /** The periodic health message: sign-in state, outbox and every sink. */
  #health(): JsonValue {
    return JSON.parse(JSON.stringify(this.status())) as JsonValue;
  }
}

function memoryNow(): AgentStatus["memory"] {
  const usage = process.memoryUsage();
  return { rssBytes: usage.rss, heapUsedBytes: usage.heapUsed };
}

function signInStatus(state: SessionState, signedIn: boolean): AgentStatus["signIn"] {
  switch (state.kind) {
    case "code-issued":
    case "waiting":
      return {
        state: state.kind,
        signedIn,
        code: {
          userCode: state.userCode,
          verificationUri: state.verificationUri,
          expiresAt: new Date(state.expiresAt).toISOString(),
        },
        message: state.message,
      };
    case "signed-in":
      return {
        state: state.kind,
        signedIn,
        account: state.username,
        tokenExpiresAt: new Date(state.expiresAt).toISOString(),
      };
    case "sign-in-required":
      return { state: state.kind, signedIn, message: state.reason.message };
    case "blocked-by-policy":
    case "offline":
    case "error":
      return { state: state.kind, signedIn, message: state.error.message };
    case "wrong-account":
      return {
        state: state.kind,
        signedIn,
        account: state.username,
        message: `This device expects ${state.expected}.`,
      };
    default:
      return { state: state.kind, signedIn };
  }
}
