import type { SignInDisplayOptions, SignInDisplays } from "../../display/sign-in.ts";
import type { QrEncoder } from "../../display/types.ts";
import type { SignInSession } from "../auth/session.ts";
import type { SignInService } from "../auth/signin.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import type { Output } from "../core/output.ts";
import type { Env, Paths } from "../core/paths.ts";
import type { ServiceNotifier } from "../linux/sd-notify.ts";
import type { LockManager, Profile, ProfileStore, TokenStore } from "../store/types.ts";

// Output lives in agent/core (the terminal display writes to it too); re-exported for the CLI's modules.
export type { Output } from "../core/output.ts";

export interface CliIO {
  readonly stdout: Output;
  readonly stderr: Output;
  /** Whether a person can answer questions (stdin and stderr are terminals). */
  readonly interactive: boolean;
  /** Asks one question on the terminal; undefined at end of input. */
  ask(question: string): Promise<string | undefined>;
  /**
   * Another place to show the device code prompt: the controlling terminal when stderr is captured
   * by a script. undefined when there is none.
   */
  readonly promptMirror?: Output | undefined;
  /**
   * Waits until everything written has left the process, and throws the first write that failed
   * (a full disk under a redirected stdout). Outputs that write at once need none.
   */
  flush?(): Promise<void>;
}

/**
 * The display module (agent/display-cli.ts, an entrypoint of its own): what the CLI calls in it.
 * Declared here rather than imported, so that this module does not depend on the entrypoint that
 * depends on it.
 */
export interface DisplayModule {
  displayCommand(ctx: CliContext, argv: readonly string[]): Promise<number>;
  /** The displays of a sign-in: the terminal and those of `configFile` (see display/sign-in.ts). */
  openSignInDisplays(options: SignInDisplayOptions): Promise<SignInDisplays>;
}

/**
 * The agent module (agent/agent-cli.ts, an entrypoint of its own: the outbox, the sinks and
 * mqtt.js are loaded only by `agent` and `check-config`).
 */
export interface AgentModule {
  agentCommand(ctx: CliContext, argv: readonly string[]): Promise<number>;
  checkConfigCommand(ctx: CliContext, argv: readonly string[]): Promise<number>;
  doctorCommand(ctx: CliContext, argv: readonly string[]): Promise<number>;
  provisionCommand(ctx: CliContext, argv: readonly string[]): Promise<number>;
}

/** Everything a command may use, built once by the composition root (agent/main.ts). */
export interface CliContext {
  readonly io: CliIO;
  readonly env: Env;
  readonly paths: Paths;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly profiles: ProfileStore;
  readonly tokens: TokenStore;
  /** Per-profile locks: anything that changes a profile's tokens holds its lock. */
  readonly locks: LockManager;
  /** The sign-in session of a profile (cache → refresh → device code, the button's policy). */
  readonly openSession: (profile: Profile) => SignInSession;
  /** The sign-in engine itself, for the agent's silent token requests (they change no display). */
  readonly signIn: Pick<SignInService, "getToken">;
  /** `agent` and `check-config`, loaded only when used. */
  readonly loadAgent: () => Promise<AgentModule>;
  /** Calls `listener` on SIGHUP (the agent reloads its configuration); returns the unsubscribe. */
  readonly onHangup?: (listener: () => void) => () => void;
  /** The service manager's channel (systemd Type=notify: READY, STATUS, WATCHDOG); absent when none listens. */
  readonly serviceNotifier?: ServiceNotifier | undefined;
  /** `display …` commands and the displays of a sign-in (the prompt among them), loaded only when used. */
  readonly loadDisplays: () => Promise<DisplayModule>;
  /** The QR encoder, loaded on first use (the device code prompt shows the URL as a QR code). */
  readonly qr?: QrEncoder | undefined;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  readonly version: string;
}
