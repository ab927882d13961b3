import { createHash, createPublicKey, randomBytes, randomInt, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import { type Clock, systemClock } from "../../agent/core/clock.ts";
import { type EntraErrorSpec, Errors, errorBody } from "./errors.ts";
import { approvedPage, consentPage, declinedPage, enterCodePage, errorPage } from "./pages.ts";
import { type EmulatorTls, ensureTls } from "./tls.ts";
import { accessTokenTarget, base64urlJson, type PublicJwk, parseScopes, TokenSigner } from "./tokens.ts";

export interface EmulatorSettings {
  /** Seconds between polls announced by /devicecode; `null` leaves `interval` out (clients must assume 5). */
  interval: number | null;
  /** Device code lifetime in seconds. */
  expiresIn: number;
  /** Access token lifetime in seconds (`expires_in`, `exp - iat`). */
  accessTokenLifetime: number;
  /** A refresh token unused for this many seconds is refused with AADSTS700082. */
  refreshTokenLifetime: number;
  /** Added to `iat`/`nbf`/`exp` of issued tokens, to act out a server whose clock is off. */
  clockOffsetSeconds: number;
  /**
   * User code pattern: `A` an unambiguous consonant, `9` a digit 2-9, `*` either; anything else
   * is copied. `AAAA-AAAA` gives `BKDF-QXRT`, `********` gives Entra's other style, `YZ4MLD7K`.
   */
  userCodeFormat: string;
  /** Client ids that exist; `null` accepts any. Others get AADSTS700016. */
  registeredClients: string[] | null;
  /** Answer `slow_down` when a code is polled sooner than its interval after the previous poll. */
  enforcePollInterval: boolean;
  /**
   * Fields left out of the OpenID configuration, to act out providers that publish less than
   * Entra does (`device_authorization_endpoint`: one that predates RFC 8628's discovery field).
   */
  discoveryOmit: string[];
}

export const DEFAULT_SETTINGS: Readonly<EmulatorSettings> = Object.freeze({
  interval: 5,
  expiresIn: 900,
  accessTokenLifetime: 3600,
  refreshTokenLifetime: 90 * 24 * 60 * 60,
  clockOffsetSeconds: 0,
  userCodeFormat: "AAAA-AAAA",
  registeredClients: null,
  enforcePollInterval: true,
  discoveryOmit: [],
});

export type ApprovalOutcome = "ok" | "policy_blocked" | "consent_required" | "not_public_client";
export const APPROVAL_OUTCOMES: readonly ApprovalOutcome[] = [
  "ok",
  "policy_blocked",
  "consent_required",
  "not_public_client",
];

/** Which requests a fault waits for. `any` is the device code or the token endpoint, not discovery. */
export type FaultKind = "discovery" | "devicecode" | "token" | "any";
export const REDIRECT_STATUSES = [301, 302, 303, 307, 308] as const;
export type Fault =
  | { type: "latency"; ms: number }
  | { type: "status"; status: 500 | 502 | 503 | 504 }
  | { type: "429"; retryAfterSeconds: number }
  /** Destroys the socket after the request arrived, without any response. */
  | { type: "drop" }
  | { type: "slow_down" }
  /** Answers with a redirect to `location` instead of handling the request. */
  | { type: "redirect"; status: (typeof REDIRECT_STATUSES)[number]; location: string }
  /**
   * Answers `status` with `body` instead of handling the request: JSON, or a string sent as it is
   * (`contentType` text/html unless given). A server, gateway or captive portal saying what it likes.
   */
  | { type: "respond"; status: number; body: Json; contentType?: string }
  /**
   * Answers 200 with a body of `bytes` bytes that starts like a token response and never ends it,
   * streamed as the client reads (chunked; with Content-Length when `declareLength`).
   */
  | { type: "huge"; bytes: number; declareLength?: boolean }
  /**
   * Handles the request as usual (a poll may redeem its code, a refresh rotate its token), then
   * drops the connection instead of sending the answer: an answer lost on the network.
   */
  | { type: "lose_answer" };

export interface RequestLogEntry {
  /** `clock.now()` when the request arrived. */
  at: number;
  method: string;
  path: string;
  grantType?: string;
  /** 0 when the connection was dropped without a response. */
  status: number;
  error?: string;
  fault?: Fault["type"];
  /** Body bytes written for a `huge` fault (what the client let through before it hung up). */
  bytesSent?: number;
}

export interface PendingCode {
  userCode: string;
  clientId: string;
  scopes: string[];
  tenant: string;
  issuedAt: number;
  expiresAt: number;
}

export interface EmulatorUser {
  username: string;
  name: string;
  oid: string;
}

export interface EmulatorOptions {
  clock?: Clock;
  /** Where the CA and server certificate live (created when missing). */
  tlsDir: string;
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  logger?: (line: string) => void;
  defaults?: Partial<EmulatorSettings>;
  /** `tid` for every tenant path segment that is not itself a GUID. */
  tenantId?: string;
  /** Approve each new code after this many seconds of real time (demo mode). */
  autoApproveAfter?: number | null;
}

export interface StartResult {
  authorityHost: string;
  caPath: string;
  caPem: string;
  port: number;
}

export class EmulatorError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "EmulatorError";
  }
}

export const DEFAULT_TENANT_ID = "5e2a8f4c-3b1d-4e6a-8f7c-9d0b2a4c6e81";
export const DEFAULT_USER: Readonly<EmulatorUser> = Object.freeze({
  username: "pi@contoso.example",
  name: "Raspberry Pi Operator",
  oid: "4a1c9e2b-7d3f-4b8a-9c6e-2f5d8b1a0e73",
});
/** A client id for demos; any id works unless `registeredClients` is set. */
export const DEMO_CLIENT_ID = "3f9c1a7e-2b4d-4c8e-a1f6-7d2e9b0c5a14";

/**
 * `entratool create-profile`'s arguments for the profile "default" of the demo app in the
 * emulator's tenant, for the demo and the benchmarks. Without `authorityHost` the profile takes
 * ENTRATOOL_AUTHORITY_HOST from the environment.
 */
export function demoProfileArgs(
  options: { authorityHost?: string; scopes?: readonly string[] } = {},
): string[] {
  return [
    "create-profile",
    "--name",
    "default",
    "--tenant-id",
    DEFAULT_TENANT_ID,
    "--client-id",
    DEMO_CLIENT_ID,
    ...(options.scopes ?? []).flatMap((scope) => ["--scope", scope]),
    ...(options.authorityHost === undefined ? [] : ["--authority-host", options.authorityHost]),
  ];
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Path segments that name no tenant: Entra keeps them in endpoint URLs and puts `{tenantid}` in the issuer. */
const MULTI_TENANT = new Set(["common", "organizations", "consumers"]);
/** RFC 8628 §6.1: consonants only, so codes spell no words; no vowels means no O/0 or I/1 confusion. */
const CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ";
const CODE_DIGITS = "23456789";
const DEVICE_CODE_GRANTS = new Set(["device_code", "urn:ietf:params:oauth:grant-type:device_code"]);
const DEFAULT_POLL_INTERVAL = 5;
const SLOW_DOWN_STEP = 5;
/**
 * How much sooner than the interval a poll may arrive and still count as on time. The server sees
 * arrival times, which network and event-loop delays shift by a few ms either way: a client that
 * sends exactly `interval` apart must not be told to slow down (it would then wait 5 s more).
 * Half the interval, at most 500 ms: a client that ignores the interval is still caught.
 */
const POLL_JITTER_MS = 500;
const ID_TOKEN_LIFETIME = 3600;
const MAX_BODY = 1024 * 1024;
const MAX_LOG_ENTRIES = 10_000;

type CodeState = "pending" | "approved" | "declined" | "redeemed";

interface DeviceCodeRecord {
  readonly deviceCode: string;
  readonly userCode: string;
  readonly clientId: string;
  readonly scopes: string[];
  readonly tenant: string;
  readonly tid: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** The interval the server holds the client to, raised by each slow_down. */
  pollInterval: number;
  lastPollAt: number | null;
  state: CodeState;
  outcome: ApprovalOutcome;
  username: string | null;
}

type RefreshState = "active" | "rotated" | "revoked" | "expired";

interface RefreshTokenRecord {
  readonly clientId: string;
  readonly username: string;
  readonly tid: string;
  readonly scopes: string[];
  readonly issuedAt: number;
  state: RefreshState;
  /** AADSTS code to answer with once revoked. */
  revokedCode: number;
}

interface RequestWatcher {
  readonly match: (entry: RequestLogEntry) => boolean;
  readonly when: "received" | "answered";
  readonly resolve: (entry: RequestLogEntry) => void;
  readonly reject: (error: Error) => void;
}

interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly at: number;
  readonly traceId: string;
  correlationId: string;
  readonly entry: RequestLogEntry | null;
  readonly body: string;
  /** Set by a `lose_answer` fault: the answer is worked out, then the connection is dropped instead. */
  loseAnswer: boolean;
}

/** What every responder returns, so that handlers can `return this.#json(...)` on each branch. */
type Replied = "replied";
const REPLIED: Replied = "replied";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A loopback stand-in for Entra ID's v2.0 endpoints: discovery, JWKS, device code, token
 * (device_code and refresh_token grants), a /devicelogin page, and a control API under
 * /_emulator/ mirrored by the public methods. All protocol time (code expiry, poll spacing, token
 * claims, refresh token expiry) comes from the injected clock; only fault latency and
 * auto-approval use real timers, because they stand for things happening outside the protocol.
 */
export class EntraEmulator {
  readonly tenantId: string;
  readonly #clock: Clock;
  readonly #options: EmulatorOptions;
  readonly #log: (line: string) => void;
  #settings: EmulatorSettings;
  #autoApproveSeconds: number | null;

  #signer: TokenSigner | null = null;
  #tls: EmulatorTls | null = null;
  #server: Server | null = null;
  #port = 0;
  #stopping = false;
  readonly #sockets = new Set<Socket>();
  /** Wakes every in-flight latency fault, so that stop() never waits for one. */
  readonly #wakers = new Set<() => void>();
  readonly #autoApproveTimers = new Set<ReturnType<typeof setTimeout>>();

  readonly #codes = new Map<string, DeviceCodeRecord>();
  readonly #refreshTokens = new Map<string, RefreshTokenRecord>();
  readonly #users = new Map<string, EmulatorUser>();
  readonly #faults: Record<FaultKind, Fault[]> = { discovery: [], devicecode: [], token: [], any: [] };
  readonly #requests: RequestLogEntry[] = [];
  /** Every token and device_code handed out, so tests can prove none of them leaks to disk or logs. */
  readonly #secrets: string[] = [];
  /** Pending waitForRequest() calls. */
  readonly #requestWatchers = new Set<RequestWatcher>();

  constructor(options: EmulatorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? (() => {});
    this.tenantId = (options.tenantId ?? DEFAULT_TENANT_ID).toLowerCase();
    this.#settings = validateSettings({ ...DEFAULT_SETTINGS, ...options.defaults });
    this.#autoApproveSeconds = options.autoApproveAfter ?? null;
    this.#resetUsers();
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async start(): Promise<StartResult> {
    if (this.#server) throw new EmulatorError("emulator already started", 409);
    // The TLS peer judges certificates by its real clock, whatever the emulator's clock says.
    const tls = await ensureTls(this.#options.tlsDir, { clock: systemClock });
    this.#tls = tls;
    this.#signer ??= await TokenSigner.create();
    const server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
      void this.#handle(req, res);
    });
    server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    const host = this.#options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port ?? 0, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("emulator has no TCP address");
    this.#port = address.port;
    this.#server = server;
    this.#log(`emulator listening on ${this.authorityHost}`);
    return { authorityHost: this.authorityHost, caPath: tls.caPath, caPem: tls.caPem, port: this.#port };
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    this.#stopping = true;
    this.#clearAutoApproveTimers();
    for (const wake of [...this.#wakers]) wake();
    for (const watcher of [...this.#requestWatchers]) {
      watcher.reject(new EmulatorError("emulator stopped", 503));
    }
    this.#requestWatchers.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await closed;
    this.#stopping = false;
    this.#log("emulator stopped");
  }

  get port(): number {
    return this.#port;
  }

  get authorityHost(): string {
    const host = this.#options.host ?? "127.0.0.1";
    return `https://${host.includes(":") ? `[${host}]` : host}:${this.#port}`;
  }

  get verificationUri(): string {
    return `${this.authorityHost}/devicelogin`;
  }

  // ---- control operations -------------------------------------------------------------------

  /** Approves `userCode`, or the most recently issued pending code. */
  approve(input: { userCode?: string; username?: string; name?: string; outcome?: ApprovalOutcome } = {}): {
    userCode: string;
    username: string;
    outcome: ApprovalOutcome;
  } {
    const outcome = input.outcome ?? "ok";
    if (!APPROVAL_OUTCOMES.includes(outcome)) throw new EmulatorError(`unknown outcome '${outcome}'`, 400);
    const record = this.#pendingRecord(input.userCode);
    const user = this.#user(input.username ?? DEFAULT_USER.username, input.name);
    record.state = "approved";
    record.outcome = outcome;
    record.username = user.username;
    this.#log(`approved ${record.userCode} as ${user.username} (${outcome})`);
    return { userCode: record.userCode, username: user.username, outcome };
  }

  decline(input: { userCode?: string } = {}): { userCode: string } {
    const record = this.#pendingRecord(input.userCode);
    record.state = "declined";
    this.#log(`declined ${record.userCode}`);
    return { userCode: record.userCode };
  }

  /** Codes waiting for a person: issued, not yet approved or declined, not expired. Newest last. */
  pendingCodes(): PendingCode[] {
    const now = this.#clock.now();
    return [...this.#codes.values()]
      .filter((record) => record.state === "pending" && now < record.expiresAt)
      .map((record) => ({
        userCode: record.userCode,
        clientId: record.clientId,
        scopes: [...record.scopes],
        tenant: record.tenant,
        issuedAt: record.issuedAt,
        expiresAt: record.expiresAt,
      }));
  }

  /** Revokes the live refresh tokens of `username` (all users when omitted). Returns how many. */
  revokeRefreshTokens(input: { username?: string; code?: number } = {}): { revoked: number } {
    const code = input.code ?? 50173;
    if (!Number.isInteger(code) || code <= 0) throw new EmulatorError("code must be a positive integer", 400);
    let revoked = 0;
    for (const record of this.#liveRefreshTokens(input.username)) {
      record.state = "revoked";
      record.revokedCode = code;
      revoked += 1;
    }
    return { revoked };
  }

  /** Makes the live refresh tokens of `username` (all users when omitted) answer AADSTS700082. */
  expireRefreshTokens(input: { username?: string } = {}): { expired: number } {
    let expired = 0;
    for (const record of this.#liveRefreshTokens(input.username)) {
      record.state = "expired";
      expired += 1;
    }
    return { expired };
  }

  settings(): EmulatorSettings {
    return cloneSettings(this.#settings);
  }

  setSettings(partial: Partial<EmulatorSettings>): EmulatorSettings {
    const unknown = Object.keys(partial).filter((key) => !Object.hasOwn(DEFAULT_SETTINGS, key));
    if (unknown.length > 0) throw new EmulatorError(`unknown settings: ${unknown.join(", ")}`, 400);
    // An explicit `undefined` means "leave as is", not "unset".
    const given = Object.fromEntries(Object.entries(partial).filter(([, value]) => value !== undefined));
    this.#settings = validateSettings({ ...this.#settings, ...given });
    return this.settings();
  }

  /** Queues faults; each is consumed, in order, by one request of that kind. `any` = devicecode or token. */
  injectFaults(kind: FaultKind, faults: readonly Fault[]): { queued: Record<FaultKind, number> } {
    if (!Object.hasOwn(this.#faults, kind)) throw new EmulatorError(`unknown fault kind '${kind}'`, 400);
    for (const fault of faults) validateFault(fault);
    this.#faults[kind].push(...faults.map((fault) => ({ ...fault })));
    return {
      queued: {
        discovery: this.#faults.discovery.length,
        devicecode: this.#faults.devicecode.length,
        token: this.#faults.token.length,
        any: this.#faults.any.length,
      },
    };
  }

  /** Every request except the control API's, oldest first. */
  requests(): RequestLogEntry[] {
    return this.#requests.map((entry) => ({ ...entry }));
  }

  /**
   * Resolves with the first request from now on (control API excluded) that `match` accepts:
   * when it has arrived (`"received"`, status still 0), or when it has been answered
   * (`"answered"`). Lets a test act while a request is in flight, or right after a device code
   * was issued, without polling or sleeping. Rejects when the emulator stops first.
   */
  waitForRequest(
    match: (entry: RequestLogEntry) => boolean,
    when: "received" | "answered" = "received",
  ): Promise<RequestLogEntry> {
    return new Promise<RequestLogEntry>((resolve, reject) => {
      this.#requestWatchers.add({ match, when, resolve, reject });
    });
  }

  #notifyWatchers(entry: RequestLogEntry, when: "received" | "answered"): void {
    for (const watcher of [...this.#requestWatchers]) {
      if (watcher.when !== when || !watcher.match({ ...entry })) continue;
      this.#requestWatchers.delete(watcher);
      watcher.resolve({ ...entry });
    }
  }

  /** Approves every code issued from now on after `seconds` of real time; `null` turns it off. */
  autoApproveAfter(seconds: number | null): { seconds: number | null } {
    if (seconds !== null && !(Number.isFinite(seconds) && seconds >= 0)) {
      throw new EmulatorError("seconds must be a non-negative number or null", 400);
    }
    this.#autoApproveSeconds = seconds;
    if (seconds === null) this.#clearAutoApproveTimers();
    return { seconds };
  }

  /** Forgets codes, tokens, faults, the request log and users; settings go back to the constructor's. */
  /** Every access, refresh and id token and every device_code issued since start or reset. */
  issuedSecrets(): string[] {
    return [...this.#secrets];
  }

  reset(): void {
    this.#secrets.length = 0;
    this.#codes.clear();
    this.#refreshTokens.clear();
    this.#faults.discovery.length = 0;
    this.#faults.devicecode.length = 0;
    this.#faults.token.length = 0;
    this.#faults.any.length = 0;
    this.#requests.length = 0;
    this.#clearAutoApproveTimers();
    this.#settings = validateSettings({ ...DEFAULT_SETTINGS, ...this.#options.defaults });
    this.#autoApproveSeconds = this.#options.autoApproveAfter ?? null;
    this.#resetUsers();
  }

  // ---- request handling ---------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = this.#clock.now();
    const url = new URL(req.url ?? "/", this.authorityHost);
    const traceId = randomUUID();
    const header = req.headers["client-request-id"];
    let body: string;
    try {
      body = await readBody(req);
    } catch {
      req.socket.destroy();
      return;
    }
    const isControl = url.pathname.startsWith("/_emulator/");
    const entry: RequestLogEntry | null = isControl
      ? null
      : { at, method: req.method ?? "GET", path: url.pathname, status: 0 };
    if (entry) {
      this.#requests.push(entry);
      // A demo can run for days; the log is for assertions, not an archive.
      if (this.#requests.length > MAX_LOG_ENTRIES)
        this.#requests.splice(0, this.#requests.length - MAX_LOG_ENTRIES);
      this.#notifyWatchers(entry, "received");
    }
    const ctx: RequestContext = {
      req,
      res,
      url,
      at,
      traceId,
      correlationId: typeof header === "string" && header.length > 0 ? header : randomUUID(),
      entry,
      body,
      loseAnswer: false,
    };
    try {
      if (isControl) this.#control(ctx);
      else await this.#route(ctx);
    } catch (error) {
      if (error instanceof EmulatorError) {
        this.#json(ctx, error.status, { error: error.message });
      } else {
        this.#log(
          `internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
        this.#json(ctx, 500, { error: "emulator internal error" });
      }
    }
  }

  async #route(ctx: RequestContext): Promise<Replied | undefined> {
    const method = ctx.req.method ?? "GET";
    const segments = ctx.url.pathname.split("/").filter((segment) => segment.length > 0);
    const [tenant = "", ...rest] = segments;
    const tail = rest.join("/").toLowerCase();

    if (tenant.toLowerCase() === "devicelogin") return this.#deviceLogin(ctx, method, tail);
    if (method === "GET" && tenant === "v1.0" && tail === "me") return this.#me(ctx);
    if (tenant === "error" && rest.length === 0) {
      return this.#html(ctx, 200, errorPage(ctx.url.searchParams.get("code") ?? ""));
    }
    if (method === "GET" && tail === "v2.0/.well-known/openid-configuration") {
      const fault = this.#takeFault("discovery");
      if (fault) {
        const outcome = await this.#actOut(ctx, fault);
        // (slow_down means nothing to a GET.)
        if (outcome !== "go-on" && outcome !== "slow-down") return outcome;
      }
      return this.#json(ctx, 200, this.#openIdConfiguration(tenant));
    }
    if (method === "GET" && tail === "discovery/v2.0/keys") {
      return this.#json(ctx, 200, { keys: [this.#requireSigner().publicJwk(this.#issuer(tenant))] });
    }
    if (method === "GET" && tail === "discovery/instance")
      return this.#json(ctx, 200, this.#instanceDiscovery(ctx));
    if (tail === "oauth2/v2.0/devicecode" || tail === "oauth2/v2.0/token") {
      const kind = tail.endsWith("devicecode") ? "devicecode" : "token";
      if (method !== "POST") return this.#error(ctx, Errors.postOnly());
      const form = new URLSearchParams(ctx.body);
      const grantType = form.get("grant_type");
      if (ctx.entry && grantType !== null) ctx.entry.grantType = grantType;
      const bodyCorrelation = form.get("client-request-id");
      if (ctx.req.headers["client-request-id"] === undefined && bodyCorrelation)
        ctx.correlationId = bodyCorrelation;

      const fault = this.#takeFault(kind);
      let forcedSlowDown = false;
      if (fault) {
        const outcome = await this.#actOut(ctx, fault);
        if (outcome === "slow-down") forcedSlowDown = true;
        else if (outcome !== "go-on") return outcome;
      }
      if (kind === "devicecode") {
        if (forcedSlowDown)
          return this.#error(ctx, Errors.slowDown(this.#settings.interval ?? DEFAULT_POLL_INTERVAL));
        return this.#issueDeviceCode(ctx, tenant, form);
      }
      return this.#token(ctx, tenant, form, forcedSlowDown);
    }
    if (tail === "oauth2/v2.0/authorize" || tail === "oauth2/v2.0/logout") {
      return this.#html(ctx, 501, errorPage("501: the emulator supports only the device code flow"));
    }
    return this.#json(ctx, 404, {
      error: "not_found",
      error_description: `No route for ${method} ${ctx.url.pathname}`,
    });
  }

  // ---- a protected resource ------------------------------------------------------------------

  /**
   * A Microsoft Graph-like `GET /v1.0/me`: the resource a script calls with the token it got, so
   * that examples which call Graph run here without the internet. Checks signature and expiry.
   */
  #me(ctx: RequestContext): Replied {
    const auth = ctx.req.headers.authorization ?? "";
    const token = /^Bearer (.+)$/i.exec(auth)?.[1];
    const claims = token ? this.#requireSigner().verify(token) : undefined;
    const now = Math.floor(this.#clock.now() / 1000);
    if (!claims || typeof claims.exp !== "number" || claims.exp <= now) {
      return this.#json(ctx, 401, {
        error: { code: "InvalidAuthenticationToken", message: "Access token is empty, invalid or expired." },
      });
    }
    return this.#json(ctx, 200, {
      "@odata.context": `${this.authorityHost}/v1.0/$metadata#users/$entity`,
      id: claims.oid ?? null,
      displayName: claims.name ?? null,
      userPrincipalName: claims.preferred_username ?? null,
      mail: claims.preferred_username ?? null,
    });
  }

  // ---- discovery ----------------------------------------------------------------------------

  #tidFor(tenant: string): string {
    return GUID.test(tenant) ? tenant.toLowerCase() : this.tenantId;
  }

  /** The tenant segment Entra puts in endpoint URLs: aliases stay, domains become the tenant id. */
  #endpointTenant(tenant: string): string {
    return MULTI_TENANT.has(tenant.toLowerCase()) ? tenant.toLowerCase() : this.#tidFor(tenant);
  }

  #issuer(tenant: string): string {
    const tid = MULTI_TENANT.has(tenant.toLowerCase()) ? "{tenantid}" : this.#tidFor(tenant);
    return `${this.authorityHost}/${tid}/v2.0`;
  }

  #openIdConfiguration(tenant: string): Record<string, Json> {
    const document = this.#fullOpenIdConfiguration(tenant);
    for (const field of this.#settings.discoveryOmit) delete document[field];
    return document;
  }

  #fullOpenIdConfiguration(tenant: string): Record<string, Json> {
    const base = `${this.authorityHost}/${this.#endpointTenant(tenant)}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: this.#issuer(tenant),
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${this.authorityHost}/oidc/userinfo`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: [
        "sub",
        "iss",
        "cloud_instance_name",
        "cloud_instance_host_name",
        "cloud_graph_host_name",
        "msgraph_host",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "acr",
        "nonce",
        "preferred_username",
        "name",
        "tid",
        "ver",
        "at_hash",
        "c_hash",
        "email",
      ],
      kerberos_endpoint: `${base}/kerberos`,
      tenant_region_scope: MULTI_TENANT.has(tenant.toLowerCase()) ? null : "EU",
      cloud_instance_name: "microsoftonline.com",
      cloud_graph_host_name: "graph.windows.net",
      msgraph_host: "graph.microsoft.com",
      rbac_url: "https://pas.windows.net",
    };
  }

  #instanceDiscovery(ctx: RequestContext): Record<string, Json> {
    const host = this.authorityHost.replace(/^https:\/\//, "");
    let tenant = "common";
    const endpoint = ctx.url.searchParams.get("authorization_endpoint");
    if (endpoint) {
      try {
        tenant = new URL(endpoint).pathname.split("/").find((segment) => segment.length > 0) ?? tenant;
      } catch {
        // Entra ignores a malformed authorization_endpoint and answers for "common".
      }
    }
    return {
      tenant_discovery_endpoint: `${this.authorityHost}/${tenant}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    };
  }

  // ---- device code --------------------------------------------------------------------------

  #issueDeviceCode(ctx: RequestContext, tenant: string, form: URLSearchParams): Replied {
    const clientId = form.get("client_id");
    if (!clientId) return this.#error(ctx, Errors.missingParameter("client_id"));
    if (!this.#isRegistered(clientId)) return this.#error(ctx, Errors.unknownClient(clientId, tenant));
    const scopes = parseScopes(form.get("scope") ?? "");
    if (scopes.length === 0) return this.#error(ctx, Errors.missingParameter("scope"));

    const now = this.#clock.now();
    const settings = this.#settings;
    const record: DeviceCodeRecord = {
      deviceCode: `DAQABIQEAAAD${randomBytes(96).toString("base64url")}`,
      userCode: this.#newUserCode(),
      clientId,
      scopes,
      tenant,
      tid: this.#tidFor(tenant),
      issuedAt: now,
      expiresAt: now + settings.expiresIn * 1000,
      pollInterval: settings.interval ?? DEFAULT_POLL_INTERVAL,
      lastPollAt: null,
      state: "pending",
      outcome: "ok",
      username: null,
    };
    this.#codes.set(record.deviceCode, record);
    this.#secrets.push(record.deviceCode);
    this.#scheduleAutoApprove(record);
    const verificationUri = this.verificationUri;
    return this.#json(ctx, 200, {
      user_code: record.userCode,
      device_code: record.deviceCode,
      verification_uri: verificationUri,
      expires_in: settings.expiresIn,
      ...(settings.interval === null ? {} : { interval: settings.interval }),
      message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${record.userCode} to authenticate.`,
    });
  }

  #newUserCode(): string {
    const live = new Set([...this.#codes.values()].map((record) => normalizeCode(record.userCode)));
    for (;;) {
      const code = [...this.#settings.userCodeFormat]
        .map((char) => {
          if (char === "A") return pick(CODE_LETTERS);
          if (char === "9") return pick(CODE_DIGITS);
          if (char === "*") return pick(CODE_LETTERS + CODE_DIGITS);
          return char;
        })
        .join("");
      if (!live.has(normalizeCode(code))) return code;
    }
  }

  #scheduleAutoApprove(record: DeviceCodeRecord): void {
    const seconds = this.#autoApproveSeconds;
    if (seconds === null) return;
    const timer = setTimeout(() => {
      this.#autoApproveTimers.delete(timer);
      if (record.state === "pending" && this.#codes.get(record.deviceCode) === record) {
        this.approve({ userCode: record.userCode });
      }
    }, seconds * 1000);
    this.#autoApproveTimers.add(timer);
  }

  #clearAutoApproveTimers(): void {
    for (const timer of this.#autoApproveTimers) clearTimeout(timer);
    this.#autoApproveTimers.clear();
  }

  #pendingRecord(userCode: string | undefined): DeviceCodeRecord {
    const now = this.#clock.now();
    if (userCode === undefined) {
      const pending = [...this.#codes.values()].filter(
        (record) => record.state === "pending" && now < record.expiresAt,
      );
      const latest = pending.at(-1);
      if (!latest) throw new EmulatorError("no pending device code", 404);
      return latest;
    }
    const record = this.#recordByUserCode(userCode);
    if (!record) throw new EmulatorError(`unknown user code '${userCode}'`, 404);
    if (now >= record.expiresAt) throw new EmulatorError(`user code '${record.userCode}' has expired`, 410);
    if (record.state !== "pending") {
      throw new EmulatorError(`user code '${record.userCode}' is already ${record.state}`, 409);
    }
    return record;
  }

  #recordByUserCode(userCode: string): DeviceCodeRecord | undefined {
    const wanted = normalizeCode(userCode);
    if (wanted.length === 0) return undefined;
    // Newest first: an old, expired code with the same letters must not shadow a live one.
    return [...this.#codes.values()].reverse().find((record) => normalizeCode(record.userCode) === wanted);
  }

  // ---- token --------------------------------------------------------------------------------

  #token(ctx: RequestContext, tenant: string, form: URLSearchParams, forcedSlowDown: boolean): Replied {
    const grantType = form.get("grant_type");
    if (!grantType) return this.#error(ctx, Errors.missingParameter("grant_type"));
    const isDeviceCode = DEVICE_CODE_GRANTS.has(grantType);
    if (!isDeviceCode && grantType !== "refresh_token") {
      return this.#error(ctx, Errors.unsupportedGrantType(grantType));
    }
    const clientId = form.get("client_id");
    if (!clientId) return this.#error(ctx, Errors.missingParameter("client_id"));
    if (!this.#isRegistered(clientId)) return this.#error(ctx, Errors.unknownClient(clientId, tenant));
    if (isDeviceCode) return this.#pollDeviceCode(ctx, clientId, form, forcedSlowDown);
    if (forcedSlowDown) return this.#error(ctx, Errors.slowDown(DEFAULT_POLL_INTERVAL));
    return this.#refresh(ctx, clientId, form);
  }

  #pollDeviceCode(
    ctx: RequestContext,
    clientId: string,
    form: URLSearchParams,
    forcedSlowDown: boolean,
  ): Replied {
    const deviceCode = form.get("device_code");
    if (!deviceCode) return this.#error(ctx, Errors.missingParameter("device_code"));
    const record = this.#codes.get(deviceCode);
    if (!record) {
      if (forcedSlowDown) return this.#error(ctx, Errors.slowDown(DEFAULT_POLL_INTERVAL));
      return this.#error(ctx, Errors.badVerificationCode());
    }
    if (record.clientId !== clientId) return this.#error(ctx, Errors.grantClientMismatch());
    if (record.state === "redeemed") return this.#error(ctx, Errors.grantAlreadyRedeemed());
    const now = this.#clock.now();
    if (now >= record.expiresAt) return this.#error(ctx, Errors.codeExpired());

    const previous = record.lastPollAt;
    record.lastPollAt = now;
    const intervalMs = record.pollInterval * 1000;
    const tooSoon =
      this.#settings.enforcePollInterval &&
      previous !== null &&
      now - previous < intervalMs - Math.min(POLL_JITTER_MS, intervalMs / 2);
    if (forcedSlowDown || tooSoon) {
      // RFC 8628 §3.5: the client must add 5 s to its interval, so the server expects that too.
      record.pollInterval += SLOW_DOWN_STEP;
      return this.#error(ctx, Errors.slowDown(record.pollInterval));
    }
    if (record.state === "declined") return this.#error(ctx, Errors.declined());
    if (record.state === "pending") return this.#error(ctx, Errors.authorizationPending());

    switch (record.outcome) {
      case "policy_blocked":
        return this.#error(ctx, Errors.policyBlocked());
      case "consent_required":
        return this.#error(ctx, Errors.consentRequired(clientId));
      case "not_public_client":
        return this.#error(ctx, Errors.notPublicClient());
      case "ok":
        break;
    }
    record.state = "redeemed";
    const user = this.#user(record.username ?? DEFAULT_USER.username);
    return this.#json(
      ctx,
      200,
      this.#issueTokens({
        clientId,
        scopes: record.scopes,
        user,
        tid: record.tid,
        withRefreshToken: record.scopes.some((scope) => scope.toLowerCase() === "offline_access"),
      }),
      { "cache-control": "no-store", pragma: "no-cache" },
    );
  }

  #refresh(ctx: RequestContext, clientId: string, form: URLSearchParams): Replied {
    const token = form.get("refresh_token");
    if (!token) return this.#error(ctx, Errors.missingParameter("refresh_token"));
    const record = this.#refreshTokens.get(token);
    if (!record) return this.#error(ctx, Errors.malformedGrant());
    if (record.clientId !== clientId) return this.#error(ctx, Errors.grantClientMismatch());
    const now = this.#clock.now();
    const issued = new Date(record.issuedAt);
    if (record.state === "active" && now - record.issuedAt >= this.#settings.refreshTokenLifetime * 1000) {
      record.state = "expired";
    }
    switch (record.state) {
      case "rotated":
        return this.#error(ctx, Errors.refreshTokenInvalid(70008, issued, new Date(now)));
      case "revoked":
        return this.#error(ctx, Errors.refreshTokenInvalid(record.revokedCode, issued, new Date(now)));
      case "expired":
        return this.#error(ctx, Errors.refreshTokenInvalid(700082, issued, new Date(now)));
      case "active":
        break;
    }
    const requested = parseScopes(form.get("scope") ?? "");
    const scopes = requested.length > 0 ? requested : record.scopes;
    record.state = "rotated";
    return this.#json(
      ctx,
      200,
      this.#issueTokens({
        clientId,
        scopes,
        user: this.#user(record.username),
        tid: record.tid,
        // Redeeming a refresh token always yields its successor: the grant is already offline.
        withRefreshToken: true,
      }),
      { "cache-control": "no-store", pragma: "no-cache" },
    );
  }

  #issueTokens(input: {
    clientId: string;
    scopes: string[];
    user: EmulatorUser;
    tid: string;
    withRefreshToken: boolean;
  }): Record<string, Json> {
    const signer = this.#requireSigner();
    const settings = this.#settings;
    const now = this.#clock.now();
    const iat = Math.floor(now / 1000) + settings.clockOffsetSeconds;
    const { aud, scp } = accessTokenTarget(input.scopes);
    const { user, tid, clientId } = input;
    const sub = createHash("sha256").update(`${user.oid}:${clientId}`).digest("base64url").slice(0, 43);
    const accessToken = signer.sign({
      aud,
      iss: `https://sts.windows.net/${tid}/`,
      iat,
      nbf: iat,
      exp: iat + settings.accessTokenLifetime,
      acct: 0,
      acr: "1",
      amr: ["pwd", "mfa"],
      app_displayname: "entratool (emulated)",
      appid: clientId,
      appidacr: "0",
      azp: clientId,
      azpacr: "0",
      idtyp: "user",
      name: user.name,
      oid: user.oid,
      preferred_username: user.username,
      scp,
      sub,
      tid,
      unique_name: user.username,
      upn: user.username,
      uti: randomBytes(16).toString("base64url"),
      jti: randomUUID(),
      ver: "1.0",
    });
    const scopeSet = new Set(input.scopes.map((scope) => scope.toLowerCase()));
    const response: Record<string, Json> = {
      token_type: "Bearer",
      // Entra echoes the granted scopes but never offline_access.
      scope: input.scopes.filter((scope) => scope.toLowerCase() !== "offline_access").join(" "),
      expires_in: settings.accessTokenLifetime,
      ext_expires_in: settings.accessTokenLifetime,
      access_token: accessToken,
    };
    if (input.withRefreshToken) {
      const refreshToken = `1.AXEA${randomBytes(96).toString("base64url")}`;
      this.#refreshTokens.set(refreshToken, {
        clientId,
        username: user.username,
        tid,
        scopes: [...input.scopes],
        issuedAt: now,
        state: "active",
        revokedCode: 50173,
      });
      response.refresh_token = refreshToken;
    }
    if (scopeSet.has("openid")) {
      response.id_token = signer.sign({
        aud: clientId,
        iss: `${this.authorityHost}/${tid}/v2.0`,
        iat,
        nbf: iat,
        exp: iat + ID_TOKEN_LIFETIME,
        name: user.name,
        oid: user.oid,
        preferred_username: user.username,
        sub,
        tid,
        uti: randomBytes(16).toString("base64url"),
        ver: "2.0",
      });
    }
    response.client_info = base64urlJson({ uid: user.oid, utid: tid });
    for (const key of ["access_token", "refresh_token", "id_token"] as const) {
      const value = response[key];
      if (typeof value === "string") this.#secrets.push(value);
    }
    return response;
  }

  #liveRefreshTokens(username: string | undefined): RefreshTokenRecord[] {
    const wanted = username?.toLowerCase();
    return [...this.#refreshTokens.values()].filter(
      (record) =>
        record.state === "active" && (wanted === undefined || record.username.toLowerCase() === wanted),
    );
  }

  #isRegistered(clientId: string): boolean {
    const registered = this.#settings.registeredClients;
    return registered === null || registered.some((id) => id.toLowerCase() === clientId.toLowerCase());
  }

  /** The public key of the tokens this emulator signs (its JWKS entry), for receivers that verify them. */
  publicJwk(): PublicJwk {
    return this.#requireSigner().publicJwk();
  }

  /**
   * What a receiver of this emulator's tokens needs (a broker, an HTTPS sink receiver): the public
   * key as a JWK and as PEM, and a TLS identity for 127.0.0.1 that clients trusting the emulator's
   * CA (NODE_EXTRA_CA_CERTS) accept.
   */
  receiverCredentials(): {
    jwk: PublicJwk;
    publicKeyPem: string;
    tls: { caPem: string; certPem: string; keyPem: string };
  } {
    const jwk = this.publicJwk();
    const tls = this.#tls;
    if (!tls) throw new EmulatorError("emulator not started", 503);
    const publicKeyPem = createPublicKey({ key: { ...jwk }, format: "jwk" })
      .export({ type: "spki", format: "pem" })
      .toString();
    return { jwk, publicKeyPem, tls: { caPem: tls.caPem, certPem: tls.certPem, keyPem: tls.keyPem } };
  }

  #requireSigner(): TokenSigner {
    if (!this.#signer) throw new EmulatorError("emulator not started", 503);
    return this.#signer;
  }

  #resetUsers(): void {
    this.#users.clear();
    this.#users.set(DEFAULT_USER.username.toLowerCase(), { ...DEFAULT_USER });
  }

  /** Known users, or a new one whose oid is derived from the name, so it is the same in every run. */
  #user(username: string, name?: string): EmulatorUser {
    const key = username.toLowerCase();
    const existing = this.#users.get(key);
    if (existing) return existing;
    const hex = createHash("sha256").update(`entra-emulator-user:${key}`).digest("hex");
    const user: EmulatorUser = {
      username,
      name: name ?? username.split("@")[0] ?? username,
      oid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`,
    };
    this.#users.set(key, user);
    return user;
  }

  // ---- faults -------------------------------------------------------------------------------

  #takeFault(kind: "discovery" | "devicecode" | "token"): Fault | undefined {
    if (kind === "discovery") return this.#faults.discovery.shift();
    return this.#faults[kind].shift() ?? this.#faults.any.shift();
  }

  /**
   * Acts out a fault taken for this request. Returns what the handler does next: nothing more
   * (the fault answered or dropped it: `REPLIED` or undefined), handle it as usual (`go-on`), or
   * handle it as usual but answer a poll with slow_down (`slow-down`).
   */
  async #actOut(ctx: RequestContext, fault: Fault): Promise<Replied | undefined | "go-on" | "slow-down"> {
    if (ctx.entry) ctx.entry.fault = fault.type;
    switch (fault.type) {
      case "latency":
        await this.#delay(fault.ms);
        if (this.#stopping || !this.#server) {
          ctx.req.socket.destroy();
          return undefined;
        }
        return "go-on";
      case "status":
        return this.#error(ctx, Errors.transient(fault.status));
      case "429":
        return this.#error(ctx, Errors.transient(429), {
          "retry-after": String(fault.retryAfterSeconds),
        });
      case "drop":
        this.#finish(ctx, 0);
        ctx.req.socket.destroy();
        return undefined;
      case "slow_down":
        return "slow-down";
      case "redirect":
        this.#finish(ctx, fault.status);
        this.#write(ctx, fault.status, "text/plain; charset=utf-8", "", { location: fault.location });
        return REPLIED;
      case "respond":
        if (typeof fault.body === "string") {
          this.#finish(ctx, fault.status);
          this.#write(ctx, fault.status, fault.contentType ?? "text/html; charset=utf-8", fault.body, {});
          return REPLIED;
        }
        return this.#json(ctx, fault.status, fault.body);
      case "huge":
        await this.#stream(ctx, fault.bytes, fault.declareLength ?? false);
        return REPLIED;
      case "lose_answer":
        ctx.loseAnswer = true;
        return "go-on";
    }
  }

  /**
   * Streams a 200 answer of `bytes` bytes (`{"access_token":"aaaa…`, never closed), writing only
   * as fast as the client reads, and stops as soon as it hangs up: the emulator itself stays small
   * however large the answer it acts out.
   */
  async #stream(ctx: RequestContext, bytes: number, declareLength: boolean): Promise<void> {
    const res = ctx.res;
    this.#finish(ctx, 200);
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      ...(declareLength ? { "content-length": String(bytes) } : {}),
    });
    const head = Buffer.from('{"access_token":"');
    const filler = Buffer.alloc(64 * 1024, "a");
    let sent = 0;
    const closed = new Promise<void>((resolve) => res.once("close", resolve));
    while (sent < bytes && !res.destroyed && !this.#stopping) {
      const part = sent === 0 ? head : filler;
      const chunk = part.subarray(0, Math.min(part.length, bytes - sent));
      const flushed = res.write(chunk);
      sent += chunk.length;
      if (ctx.entry) ctx.entry.bytesSent = sent;
      if (!flushed) {
        await Promise.race([new Promise<void>((resolve) => res.once("drain", resolve)), closed]);
      }
    }
    if (!res.destroyed) res.end();
  }

  #delay(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }

  // ---- /devicelogin -------------------------------------------------------------------------

  #deviceLogin(ctx: RequestContext, method: string, tail: string): Replied {
    if (method === "GET" && tail === "") return this.#html(ctx, 200, enterCodePage());
    if (method !== "POST") return this.#html(ctx, 405, enterCodePage("Use the form on this page."));
    const form = new URLSearchParams(ctx.body);
    const typed = form.get("code") ?? "";
    const record = this.#recordByUserCode(typed);
    const usable = record !== undefined && record.state === "pending" && this.#clock.now() < record.expiresAt;
    if (!usable) {
      const reason =
        record && record.state !== "pending"
          ? "That code has already been used. Start the sign-in again on your device to get a new code."
          : "That code didn't work. Check the code and try again.";
      return this.#html(ctx, 400, enterCodePage(reason, typed));
    }
    const username = (form.get("username") ?? "").trim() || DEFAULT_USER.username;
    switch (tail) {
      case "":
        return this.#html(
          ctx,
          200,
          consentPage({
            userCode: record.userCode,
            clientId: record.clientId,
            scopes: record.scopes,
            username,
          }),
        );
      case "approve":
        this.approve({ userCode: record.userCode, username });
        return this.#html(ctx, 200, approvedPage(username));
      case "decline":
        this.decline({ userCode: record.userCode });
        return this.#html(ctx, 200, declinedPage());
      default:
        return this.#html(ctx, 404, enterCodePage());
    }
  }

  // ---- control API --------------------------------------------------------------------------

  #control(ctx: RequestContext): Replied {
    const operation = ctx.url.pathname.slice("/_emulator/".length);
    const method = ctx.req.method ?? "GET";
    const input = parseJsonObject(ctx.body);
    const readOnly = new Set(["pending-codes", "requests", "settings"]);
    if (method !== "POST" && !(method === "GET" && readOnly.has(operation))) {
      throw new EmulatorError(`use POST for /_emulator/${operation}`, 405);
    }
    switch (operation) {
      case "approve":
        return this.#json(
          ctx,
          200,
          this.approve({
            userCode: optionalString(input, "userCode"),
            username: optionalString(input, "username"),
            name: optionalString(input, "name"),
            outcome: optionalString(input, "outcome") as ApprovalOutcome | undefined,
          }),
        );
      case "decline":
        return this.#json(ctx, 200, this.decline({ userCode: optionalString(input, "userCode") }));
      case "pending-codes":
        return this.#json(ctx, 200, this.pendingCodes());
      case "revoke-refresh-tokens":
        return this.#json(
          ctx,
          200,
          this.revokeRefreshTokens({
            username: optionalString(input, "username"),
            code: optionalNumber(input, "code"),
          }),
        );
      case "expire-refresh-tokens":
        return this.#json(
          ctx,
          200,
          this.expireRefreshTokens({ username: optionalString(input, "username") }),
        );
      case "settings":
        if (method === "GET") return this.#json(ctx, 200, this.settings());
        return this.#json(ctx, 200, this.setSettings(input as Partial<EmulatorSettings>));
      case "inject-faults": {
        const kind = optionalString(input, "kind") ?? "any";
        const faults = input.faults;
        if (!Array.isArray(faults)) throw new EmulatorError("faults must be an array", 400);
        return this.#json(ctx, 200, this.injectFaults(kind as FaultKind, faults as unknown as Fault[]));
      }
      case "requests":
        return this.#json(ctx, 200, this.requests());
      case "auto-approve": {
        const seconds = input.seconds;
        if (seconds !== null && typeof seconds !== "number") {
          throw new EmulatorError("seconds must be a number or null", 400);
        }
        return this.#json(ctx, 200, this.autoApproveAfter(seconds));
      }
      case "reset":
        this.reset();
        return this.#json(ctx, 200, { reset: true });
      default:
        throw new EmulatorError(`unknown control operation '${operation}'`, 404);
    }
  }

  // ---- responses ----------------------------------------------------------------------------

  #error(ctx: RequestContext, spec: EntraErrorSpec, headers: Record<string, string> = {}): Replied {
    const body = errorBody(spec, {
      now: this.#clock.now(),
      traceId: ctx.traceId,
      correlationId: ctx.correlationId,
      errorUriBase: this.authorityHost,
    });
    return this.#json(ctx, spec.status, body, headers);
  }

  #json(ctx: RequestContext, status: number, body: unknown, headers: Record<string, string> = {}): Replied {
    const error =
      typeof body === "object" && body !== null && "error" in body && typeof body.error === "string"
        ? body.error
        : undefined;
    this.#finish(ctx, status, error);
    this.#write(ctx, status, "application/json; charset=utf-8", JSON.stringify(body), headers);
    return REPLIED;
  }

  #html(ctx: RequestContext, status: number, html: string): Replied {
    this.#finish(ctx, status);
    this.#write(ctx, status, "text/html; charset=utf-8", html, { "cache-control": "no-store" });
    return REPLIED;
  }

  #write(
    ctx: RequestContext,
    status: number,
    type: string,
    text: string,
    headers: Record<string, string>,
  ): void {
    if (ctx.res.destroyed || ctx.res.headersSent) return;
    if (ctx.loseAnswer) {
      // Worked out (a code redeemed, a token rotated) and never delivered.
      ctx.req.socket.destroy();
      return;
    }
    ctx.res.writeHead(status, {
      "content-type": type,
      "x-ms-request-id": ctx.traceId,
      "client-request-id": ctx.correlationId,
      ...headers,
    });
    ctx.res.end(text);
  }

  #finish(ctx: RequestContext, status: number, error?: string): void {
    const entry = ctx.entry;
    if (!entry) return;
    entry.status = status;
    if (error !== undefined) entry.error = error;
    this.#notifyWatchers(entry, "answered");
    const parts = [
      entry.method,
      entry.path,
      entry.grantType,
      String(status),
      error,
      entry.fault && `[${entry.fault}]`,
    ];
    this.#log(parts.filter((part) => part !== undefined && part !== "").join(" "));
  }
}

// ---- helpers ------------------------------------------------------------------------------------

/** User codes match case-insensitively, ignoring dashes and spaces, as people type them. */
export function normalizeCode(code: string): string {
  return code.replace(/[\s-]/g, "").toUpperCase();
}

function pick(alphabet: string): string {
  return alphabet.charAt(randomInt(alphabet.length));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error("request body too large"));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
    // Settles the promise when stop() destroys the socket mid-body (a no-op after "end").
    req.on("close", () => reject(new Error("connection closed before the body ended")));
  });
}

function parseJsonObject(text: string): Record<string, unknown> {
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EmulatorError("body must be JSON", 400);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new EmulatorError("body must be a JSON object", 400);
  }
  return value as Record<string, unknown>;
}

function optionalString(input: Record<string, unknown>, key: string): string | undefined {
  const value = input[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new EmulatorError(`${key} must be a string`, 400);
  return value;
}

function optionalNumber(input: Record<string, unknown>, key: string): number | undefined {
  const value = input[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number") throw new EmulatorError(`${key} must be a number`, 400);
  return value;
}

function cloneSettings(settings: EmulatorSettings): EmulatorSettings {
  return {
    ...settings,
    registeredClients: settings.registeredClients === null ? null : [...settings.registeredClients],
    discoveryOmit: [...settings.discoveryOmit],
  };
}

function validateSettings(candidate: Record<keyof EmulatorSettings, unknown>): EmulatorSettings {
  const nonNegative = (key: keyof EmulatorSettings): number => {
    const value = candidate[key];
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new EmulatorError(`${key} must be a non-negative number`, 400);
    }
    return value;
  };
  const {
    interval,
    clockOffsetSeconds,
    userCodeFormat,
    registeredClients,
    enforcePollInterval,
    discoveryOmit,
  } = candidate;
  if (interval !== null) nonNegative("interval");
  if (typeof clockOffsetSeconds !== "number" || !Number.isFinite(clockOffsetSeconds)) {
    throw new EmulatorError("clockOffsetSeconds must be a number", 400);
  }
  if (typeof userCodeFormat !== "string" || [...userCodeFormat].filter((c) => "A9*".includes(c)).length < 6) {
    throw new EmulatorError("userCodeFormat needs at least 6 of A, 9 or *", 400);
  }
  if (
    registeredClients !== null &&
    !(Array.isArray(registeredClients) && registeredClients.every((id) => typeof id === "string"))
  ) {
    throw new EmulatorError("registeredClients must be an array of strings or null", 400);
  }
  if (typeof enforcePollInterval !== "boolean")
    throw new EmulatorError("enforcePollInterval must be a boolean", 400);
  if (!(Array.isArray(discoveryOmit) && discoveryOmit.every((field) => typeof field === "string"))) {
    throw new EmulatorError("discoveryOmit must be an array of field names", 400);
  }
  return cloneSettings({
    interval: interval === null ? null : nonNegative("interval"),
    expiresIn: nonNegative("expiresIn"),
    accessTokenLifetime: nonNegative("accessTokenLifetime"),
    refreshTokenLifetime: nonNegative("refreshTokenLifetime"),
    clockOffsetSeconds,
    userCodeFormat,
    registeredClients: registeredClients as string[] | null,
    enforcePollInterval,
    discoveryOmit: discoveryOmit as string[],
  });
}

function validateFault(fault: unknown): void {
  const valid = (): boolean => {
    if (typeof fault !== "object" || fault === null) return false;
    const record = fault as Record<string, unknown>;
    switch (record.type) {
      case "latency":
        return typeof record.ms === "number" && record.ms >= 0;
      case "status":
        return [500, 502, 503, 504].includes(record.status as number);
      case "429":
        return typeof record.retryAfterSeconds === "number" && record.retryAfterSeconds >= 0;
      case "drop":
      case "slow_down":
      case "lose_answer":
        return true;
      case "redirect":
        return (
          (REDIRECT_STATUSES as readonly unknown[]).includes(record.status) &&
          typeof record.location === "string"
        );
      case "respond":
        return (
          Number.isInteger(record.status) &&
          (record.status as number) >= 200 &&
          (record.status as number) <= 599 &&
          "body" in record &&
          (record.contentType === undefined || typeof record.contentType === "string")
        );
      case "huge":
        return (
          Number.isSafeInteger(record.bytes) &&
          (record.bytes as number) > 0 &&
          (record.declareLength === undefined || typeof record.declareLength === "boolean")
        );
      default:
        return false;
    }
  };
  if (!valid()) throw new EmulatorError(`invalid fault ${JSON.stringify(fault)}`, 400);
}
