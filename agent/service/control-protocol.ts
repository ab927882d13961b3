import * as v from "valibot";
import { EntraToolError, ERRORS, type ErrorCode } from "../core/errors.ts";
import { isRecord } from "../core/json.ts";
import { formatIssues, must, strict } from "../core/schema.ts";
import type { JsonValue, NewMessage } from "../telemetry/types.ts";

/**
 * The agent's control protocol: newline-delimited JSON over a Unix stream socket, one request per
 * line, one response per request, in the order of the requests (a client may pipeline).
 *
 *   → {"v":1,"id":7,"op":"send","messages":[{"topic":"t","data":{…}}]}
 *   ← {"id":7,"ok":true,"result":{"accepted":1,"ids":["0190…"]}}   (once the messages are durable)
 *   → {"v":1,"id":8,"op":"status"}
 *   ← {"id":8,"ok":true,"result":{…the agent's status…}}
 *   → {"v":1,"id":9,"op":"get-token","scopes":["api://x/.default"],"forceRefresh":false}
 *   ← {"id":9,"ok":true,"result":{"accessToken":"…","expiresAt":1764…,"scopes":[…],"account":{…}}}
 *   ← {"id":9,"ok":false,"error":{"code":"E_SIGN_IN_REQUIRED","message":"…"}}
 *
 * `id` is the client's (a whole number, echoed back); a response to a line whose id could not be
 * read carries `"id":null`. Error codes are those of agent/core/errors.ts. JSON never holds a raw
 * newline (JSON.stringify escapes it inside strings), so a line is always one whole value.
 */

export const PROTOCOL_VERSION = 1;
/** Longest request line the agent reads, bytes (without the newline); a longer one ends the connection. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** Most messages in one `send` request. */
export const MAX_MESSAGES_PER_REQUEST = 10_000;
/** Longest response line a client reads, bytes (a `send` of 10 000 messages answers ~0.4 MB). */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** sun_path holds 108 bytes with its terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** Longest topic, characters: more than MQTT or any HTTP sink takes in practice. */
export const MAX_TOPIC_LENGTH = 1024;

export type Operation = "send" | "status" | "get-token";

/** One message as `send` carries it: the agent gives id, device and (unless `at` is given) the time. */
export interface WireMessage {
  readonly topic: string;
  readonly data: JsonValue;
  /** Epoch ms of collection; default: when the agent accepted it. */
  readonly at?: number;
}

export interface TokenRequestBody {
  /**
   * The profile the caller wants a token of; the agent refuses (E_AGENT_REFUSED) when it signs in
   * another one, and the caller uses the store instead. Absent: the agent's profile.
   */
  readonly profile?: string;
  /** The delegated permissions; empty or absent: the profile's. */
  readonly scopes?: readonly string[];
  /** Redeem the refresh token even when the cached token looks valid. */
  readonly forceRefresh?: boolean;
}

export type ControlRequest =
  | { readonly v: 1; readonly id: number; readonly op: "send"; readonly messages: readonly WireMessage[] }
  | { readonly v: 1; readonly id: number; readonly op: "status" }
  | ({ readonly v: 1; readonly id: number; readonly op: "get-token" } & TokenRequestBody);

/** What `send` answers: the messages' ids, in the order sent. */
export interface SendResult {
  readonly accepted: number;
  readonly ids: readonly string[];
}

/** What `get-token` answers: the fields of the agent's TokenResult (the optional ones when known). */
export interface TokenResponse {
  readonly accessToken: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly scopes: readonly string[];
  readonly account: { readonly username: string; readonly tenantId: string; readonly homeAccountId: string };
  readonly tokenType?: string;
  readonly profile?: string;
  readonly fromCache?: boolean;
}

export interface ErrorBody {
  readonly code: string;
  readonly message: string;
}

export type ControlResponse =
  | { readonly id: number | null; readonly ok: true; readonly result: unknown }
  | { readonly id: number | null; readonly ok: false; readonly error: ErrorBody };

const ID_RULE = "a whole number from 0";
const idSchema = v.pipe(v.number(must(ID_RULE)), v.safeInteger(must(ID_RULE)), v.minValue(0, must(ID_RULE)));
const versionSchema = v.literal(PROTOCOL_VERSION, must(String(PROTOCOL_VERSION)));

const TOPIC_RULE = `a topic of 1-${MAX_TOPIC_LENGTH} characters`;
const AT_RULE = "epoch milliseconds";
const messageSchema = strict({
  topic: v.pipe(
    v.string(must(TOPIC_RULE)),
    v.minLength(1, must(TOPIC_RULE)),
    v.maxLength(MAX_TOPIC_LENGTH, must(TOPIC_RULE)),
  ),
  // Anything JSON.parse gave is a JSON value; only its absence is an error.
  data: v.unknown(),
  at: v.optional(v.pipe(v.number(must(AT_RULE)), v.safeInteger(must(AT_RULE)), v.minValue(0, must(AT_RULE)))),
});

const MESSAGES_RULE = `a list of 1-${MAX_MESSAGES_PER_REQUEST} messages`;
const sendSchema = strict({
  v: versionSchema,
  id: idSchema,
  op: v.literal("send"),
  messages: v.pipe(
    v.array(messageSchema, must(MESSAGES_RULE)),
    v.minLength(1, must(MESSAGES_RULE)),
    v.maxLength(MAX_MESSAGES_PER_REQUEST, must(MESSAGES_RULE)),
  ),
});
const statusSchema = strict({ v: versionSchema, id: idSchema, op: v.literal("status") });
const SCOPE_RULE = "a list of scopes (non-empty strings)";
const getTokenSchema = strict({
  v: versionSchema,
  id: idSchema,
  op: v.literal("get-token"),
  profile: v.optional(v.pipe(v.string(must("a profile name")), v.minLength(1, must("a profile name")))),
  scopes: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(must(SCOPE_RULE)), v.minLength(1, must(SCOPE_RULE))), must(SCOPE_RULE)),
      v.maxLength(100, must(SCOPE_RULE)),
    ),
  ),
  forceRefresh: v.optional(v.boolean(must("true or false"))),
});

const SCHEMAS = { send: sendSchema, status: statusSchema, "get-token": getTokenSchema } as const;

/** The result of reading one request line: the request, or the error response to send back. */
export type ParsedRequest =
  | { readonly ok: true; readonly request: ControlRequest }
  | { readonly ok: false; readonly id: number | null; readonly error: ErrorBody };

/** Problems named in one refusal, at most (a list of 10 000 bad messages says the first few). */
const MAX_ISSUES_SHOWN = 5;

function refused(id: number | null, message: string): ParsedRequest {
  return { ok: false, id, error: { code: "E_AGENT_REFUSED", message } };
}

/** Reads and validates one request line (without its newline). Never throws. */
export function parseRequest(line: string): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return refused(null, "The agent received a request that is not JSON: send one JSON object per line.");
  }
  if (!isRecord(value)) {
    return refused(null, "The agent received a request that is not a JSON object: send one object per line.");
  }
  const id = v.is(idSchema, value.id) ? value.id : null;
  if (value.v !== PROTOCOL_VERSION) {
    return refused(
      id,
      `The agent speaks protocol version ${PROTOCOL_VERSION} (the request said ${JSON.stringify(value.v) ?? "nothing"}): use an entratool of the agent's version.`,
    );
  }
  const op = value.op;
  if (typeof op !== "string" || !Object.hasOwn(SCHEMAS, op)) {
    return refused(
      id,
      `The agent does not know the operation ${JSON.stringify(op) ?? "(none)"}: use send, status or get-token.`,
    );
  }
  const parsed = v.safeParse(SCHEMAS[op as Operation], value);
  if (!parsed.success) {
    const issues = formatIssues(parsed.issues, "request");
    const more = issues.length > MAX_ISSUES_SHOWN ? ` (and ${issues.length - MAX_ISSUES_SHOWN} more)` : "";
    return refused(
      id,
      `The agent refused an invalid ${op} request: ${issues.slice(0, MAX_ISSUES_SHOWN).join("; ")}${more}.`,
    );
  }
  return { ok: true, request: parsed.output as ControlRequest };
}

/** The messages of a `send` request as the outbox takes them. */
export function toNewMessages(messages: readonly WireMessage[]): NewMessage[] {
  return messages.map((message) =>
    message.at === undefined
      ? { topic: message.topic, data: message.data }
      : { topic: message.topic, data: message.data, at: message.at },
  );
}

/** One line of the protocol: the value as JSON, and the newline. */
export function encodeLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

/** Whether `code` is one of ours (a response from another version may carry one we do not know). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERRORS, code);
}

/**
 * Refuses a socket path the kernel cannot bind or connect to (it would fail with a bare EINVAL),
 * with the way out.
 */
export function assertSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new EntraToolError("E_SOCKET", {
      message: `The agent's socket path ${path} is ${bytes} bytes long, but a Unix socket path may have at most ${MAX_SOCKET_PATH_BYTES}: set RUNTIME_DIRECTORY, ENTRATOOL_HOME or XDG_RUNTIME_DIR to a shorter directory.`,
      details: { path, bytes },
    });
  }
}

/**
 * Splits a byte stream into lines (LF; a CR before it is dropped), holding at most `maxBytes` of
 * an unfinished line. `push` returns the complete lines in a chunk; a line longer than `maxBytes`
 * makes it return "overflow" (the splitter is then useless: close the stream). Lines are decoded
 * as UTF-8; invalid bytes become U+FFFD (and then fail as JSON, or reach a string as they are).
 */
export class LineSplitter {
  readonly #maxBytes: number;
  readonly #decoder = new TextDecoder();
  #parts: Uint8Array[] = [];
  #size = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Uint8Array): string[] | "overflow" {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(10, start);
      if (end === -1) break;
      const piece = chunk.subarray(start, end);
      if (this.#size + piece.length > this.#maxBytes) return "overflow";
      lines.push(this.#take(piece));
      start = end + 1;
    }
    const rest = chunk.subarray(start);
    if (this.#size + rest.length > this.#maxBytes) return "overflow";
    if (rest.length > 0) {
      // A copy: the caller's buffer may be reused after this returns.
      this.#parts.push(rest.slice());
      this.#size += rest.length;
    }
    return lines;
  }

  /** Bytes of an unfinished line held. */
  get pending(): number {
    return this.#size;
  }

  #take(last: Uint8Array): string {
    let bytes = last;
    if (this.#parts.length > 0) {
      bytes = new Uint8Array(this.#size + last.length);
      let offset = 0;
      for (const part of this.#parts) {
        bytes.set(part, offset);
        offset += part.length;
      }
      bytes.set(last, offset);
      this.#parts = [];
      this.#size = 0;
    }
    const length = bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
    return this.#decoder.decode(bytes.subarray(0, length));
  }
}

/**
 * Checks that `dir` (the socket's directory in a place anyone could have made it first, such as
 * /tmp/entratool-<uid>) is a real directory of user `uid` that nobody else may enter: otherwise
 * the socket in it could be someone else's, who would then receive our messages and hand us
 * tokens of their choosing. Throws E_SOCKET with the way out. A missing directory passes (the
 * agent creates it; a client then finds no agent).
 */
export async function assertOwnSocketDir(dir: string, uid: number): Promise<void> {
  // lstat, so that a symbolic link planted in its place is seen as one; node:fs only here.
  const { lstat } = await import("node:fs/promises");
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new EntraToolError("E_SOCKET", {
      message: `Cannot check the agent's socket directory ${dir}: ${(error as Error).message}.`,
      cause: error,
    });
  }
  const mode = (info.mode & 0o7777).toString(8).padStart(4, "0");
  if (!info.isDirectory() || info.uid !== uid || (info.mode & 0o077) !== 0) {
    throw new EntraToolError("E_SOCKET", {
      message: `The agent's socket directory ${dir} is not a private directory of this user (owner uid ${info.uid}, mode ${mode}${info.isDirectory() ? "" : ", not a directory"}), so it could be someone else's: remove it, or set XDG_RUNTIME_DIR.`,
      details: { dir, uid: info.uid, mode },
    });
  }
}
