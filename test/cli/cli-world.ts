import { join } from "node:path";
import { SignInSession } from "../../agent/auth/session.ts";
import type { CliContext } from "../../agent/cli/context.ts";
import type { Output } from "../../agent/core/output.ts";
import { resolvePaths } from "../../agent/core/paths.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { JsonProfileStore } from "../../agent/store/profiles.ts";
import type { TokenStore } from "../../agent/store/types.ts";
import type { World } from "../auth/world.ts";

/** What a command wrote to stdout or stderr (not a terminal). */
export class Capture implements Output {
  text = "";
  readonly isTTY = false;
  write(text: string): void {
    this.text += text;
  }
}

export interface CliWorld {
  readonly ctx: CliContext;
  readonly stdout: Capture;
  readonly stderr: Capture;
}

/**
 * A CLI context on a World: the real profile store (with the world's default profile in it),
 * token store, locks and sign-in session against the emulator, on the world's virtual clock.
 */
export async function cliWorld(
  w: World,
  options: { readonly tokens?: TokenStore; readonly loadDisplays?: CliContext["loadDisplays"] } = {},
): Promise<CliWorld> {
  const locks = new FlockLockManager({
    locksDir: join(w.stateDir, "locks"),
    clock: w.clock,
    logger: w.logger,
  });
  const profiles = new JsonProfileStore({
    file: join(w.dir, "config", "profiles.json"),
    logger: w.logger,
    locks,
  });
  await profiles.create(w.profile());
  const stdout = new Capture();
  const stderr = new Capture();
  const tokens = options.tokens ?? w.tokenStore();
  const engine = w.service({ tokenStore: tokens });
  const ctx: CliContext = {
    io: { stdout, stderr, interactive: false, ask: async () => undefined },
    env: {},
    paths: resolvePaths({ ENTRATOOL_HOME: w.dir }, w.dir),
    logger: w.logger,
    clock: w.clock,
    profiles,
    tokens,
    locks,
    openSession: (profile) =>
      new SignInSession({ profile, engine, tokenStore: tokens, locks, clock: w.clock, logger: w.logger }),
    signIn: engine,
    loadAgent: () => import("../../agent/agent-cli.ts"),
    signal: new AbortController().signal,
    version: "test",
    loadDisplays:
      options.loadDisplays ?? (() => Promise.reject(new Error("this test expects no display to be loaded"))),
  };
  return { ctx, stdout, stderr };
}
