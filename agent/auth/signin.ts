import type { AccountInfo, AuthenticationResult, PublicClientApplication } from "@azure/msal-node";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, isAbortError, isEntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Env } from "../core/paths.ts";
import { safeLine } from "../core/text.ts";
import type { LockManager, Profile, TokenStore } from "../store/types.ts";
import { findCachedAccessToken, OIDC_SCOPES } from "./cached-token.ts";
import type { ProviderDiscovery } from "./discovery.ts";
import type { MsalModule } from "./msal.ts";
import type { DeviceCodeDetails, EntraNetworkClient, FetchLike } from "./network.ts";
import type { CodeInfo, ErrorInfo, SessionState } from "./session-state.ts";
import type { TimeSync } from "./time-sync.ts";

/** How often the sign-in asks whether the clock can be trusted yet, ms (on the injected clock). */
export const TIME_SYNC_POLL_MS = 2000;

/** Used when neither `--scope` nor the profile names any: whatever the app registration was granted. */
export const DEFAULT_SCOPES: readonly string[] = ["https://graph.microsoft.com/.default"];

function scopesFor(profile: Profile, request: TokenRequest): string[] {
  return [
    ...(request.scopes?.length ? request.scopes : profile.scopes.length ? profile.scopes : DEFAULT_SCOPES),
  ];
}

/** What a sign-in reports while it runs (see session-state.ts). */
export type SignInState = SessionState;

export interface TokenRequest {
  /** Overrides the profile's scopes when not empty. */
  readonly scopes?: readonly string[];
  readonly forceRefresh?: boolean;
  /** false: fail with E_SIGN_IN_REQUIRED instead of showing a device code. Default true. */
  readonly allowDeviceCode?: boolean;
  /** Cancels everything at once (Ctrl+C, service stop). */
  readonly signal?: AbortSignal;
  /** Gives up after this many ms with E_TIMEOUT. */
  readonly timeoutMs?: number;
  readonly onState?: (state: SignInState) => void;
}

export interface TokenResult {
  readonly profile: string;
  readonly accessToken: string;
  readonly tokenType: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly scopes: readonly string[];
  readonly account: { readonly username: string; readonly tenantId: string; readonly homeAccountId: string };
  /** true when no request to the identity provider was needed. */
  readonly fromCache: boolean;
}

export interface SignInServiceDeps {
  readonly tokenStore: TokenStore;
  readonly locks: LockManager;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly fetch: FetchLike;
  readonly env: Env;
  /**
   * Loads ./msal.ts, the only module that runs msal-node code, when a request needs it (a cached
   * token does not; see `#fromCache`). Typically `() => import("./auth/msal.ts")`; the compiled CLI
   * loads it so that msal-node is not even part of its start-up bundle (agent/main.ts).
   */
  readonly loadMsal: () => Promise<MsalModule>;
  /** Per-request timeout for the identity provider, ms. */
  readonly requestTimeoutMs?: number;
  /**
   * Where the identity providers' OpenID configurations are kept (Paths.discoveryDir; see
   * ./discovery.ts). Absent: they are kept in memory only, for this service's lifetime.
   */
  readonly discoveryDir?: string;
  /** Paths.stateRoot: from there down, every directory must be private (see ensurePrivateDir). */
  readonly privateRoot?: string;
  /**
   * How long a refresh request already sent may finish after a cancel or timeout, ms (see
   * NetworkClientOptions.refreshGraceMs). Default 5000.
   */
  readonly refreshGraceMs?: number;
  /**
   * Whether the system clock can be trusted (./time-sync.ts has the real one). Absent: it always
   * can. When it cannot, `getToken` waits before the cache check and before any request.
   */
  readonly timeSync?: TimeSync;
}

/**
 * Settles with `promise`, or rejects with the signal's reason as soon as it aborts. `promise` is
 * always observed, so its own later failure is never an unhandled rejection; a value it yields
 * after the abort goes to `discard` (a lock that arrived too late must still be released).
 */
function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  discard?: (late: T) => unknown,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (!settled) {
          settled = true;
          resolve(value);
        } else if (discard) {
          Promise.resolve()
            .then(() => discard(value))
            .catch(() => {});
        }
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        if (settled) return; // Already rejected with the abort reason; this is its echo.
        settled = true;
        reject(error);
      },
    );
  });
}

/**
 * The one sign-in state machine, for the CLI and the daemon alike: cache → refresh → device code,
 * under a per-profile lock so that two processes never show two codes for one profile.
 */
export class SignInService {
  readonly #deps: SignInServiceDeps;
  /** Made on first use (see `#underLock`); keeps documents in memory across this service's calls. */
  #discovery: ProviderDiscovery | undefined;
  #warnedTlsUnchecked = false;

  constructor(deps: SignInServiceDeps) {
    this.#deps = deps;
  }

  async getToken(profile: Profile, request: TokenRequest = {}): Promise<TokenResult> {
    const { clock, logger } = this.#deps;
    const emit = (state: SignInState): void => {
      try {
        request.onState?.(state);
      } catch (error) {
        // A broken screen must never break the sign-in.
        logger.warn({ err: error, state: state.kind }, "state listener failed");
      }
    };
    const controller = new AbortController();
    const onOuterAbort = (): void => controller.abort(new EntraToolError("E_CANCELLED"));
    if (request.signal?.aborted) onOuterAbort();
    request.signal?.addEventListener("abort", onOuterAbort, { once: true });
    if (request.timeoutMs !== undefined) {
      clock.sleep(request.timeoutMs, controller.signal).then(
        () => controller.abort(new EntraToolError("E_TIMEOUT")),
        () => {},
      );
    }
    const signal = controller.signal;
    emit({ kind: "starting", profile: profile.name });
    const signedIn = (result: TokenResult): TokenResult => {
      emit({
        kind: "signed-in",
        profile: profile.name,
        username: result.account.username,
        tenantId: result.account.tenantId,
        expiresAt: result.expiresAt,
        fromCache: result.fromCache,
      });
      return result;
    };
    try {
      // Before the cache too: with a clock at 1970 every cached token looks valid, so the cache
      // check would hand out expired tokens; and TLS and Entra fail with a wrong clock anyway.
      await this.#untilTimeIsTrusted(profile, signal, emit);
      // No lock for a read: token files are replaced atomically, and MSAL stays the only writer.
      const cached = request.forceRefresh ? undefined : await this.#fromCache(profile, request);
      if (cached) return signedIn(cached);
      const lock = await untilAborted(
        this.#deps.locks.acquire(profile.name, {
          signal,
          onWait: () => emit({ kind: "waiting-for-lock", profile: profile.name }),
        }),
        signal,
        (late) => late.release(),
      );
      const msalCalls: Promise<unknown>[] = [];
      try {
        return signedIn(await this.#underLock(profile, request, signal, emit, msalCalls));
      } finally {
        // A cancelled MSAL call may still be about to write the cache; it must finish while we hold
        // the lock. Its requests were aborted with the signal, so it settles at once.
        await Promise.allSettled(msalCalls);
        await lock.release();
      }
    } catch (thrown) {
      const error = this.#explain(thrown, undefined, signal);
      emit(terminalState(profile.name, error));
      throw error;
    } finally {
      request.signal?.removeEventListener("abort", onOuterAbort);
      // Ends the timeout timer; nothing else listens any more.
      if (!signal.aborted) controller.abort(new EntraToolError("E_CANCELLED"));
    }
  }

  /**
   * Returns once the clock can be trusted, asking every TIME_SYNC_POLL_MS; emits `waiting-for-time`
   * once if it has to wait. Rejects with the signal's reason (cancel, timeout) as soon as it aborts.
   */
  async #untilTimeIsTrusted(
    profile: Profile,
    signal: AbortSignal,
    emit: (state: SignInState) => void,
  ): Promise<void> {
    const { timeSync, clock, logger } = this.#deps;
    if (!timeSync) return;
    const synchronised = (): Promise<boolean> => untilAborted(timeSync.isSynchronised(), signal);
    if (await synchronised()) return;
    const since = clock.now();
    logger.info({ profile: profile.name, clock: new Date(since).toISOString() }, "waiting for network time");
    emit({ kind: "waiting-for-time", profile: profile.name });
    do {
      await clock.sleep(TIME_SYNC_POLL_MS, signal);
    } while (!(await synchronised()));
    logger.info(
      { profile: profile.name, clock: new Date(clock.now()).toISOString() },
      "system clock synchronised",
    );
  }

  /**
   * An access token MSAL itself would serve from the cache without a request, found without
   * loading MSAL; undefined when only MSAL can tell (expiring, other scopes, no cache).
   */
  async #fromCache(profile: Profile, request: TokenRequest): Promise<TokenResult | undefined> {
    const serialized = await this.#deps.tokenStore.readCache(profile.name);
    if (serialized === undefined) return undefined;
    const found = findCachedAccessToken(serialized, {
      clientId: profile.clientId,
      authorityHost: profile.authorityHost,
      tenantId: profile.tenantId,
      scopes: scopesFor(profile, request),
      now: this.#deps.clock.now(),
    });
    if (!found) return undefined;
    return {
      profile: profile.name,
      accessToken: found.accessToken,
      tokenType: found.tokenType,
      expiresAt: found.expiresAt,
      scopes: found.scopes,
      account: {
        username: shownText(found.username),
        tenantId: shownText(found.tenantId),
        homeAccountId: found.homeAccountId,
      },
      fromCache: true,
    };
  }

  /**
   * Says once per service (a process, in practice) that TLS certificates are not checked: the
   * runtime honours NODE_TLS_REJECT_UNAUTHORIZED=0, and then a man in the middle gets every token.
   */
  #warnIfTlsUnchecked(): void {
    if (this.#warnedTlsUnchecked || this.#deps.env.NODE_TLS_REJECT_UNAUTHORIZED !== "0") return;
    this.#warnedTlsUnchecked = true;
    this.#deps.logger.warn(
      "NODE_TLS_REJECT_UNAUTHORIZED=0 switches TLS certificate checks off, so anyone on the network path can read and change the sign-in: unset it (for a private CA, use NODE_EXTRA_CA_CERTS).",
    );
  }

  async #underLock(
    profile: Profile,
    request: TokenRequest,
    signal: AbortSignal,
    emit: (state: SignInState) => void,
    msalCalls: Promise<unknown>[],
  ): Promise<TokenResult> {
    const { logger } = this.#deps;
    /** Waits for an MSAL call until the signal aborts, and remembers it for the lock's release. */
    const call = <T>(promise: Promise<T>): Promise<T> => {
      msalCalls.push(promise);
      return untilAborted(promise, signal);
    };
    this.#warnIfTlsUnchecked();
    // Loaded only now: a cached token (`#fromCache`) needs neither, and the CLI's start-up time is
    // what a cached `get-token` costs (README, benchmark).
    const [{ EntraNetworkClient }, { msalAuthority, ProviderDiscovery }] = await Promise.all([
      import("./network.ts"),
      import("./discovery.ts"),
    ]);
    const { clock, discoveryDir, privateRoot } = this.#deps;
    this.#discovery ??= new ProviderDiscovery({
      clock,
      logger,
      ...(discoveryDir === undefined ? {} : { dir: discoveryDir }),
      ...(privateRoot === undefined ? {} : { privateRoot }),
    });
    const discovery = this.#discovery;
    let code: CodeInfo | undefined;
    const network = new EntraNetworkClient({
      fetch: this.#deps.fetch,
      clock: this.#deps.clock,
      logger,
      env: this.#deps.env,
      signal,
      ...(this.#deps.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: this.#deps.requestTimeoutMs }),
      ...(this.#deps.refreshGraceMs === undefined ? {} : { refreshGraceMs: this.#deps.refreshGraceMs }),
      onPoll: (event) => {
        if (code) emit({ kind: "waiting", profile: profile.name, poll: event, ...code });
      },
      onRefresh: () => emit({ kind: "refreshing", profile: profile.name }),
    });
    // Before msal-node: it is given the endpoints, so that it makes no discovery request itself.
    const provider = await call(
      discovery.resolve(profile.authorityHost, profile.tenantId, (url) => network.getDocument(url)),
    );
    network.useProvider(provider);
    const msal = await this.#deps.loadMsal();
    const client = msal.createPublicClient(profile, {
      cachePlugin: this.#deps.tokenStore.cachePlugin(profile.name),
      networkClient: network,
      logger,
      authority: msalAuthority(provider),
    });
    const scopes = scopesFor(profile, request);

    const account = await call(this.#account(client));
    if (account) {
      try {
        const result = await call(
          client.acquireTokenSilent({ account, scopes, forceRefresh: request.forceRefresh ?? false }),
        );
        return toTokenResult(profile.name, result, this.#deps.clock.now());
      } catch (thrown) {
        const error = this.#explain(thrown, network, signal, msal);
        if (error.code !== "E_SIGN_IN_REQUIRED") throw error;
        logger.info({ profile: profile.name, reason: error.details }, "cached sign-in no longer valid");
        emit({
          kind: "sign-in-required",
          profile: profile.name,
          reason: {
            code: error.code,
            message: `The saved sign-in of profile '${profile.name}' is no longer valid (it expired, was revoked, or the password changed); a new sign-in is needed.`,
          },
        });
      }
    }
    if (request.allowDeviceCode === false) throw new EntraToolError("E_SIGN_IN_REQUIRED");

    try {
      const result = await call(
        client.acquireTokenByDeviceCode({
          scopes,
          deviceCodeCallback: (response) => {
            code = codeInfo(network.deviceCode(response.deviceCode), this.#deps.clock.now());
            logger.info(
              { profile: profile.name, verificationUri: code.verificationUri, expiresIn: response.expiresIn },
              "device code issued",
            );
            emit({ kind: "code-issued", profile: profile.name, ...code });
          },
        }),
      );
      if (!result) throw new EntraToolError("E_IDP", { message: "The identity provider returned no token." });
      await this.#keepOnlyAccount(client, result.account);
      return toTokenResult(profile.name, result, this.#deps.clock.now());
    } catch (thrown) {
      throw this.#explain(thrown, network, signal, msal);
    }
  }

  /** The profile's account: a profile holds one identity (the last one signed in). */
  async #account(client: PublicClientApplication): Promise<AccountInfo | undefined> {
    const accounts = await client.getAllAccounts();
    return accounts[0];
  }

  async #keepOnlyAccount(client: PublicClientApplication, keep: AccountInfo | null): Promise<void> {
    if (!keep) return;
    const cache = client.getTokenCache();
    for (const other of await cache.getAllAccounts()) {
      if (other.homeAccountId !== keep.homeAccountId) await cache.removeAccount(other);
    }
  }

  /** Maps whatever was thrown to the user-facing error, preferring what the network client saw. */
  #explain(
    thrown: unknown,
    network: EntraNetworkClient | undefined,
    signal: AbortSignal,
    msal?: MsalModule,
  ): EntraToolError {
    if (signal.aborted) {
      return isEntraToolError(signal.reason) ? signal.reason : new EntraToolError("E_CANCELLED");
    }
    const seen = network?.takeFailure();
    if (seen) return seen;
    if (isEntraToolError(thrown)) return thrown;
    if (isAbortError(thrown)) return new EntraToolError("E_CANCELLED");
    return msal?.explainMsalError(thrown) ?? new EntraToolError("E_INTERNAL", { cause: thrown });
  }
}

/** An error as plain data, for states. */
export function errorInfo(error: EntraToolError): ErrorInfo {
  return { code: error.code, message: error.message };
}

/** The sentence shown with a code when the provider sent none (Entra's own English one). */
export function promptMessage(verificationUri: string, userCode: string): string {
  return `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${userCode} to authenticate.`;
}

/**
 * The code as states carry it, from the device authorization response the network client
 * validated (msal-node's callback leaves out `verification_uri_complete`). Every string in it is
 * free of control characters and every URL is https (EntraNetworkClient checked them).
 */
function codeInfo(details: DeviceCodeDetails | undefined, now: number): CodeInfo {
  if (!details) {
    // msal-node announced a code the network client never saw: nothing safe to show.
    throw new EntraToolError("E_INTERNAL", { message: "A device code arrived that was never requested." });
  }
  const complete = details.verificationUriComplete;
  return {
    userCode: details.userCode,
    verificationUri: details.verificationUri,
    ...(complete === undefined ? {} : { verificationUriComplete: complete }),
    message: details.message ?? promptMessage(details.verificationUri, details.userCode),
    expiresAt: now + details.expiresInSeconds * 1000,
    intervalSeconds: details.intervalSeconds,
    qrPayload: complete ?? details.verificationUri,
  };
}

/** An account name or tenant from a token, fit for a screen: one line, no control characters, bounded. */
function shownText(text: string): string {
  const line = safeLine(text);
  return line.length > 256 ? line.slice(0, 256) : line;
}

function terminalState(profile: string, thrown: EntraToolError): SignInState {
  const error = errorInfo(thrown);
  switch (thrown.code) {
    case "E_CANCELLED":
      return { kind: "cancelled", profile };
    case "E_EXPIRED":
    case "E_TIMEOUT":
      return { kind: "expired", profile };
    case "E_POLICY_BLOCKED":
      return { kind: "blocked-by-policy", profile, error };
    case "E_NETWORK":
    case "E_TLS":
      return { kind: "offline", profile, error };
    case "E_SIGN_IN_REQUIRED":
      return { kind: "sign-in-required", profile, reason: error };
    default:
      return { kind: "error", profile, error };
  }
}

/**
 * msal-node's result as the engine hands it out, checked once more (the network client already
 * refused token responses without a token): a result with no token, or one already expired, is
 * the identity provider's error, not a token.
 */
function toTokenResult(profile: string, result: AuthenticationResult, now: number): TokenResult {
  const expiresAt = result.expiresOn ? result.expiresOn.getTime() : 0;
  if (typeof result.accessToken !== "string" || result.accessToken === "" || !(expiresAt > now)) {
    throw new EntraToolError("E_IDP", {
      message:
        "The identity provider returned an unusable token (empty, or already expired): try again later, and check --authority-host if it persists.",
      details: { empty: !result.accessToken, expiresAt: new Date(expiresAt).toISOString() },
    });
  }
  return {
    profile,
    accessToken: result.accessToken,
    tokenType: result.tokenType || "Bearer",
    expiresAt,
    scopes: result.scopes.filter((scope) => !OIDC_SCOPES.has(scope.toLowerCase())),
    account: {
      username: shownText(result.account?.username ?? ""),
      tenantId: shownText(result.account?.tenantId ?? result.tenantId),
      homeAccountId: result.account?.homeAccountId ?? "",
    },
    fromCache: result.fromCache,
  };
}
