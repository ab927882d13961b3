import type { Socket } from "bun";
import * as v from "valibot";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, errnoCode, isEntraToolError } from "../core/errors.ts";
import { isRecord } from "../core/json.ts";
import { dirname } from "../core/path.ts";
import type { Paths } from "../core/paths.ts";
import {
  assertOwnSocketDir,
  assertSocketPath,
  type ControlRequest,
  type ErrorBody,
  encodeLine,
  isErrorCode,
  LineSplitter,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  PROTOCOL_VERSION,
  type SendResult,
  type TokenRequestBody,
  type TokenResponse,
  type WireMessage,
} from "../service/control-protocol.ts";

/**
 * The client side of the agent's control socket (see agent/service/control-protocol.ts), for
 * `entratool send`, `status` and `get-token`. Every failure is an EntraToolError:
 * - no socket file, or nobody listening on it: E_AGENT_NOT_RUNNING;
 * - the kernel refuses the connection (EACCES): E_SOCKET, saying to join the group entratool;
 * - the agent answers with an error: that error's code (when this version knows it) and message;
 * - no answer in time, a closed connection, an answer that is not the protocol: E_SOCKET.
 */

/** A socket to try: a path, or a path whose directory must be this user's own (Paths.socketDirOwned). */
export type AgentAddress = string | { readonly path: string; readonly ownDir?: boolean };

/**
 * Where a client looks for the agent, in order: this user's socket (Paths.socketFile), then the
 * system service's (Paths.systemSocketFile) when there is one.
 */
export function agentAddresses(paths: Paths): AgentAddress[] {
  const addresses: AgentAddress[] = [{ path: paths.socketFile, ownDir: paths.socketDirOwned }];
  if (paths.systemSocketFile !== undefined && paths.systemSocketFile !== paths.socketFile) {
    addresses.push(paths.systemSocketFile);
  }
  return addresses;
}

export interface AgentClientOptions {
  /** Times the answers. */
  readonly clock: Clock;
  /** Aborting it ends the call with E_CANCELLED and closes the connection. */
  readonly signal?: AbortSignal;
  /** How long one request may wait for its answer, ms; default per operation (DEFAULT_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** This user's uid, for the ownDir check; default process.getuid(). */
  readonly uid?: number;
}

/** Waits for an answer, ms: status is quick; a send waits for a disk; a token may need a refresh. */
export const DEFAULT_TIMEOUT_MS: Readonly<Record<ControlRequest["op"], number>> = {
  status: 10_000,
  send: 30_000,
  "get-token": 60_000,
};

/** A request without the envelope (version and id are the connection's). */
export type RequestBody =
  | { readonly op: "send"; readonly messages: readonly WireMessage[] }
  | { readonly op: "status" }
  | ({ readonly op: "get-token" } & TokenRequestBody);

export interface AgentConnection {
  /** The socket it connected to. */
  readonly path: string;
  /** Sends one request (several may be in flight) and resolves with its `result`. */
  request(body: RequestBody, options?: { readonly timeoutMs?: number }): Promise<unknown>;
  /** Closes the connection; requests in flight reject with E_SOCKET. Idempotent. */
  close(): void;
}

/** Connection errors that mean nobody listens there. */
const NOT_RUNNING = new Set(["ENOENT", "ECONNREFUSED", "ENOTDIR", "ENOTSOCK"]);

/**
 * The EntraToolError for a failed connect(2) to `path` (Bun's error, with `code`). Exported for
 * tests: an EACCES cannot be provoked as root.
 */
export function connectError(error: unknown, path: string): EntraToolError {
  const code = errnoCode(error);
  if (code !== undefined && NOT_RUNNING.has(code)) {
    return new EntraToolError("E_AGENT_NOT_RUNNING", { cause: error, details: { path } });
  }
  if (code === "EACCES" || code === "EPERM") {
    return new EntraToolError("E_SOCKET", {
      message: `Permission denied on the agent's socket ${path}: add this user to the group entratool ('sudo usermod -aG entratool $USER'), then log in again.`,
      cause: error,
      details: { path },
    });
  }
  return new EntraToolError("E_SOCKET", {
    message: `Cannot connect to the agent's socket ${path}: ${error instanceof Error ? error.message : String(error)}${code ? ` (${code})` : ""}.`,
    cause: error,
    details: { path },
  });
}

/** The EntraToolError for an error answer: its code when this version knows it, its message. */
export function answerError(body: ErrorBody): EntraToolError {
  const message = typeof body.message === "string" && body.message !== "" ? body.message : undefined;
  if (isErrorCode(body.code)) return new EntraToolError(body.code, message === undefined ? {} : { message });
  return new EntraToolError("E_AGENT_REFUSED", {
    ...(message === undefined ? {} : { message }),
    details: { code: String(body.code) },
  });
}

function cancelled(): EntraToolError {
  return new EntraToolError("E_CANCELLED");
}

/**
 * Connects to the first address where an agent listens. Rejects with E_AGENT_NOT_RUNNING when
 * none does, and at once with E_SOCKET when one cannot be used (permission, a directory that is
 * not ours, too long a path).
 */
export async function connectAgent(
  address: AgentAddress | readonly AgentAddress[],
  options: AgentClientOptions,
): Promise<AgentConnection> {
  const addresses: readonly AgentAddress[] = Array.isArray(address) ? address : [address as AgentAddress];
  const uid = options.uid ?? process.getuid?.() ?? 0;
  let notRunning: EntraToolError | undefined;
  const tried: string[] = [];
  for (const entry of addresses) {
    const path = typeof entry === "string" ? entry : entry.path;
    if (options.signal?.aborted) throw cancelled();
    assertSocketPath(path);
    if (typeof entry !== "string" && entry.ownDir) await assertOwnSocketDir(dirname(path), uid);
    tried.push(path);
    const connection = new ClientConnection(path, options);
    try {
      await connection.open();
      return connection;
    } catch (error) {
      if (!isEntraToolError(error, "E_AGENT_NOT_RUNNING")) throw error;
      notRunning = error;
    }
  }
  if (tried.length > 1) {
    throw new EntraToolError("E_AGENT_NOT_RUNNING", { cause: notRunning, details: { paths: tried } });
  }
  throw notRunning ?? new EntraToolError("E_AGENT_NOT_RUNNING");
}

interface Waiter {
  readonly id: number;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: EntraToolError) => void;
}

const encoder = new TextEncoder();

class ClientConnection implements AgentConnection {
  readonly path: string;
  readonly #options: AgentClientOptions;
  readonly #splitter = new LineSplitter(MAX_RESPONSE_BYTES);
  readonly #waiting: Waiter[] = [];
  #socket: Socket<undefined> | undefined;
  #nextId = 1;
  #unsent: Uint8Array[] = [];
  /** Set once the connection is unusable: every later request rejects with it. */
  #failure: EntraToolError | undefined;
  readonly #onAbort = (): void => this.#fail(cancelled());

  constructor(path: string, options: AgentClientOptions) {
    this.path = path;
    this.#options = options;
  }

  async open(): Promise<void> {
    try {
      this.#socket = await Bun.connect({
        unix: this.path,
        socket: {
          data: (_socket, chunk) => this.#data(chunk),
          drain: () => this.#drain(),
          end: () => this.#fail(this.#closedEarly()),
          close: () => this.#fail(this.#closedEarly()),
          error: (_socket, error) =>
            this.#fail(
              new EntraToolError("E_SOCKET", {
                message: `The connection to the agent's socket ${this.path} failed: ${error.message}.`,
                cause: error,
              }),
            ),
        },
      });
    } catch (error) {
      throw connectError(error, this.path);
    }
    if (this.#options.signal?.aborted) this.#onAbort();
    else this.#options.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  #closedEarly(): EntraToolError {
    return new EntraToolError("E_SOCKET", {
      message: `The agent closed the connection on ${this.path} before answering: see its log (journalctl -u entratool-agent).`,
    });
  }

  request(body: RequestBody, options: { readonly timeoutMs?: number } = {}): Promise<unknown> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const line = encodeLine({ v: PROTOCOL_VERSION, id, ...body });
    if (Buffer.byteLength(line) - 1 > MAX_REQUEST_BYTES) {
      return Promise.reject(
        new EntraToolError("E_PAYLOAD", {
          message: `The request is larger than ${MAX_REQUEST_BYTES} bytes, the most the agent reads at once: send smaller messages.`,
        }),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS[body.op];
    return new Promise<unknown>((resolve, reject) => {
      const timer = new AbortController();
      this.#waiting.push({
        id,
        resolve: (result) => {
          timer.abort();
          resolve(result);
        },
        reject: (error) => {
          timer.abort();
          reject(error);
        },
      });
      this.#options.clock.sleep(timeoutMs, timer.signal).then(
        () =>
          this.#fail(
            new EntraToolError("E_SOCKET", {
              message: `The entratool agent did not answer within ${Math.round(timeoutMs / 1000)} s: see its log (journalctl -u entratool-agent).`,
              details: { path: this.path, op: body.op, timeoutMs },
            }),
          ),
        () => undefined,
      );
      this.#write(encoder.encode(line));
    });
  }

  close(): void {
    this.#fail(
      new EntraToolError("E_SOCKET", {
        message: "The connection to the agent was closed before its answer came.",
      }),
    );
  }

  #write(bytes: Uint8Array): void {
    const socket = this.#socket;
    if (socket === undefined || this.#failure) return;
    let rest = bytes;
    if (this.#unsent.length === 0) {
      const written = Math.max(0, socket.write(rest));
      if (written === rest.length) return;
      rest = rest.subarray(written);
    }
    this.#unsent.push(rest);
  }

  #drain(): void {
    const socket = this.#socket;
    while (socket !== undefined && this.#unsent.length > 0 && !this.#failure) {
      const bytes = this.#unsent[0] as Uint8Array;
      const written = Math.max(0, socket.write(bytes));
      if (written < bytes.length) {
        this.#unsent[0] = bytes.subarray(written);
        return;
      }
      this.#unsent.shift();
    }
  }

  #data(chunk: Uint8Array): void {
    if (this.#failure) return;
    const lines = this.#splitter.push(chunk);
    if (lines === "overflow") {
      this.#fail(
        new EntraToolError("E_SOCKET", {
          message: `The agent sent an answer longer than ${MAX_RESPONSE_BYTES} bytes: this entratool does not speak the agent's protocol.`,
        }),
      );
      return;
    }
    for (const line of lines) {
      if (line.trim() !== "") this.#answer(line);
      if (this.#failure) return;
    }
  }

  #answer(line: string): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    const waiter = this.#waiting[0];
    if (!isRecord(value) || typeof value.ok !== "boolean") {
      this.#fail(this.#protocolError("an answer that is not a JSON object with 'ok'"));
      return;
    }
    // An answer without an id is a refusal of the connection (a peer not allowed, too many
    // connections, a request too long): it ends every request in flight.
    if (value.id === null && value.ok === false) {
      this.#fail(answerError(errorBody(value.error)));
      return;
    }
    if (waiter === undefined || value.id !== waiter.id) {
      this.#fail(this.#protocolError(`an answer to request ${JSON.stringify(value.id)} out of turn`));
      return;
    }
    this.#waiting.shift();
    if (value.ok) waiter.resolve(value.result);
    else waiter.reject(answerError(errorBody(value.error)));
  }

  #protocolError(what: string): EntraToolError {
    return new EntraToolError("E_SOCKET", {
      message: `The agent on ${this.path} sent ${what}: run an entratool of the agent's version.`,
    });
  }

  /** Makes the connection unusable: every request in flight and every later one rejects with `error`. */
  #fail(error: EntraToolError): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
    this.#unsent = [];
    this.#socket?.end();
  }
}

function errorBody(value: unknown): ErrorBody {
  if (isRecord(value)) {
    return { code: String(value.code ?? "E_AGENT_REFUSED"), message: String(value.message ?? "") };
  }
  return { code: "E_AGENT_REFUSED", message: "" };
}

/** Runs `use` on a connection to the agent and closes it afterwards. */
async function withAgent<T>(
  address: AgentAddress | readonly AgentAddress[],
  options: AgentClientOptions,
  use: (connection: AgentConnection) => Promise<T>,
): Promise<T> {
  const connection = await connectAgent(address, options);
  try {
    return await use(connection);
  } finally {
    connection.close();
  }
}

const sendResultSchema = v.looseObject({
  accepted: v.pipe(v.number(), v.integer(), v.minValue(0)),
  ids: v.array(v.string()),
});

const tokenSchema = v.looseObject({
  accessToken: v.string(),
  expiresAt: v.number(),
  scopes: v.array(v.string()),
  account: v.looseObject({ username: v.string(), tenantId: v.string(), homeAccountId: v.string() }),
  tokenType: v.optional(v.string()),
  profile: v.optional(v.string()),
  fromCache: v.optional(v.boolean()),
});

function checked<T>(schema: v.GenericSchema<unknown, T>, value: unknown, what: string, path: string): T {
  const parsed = v.safeParse(schema, value);
  if (parsed.success) return parsed.output;
  throw new EntraToolError("E_SOCKET", {
    message: `The agent on ${path} answered ${what} in a form this entratool does not know: run an entratool of the agent's version.`,
  });
}

/** Most messages in one `send` request of agentSend (the agent takes up to 10 000). */
export const SEND_CHUNK_MESSAGES = 1000;
/** Most bytes of messages (as JSON) in one `send` request of agentSend. */
export const SEND_CHUNK_BYTES = 1024 * 1024;
/** Room for the envelope around the messages of one request. */
const ENVELOPE_BYTES = 256;

/**
 * Hands messages to the agent, in requests of at most SEND_CHUNK_MESSAGES messages or
 * SEND_CHUNK_BYTES (one larger message goes alone, up to the agent's line limit), one after the
 * other: resolves once the agent made all of them durable, with their ids in order. An input
 * that is an async iterable (NDJSON read from stdin) is consumed as the requests go, so memory
 * stays at one request. When a request fails after others were accepted, the error's details say
 * how many were (`accepted`), and so does its message.
 */
export async function agentSend(
  address: AgentAddress | readonly AgentAddress[],
  messages: Iterable<WireMessage> | AsyncIterable<WireMessage>,
  options: AgentClientOptions,
): Promise<SendResult> {
  return withAgent(address, options, async (connection) => {
    const ids: string[] = [];
    let chunk: WireMessage[] = [];
    let chunkBytes = 0;
    const flush = async (): Promise<void> => {
      if (chunk.length === 0) return;
      const batch = chunk;
      chunk = [];
      chunkBytes = 0;
      try {
        const result = checked(
          sendResultSchema,
          await connection.request({ op: "send", messages: batch }),
          "a send",
          connection.path,
        );
        ids.push(...result.ids);
      } catch (error) {
        if (!isEntraToolError(error) || ids.length === 0) throw error;
        throw new EntraToolError(error.code, {
          message: `${error.message} (The agent had accepted ${ids.length} messages before this.)`,
          cause: error,
          details: { ...error.details, accepted: ids.length },
        });
      }
    };
    for await (const message of messages) {
      const bytes = Buffer.byteLength(JSON.stringify(message)) + 1;
      if (bytes + ENVELOPE_BYTES > MAX_REQUEST_BYTES) {
        throw new EntraToolError("E_PAYLOAD", {
          message: `A message of ${bytes} bytes is larger than the agent takes (${MAX_REQUEST_BYTES - ENVELOPE_BYTES} bytes): send smaller values.`,
          details: { accepted: ids.length },
        });
      }
      if (
        chunk.length > 0 &&
        (chunk.length >= SEND_CHUNK_MESSAGES || chunkBytes + bytes > SEND_CHUNK_BYTES)
      ) {
        await flush();
      }
      chunk.push(message);
      chunkBytes += bytes;
    }
    await flush();
    return { accepted: ids.length, ids };
  });
}

/** The agent's status object (its shape is the agent's: agent/service/agent.ts AgentStatus). */
export async function agentStatus(
  address: AgentAddress | readonly AgentAddress[],
  options: AgentClientOptions,
): Promise<unknown> {
  return withAgent(address, options, (connection) => connection.request({ op: "status" }));
}

/**
 * A token from the running agent's sign-in (no second sign-in, no second refresh). Rejects with the
 * agent's E_SIGN_IN_REQUIRED while it is not signed in. The token is a secret: never log it.
 */
export async function agentGetToken(
  address: AgentAddress | readonly AgentAddress[],
  request: TokenRequestBody,
  options: AgentClientOptions,
): Promise<TokenResponse> {
  return withAgent(address, options, async (connection) => {
    const body: { op: "get-token"; profile?: string; scopes?: readonly string[]; forceRefresh?: boolean } = {
      op: "get-token",
    };
    if (request.profile !== undefined) body.profile = request.profile;
    if (request.scopes !== undefined && request.scopes.length > 0) body.scopes = request.scopes;
    if (request.forceRefresh) body.forceRefresh = true;
    return checked(tokenSchema, await connection.request(body), "a token", connection.path);
  });
}
