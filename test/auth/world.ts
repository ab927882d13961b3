import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ISerializableTokenCache, TokenCacheContext } from "@azure/msal-node";
import { afterAll, afterEach, beforeAll, vi } from "vitest";
import type { FetchLike } from "../../agent/auth/network.ts";
import { SignInService, type SignInServiceDeps, type SignInState } from "../../agent/auth/signin.ts";
import { systemClock } from "../../agent/core/clock.ts";
import { EntraToolError } from "../../agent/core/errors.ts";
import type { Env } from "../../agent/core/paths.ts";
import type { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { createLogger } from "../../agent/pino-logger.ts";
import type { FileWriter } from "../../agent/store/encrypted-adapter.ts";
import { FileKeyProvider } from "../../agent/store/key.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { MachineIdentity } from "../../agent/store/machine.ts";
import { FileTokenStore } from "../../agent/store/token-store.ts";
import type { Profile } from "../../agent/store/types.ts";
import {
  DEFAULT_TENANT_ID,
  type EmulatorSettings,
  type RequestLogEntry,
} from "../../scripts/emulator/server.ts";
import { EmulatorHarness } from "../support/emulator.ts";

export const CLIENT_ID = "0c7a5e1d-9b3f-4e2a-8d6c-1f0b3a5c7e92";
export const TENANT = DEFAULT_TENANT_ID;
export const SECOND = 1000;

/** One `fetch` the code under test made, as the test's fetch wrapper saw it. */
export interface FetchCall {
  readonly url: string;
  readonly path: string;
  readonly method: string;
  readonly grantType: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly proxy: string | undefined;
  /** performance.now() when the call started. */
  readonly startedAt: number;
}

/** Runs before the request goes out; a test may delay it (await) to order events. */
export type BeforeFetch = (call: FetchCall) => void | Promise<void>;

export interface WorldOptions {
  readonly tlsDir: string;
  readonly settings?: Partial<EmulatorSettings>;
}

function formField(body: unknown, name: string): string | undefined {
  return typeof body === "string" ? (new URLSearchParams(body).get(name) ?? undefined) : undefined;
}

/**
 * Everything a SignInService needs, real: the HTTPS emulator, an encrypted file token store bound
 * to a fake machine identity, flock locks, a pino logger whose lines are kept, and one virtual
 * clock shared by the service and the emulator.
 */
export class World {
  readonly clock: VirtualClock;
  readonly harness: EmulatorHarness;
  readonly dir: string;
  readonly stateDir: string;
  /** The emulator's TLS files (its CA is what `fetch()` trusts): other loopback servers may share them. */
  readonly tlsDir: string;
  readonly logLines: string[] = [];
  /** The emulator's own log: one line per answered request (`POST /…/token device_code 400 …`). */
  readonly emulatorLines: string[] = [];
  readonly #lineWaiters: Array<{ match: (line: string) => boolean; resolve: () => void }> = [];
  readonly fetchCalls: FetchCall[] = [];
  beforeFetch: BeforeFetch | undefined;
  readonly logger = createLogger({
    level: "debug",
    destination: { write: (line: string) => void this.logLines.push(line) },
  });

  private constructor(harness: EmulatorHarness, dir: string, tlsDir: string) {
    this.harness = harness;
    this.clock = harness.clock;
    this.dir = dir;
    this.stateDir = join(dir, "state");
    this.tlsDir = tlsDir;
  }

  static async create(options: WorldOptions): Promise<World> {
    const dir = await mkdtemp(join(tmpdir(), "entratool-signin-"));
    let world: World | undefined;
    const harness = new EmulatorHarness({
      tlsDir: options.tlsDir,
      defaults: options.settings ?? {},
      logger: (line) => {
        if (world) world.#emulatorLine(line);
      },
    });
    world = new World(harness, dir, options.tlsDir);
    await harness.start();
    // MSAL reads `Date` for token expiry: keep it on the shared virtual clock (after the TLS files
    // were made on real time above), so that "advance past expiry" means the same to everyone.
    vi.useFakeTimers({ toFake: ["Date"], now: world.clock.now() });
    world.clock.onTimeChange = (now) => vi.setSystemTime(now);
    await mkdir(join(dir, "machine"), { recursive: true });
    await writeFile(join(dir, "machine", "machine-id"), "0123456789abcdef0123456789abcdef\n");
    return world;
  }

  get emulator() {
    return this.harness.emulator;
  }

  profile(overrides: Partial<Profile> = {}): Profile {
    return {
      name: "default",
      tenantId: TENANT,
      clientId: CLIENT_ID,
      scopes: ["User.Read"],
      authorityHost: this.harness.host,
      defaultFlow: "device-code",
      ...overrides,
    };
  }

  /** `fetch` as the agent would use it, trusting the emulator's CA (or not). */
  fetch(options: { trustCa?: boolean } = {}): FetchLike {
    const trust = options.trustCa ?? true;
    return async (url, init) => {
      const call: FetchCall = {
        url,
        path: new URL(url).pathname,
        method: init.method ?? "GET",
        grantType: formField(init.body, "grant_type"),
        signal: init.signal ?? undefined,
        proxy: init.proxy,
        startedAt: performance.now(),
      };
      this.fetchCalls.push(call);
      await this.beforeFetch?.(call);
      return fetch(url, trust ? { ...init, tls: { ca: this.harness.caPem } } : init);
    };
  }

  /** Where OpenID configurations are kept: the state directory's, as the CLI keeps them. */
  get discoveryDir(): string {
    return join(this.stateDir, "discovery");
  }

  /**
   * The encrypted token store of this world's state directory (a new instance each call),
   * optionally writing through `writeFile` (a full disk).
   */
  tokenStore(options: { readonly writeFile?: FileWriter } = {}): FileTokenStore {
    const machineIdentity = new MachineIdentity({
      logger: this.logger,
      machineIdFiles: [join(this.dir, "machine", "machine-id")],
      serialNumberFile: join(this.dir, "machine", "serial-number"),
      cpuinfoFile: join(this.dir, "machine", "cpuinfo"),
    });
    const keyProvider = new FileKeyProvider({
      keyFile: join(this.stateDir, "store.key"),
      credentialKeyFile: undefined,
      machineIdentity,
      logger: this.logger,
      tokensDir: join(this.stateDir, "tokens"),
      // Real time for the rare wait on the key's directory lock: it must not move the shared clock.
      locks: new FlockLockManager({
        locksDir: join(this.stateDir, "locks"),
        clock: systemClock,
        logger: this.logger,
        pollMs: 5,
      }),
      clock: this.clock,
    });
    return new FileTokenStore({
      tokensDir: join(this.stateDir, "tokens"),
      keyProvider,
      logger: this.logger,
      clock: this.clock,
      ...options,
    });
  }

  /** MSAL's cache for `profile` as stored on disk, decrypted; "" when there is none. */
  async storedCache(profile = "default"): Promise<string> {
    let stored = "";
    const tokenCache: ISerializableTokenCache = {
      serialize: () => "",
      deserialize: (cache: string) => {
        stored = cache;
      },
    };
    await this.tokenStore().cachePlugin(profile).beforeCacheAccess(new TokenCacheContext(tokenCache, false));
    return stored;
  }

  /**
   * A SignInService on this world's directories; every instance shares them. `lockClock` gives
   * its lock manager a clock of its own, so that waiting for a lock does not move shared time.
   */
  service(
    overrides: Partial<SignInServiceDeps> & {
      fetchOptions?: { trustCa?: boolean };
      lockClock?: VirtualClock;
    } = {},
  ): SignInService {
    const { fetchOptions, lockClock, ...deps } = overrides;
    const env: Env = {};
    return new SignInService({
      tokenStore: this.tokenStore(),
      locks: new FlockLockManager({
        locksDir: join(this.stateDir, "locks"),
        clock: lockClock ?? this.clock,
        logger: this.logger,
      }),
      clock: this.clock,
      logger: this.logger,
      fetch: this.fetch(fetchOptions),
      env,
      discoveryDir: this.discoveryDir,
      loadMsal: () => import("../../agent/auth/msal.ts"),
      ...deps,
    });
  }

  /** Refresh tokens the emulator issued, oldest first. */
  refreshTokens(): string[] {
    return this.emulator.issuedSecrets().filter((secret) => secret.startsWith("1.AXEA"));
  }

  /** Requests the emulator received on the token endpoint with the device code grant. */
  polls(): RequestLogEntry[] {
    return this.emulator.requests().filter((entry) => entry.grantType === "device_code");
  }

  /**
   * Requests to the emulator by kind: "discovery" (the OpenID configuration), "devicecode",
   * "device_code", "refresh_token", or the path.
   */
  requestKinds(): string[] {
    return this.emulator.requests().map((entry) => {
      if (entry.path.endsWith("/.well-known/openid-configuration")) return "discovery";
      return entry.path.endsWith("/devicecode") ? "devicecode" : (entry.grantType ?? entry.path);
    });
  }

  /** Every file under the state directory, as raw text. */
  async stateFiles(): Promise<Array<{ path: string; text: string }>> {
    const entries = await readdir(this.stateDir, { recursive: true, withFileTypes: true });
    return Promise.all(
      entries
        .filter((entry) => entry.isFile())
        .map(async (entry) => {
          const path = join(entry.parentPath, entry.name);
          return { path, text: (await readFile(path)).toString("latin1") };
        }),
    );
  }

  /** Resolves when the emulator next answers (or drops) a request whose log line matches. */
  emulatorAnswered(match: (line: string) => boolean): Promise<void> {
    return new Promise<void>((resolve) => this.#lineWaiters.push({ match, resolve }));
  }

  #emulatorLine(line: string): void {
    this.emulatorLines.push(line);
    for (const waiter of [...this.#lineWaiters]) {
      if (!waiter.match(line)) continue;
      this.#lineWaiters.splice(this.#lineWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  async dispose(): Promise<void> {
    vi.useRealTimers();
    this.clock.onTimeChange = undefined;
    this.clock.release();
    await this.harness.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Records every state and lets a test react to them (approve, decline, abort…). */
export class StateLog {
  readonly states: SignInState[] = [];
  readonly #reactions: Array<(state: SignInState) => void> = [];

  readonly onState = (state: SignInState): void => {
    this.states.push(state);
    for (const react of this.#reactions) react(state);
  };

  on(react: (state: SignInState) => void): this {
    this.#reactions.push(react);
    return this;
  }

  kinds(): string[] {
    return this.states.map((state) => state.kind);
  }

  last(): SignInState | undefined {
    return this.states.at(-1);
  }

  /** The `code-issued` state; throws when there was none. */
  codeIssued(): Extract<SignInState, { kind: "code-issued" }> {
    const state = this.states.find((s) => s.kind === "code-issued");
    if (state?.kind !== "code-issued") throw new Error(`no code-issued state in ${this.kinds().join(", ")}`);
    return state;
  }

  /** How many `waiting` states carried each poll event type. */
  waitingEvents(): string[] {
    return this.states.flatMap((state) => (state.kind === "waiting" ? [state.poll.type] : []));
  }
}

/**
 * Waits (event loop turns, no timer) until `condition` holds, for events that happen in real time
 * outside the code under test (a request reaching the emulator). Fails after `limitMs` real ms.
 */
export async function until(condition: () => boolean, what: string, limitMs = 5000): Promise<void> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The EntraToolError `promise` rejects with; fails the test when it resolves or throws something else. */
export async function rejection(promise: Promise<unknown>): Promise<EntraToolError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof EntraToolError) return error;
    throw error;
  }
  throw new Error("expected the promise to reject");
}

/**
 * The hooks every sign-in test file needs: one TLS directory for the file's emulators, and a World
 * per test, disposed after it. Returns `start(settings)`, which makes that test's World.
 */
export function worldPerTest(): (settings?: Partial<EmulatorSettings>) => Promise<World> {
  let tlsDir = "";
  let world: World | undefined;
  beforeAll(async () => {
    tlsDir = await mkdtemp(join(tmpdir(), "entratool-signin-tls-"));
  });
  afterAll(async () => {
    await rm(tlsDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await world?.dispose();
    world = undefined;
  });
  return async (settings = {}) => {
    world = await World.create({ tlsDir, settings });
    return world;
  };
}
