import { spawn } from "node:child_process";
import { chmod, lstat, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  agentAddresses,
  agentGetToken,
  agentSend,
  agentStatus,
  answerError,
  connectAgent,
  connectError,
} from "../../agent/cli/control-client.ts";
import { EntraToolError, isEntraToolError } from "../../agent/core/errors.ts";
import type { Logger } from "../../agent/core/log.ts";
import { resolvePaths } from "../../agent/core/paths.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import {
  type Accounts,
  type PeerCredentials,
  parseGroupFile,
  parsePasswdFile,
  peerAllowed,
} from "../../agent/linux/peer.ts";
import { createLogger } from "../../agent/pino-logger.ts";
import {
  MAX_MESSAGES_PER_REQUEST,
  MAX_REQUEST_BYTES,
  parseRequest,
  type TokenResponse,
  type WireMessage,
} from "../../agent/service/control-protocol.ts";
import {
  type ControlHandler,
  ControlServer,
  MAX_IN_FLIGHT_PER_CONNECTION,
} from "../../agent/service/control-server.ts";
import type { NewMessage } from "../../agent/telemetry/types.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
const IS_ROOT = process.getuid?.() === 0;
/** The user another user's processes run as in these tests (root only can become it). */
const NOBODY = 65534;
const SELF: PeerCredentials = {
  pid: process.pid,
  uid: process.getuid?.() ?? -1,
  gid: process.getgid?.() ?? -1,
};
const TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.c2VjcmV0LXRva2Vu.";

interface LogRecord {
  readonly level: string;
  readonly msg: string;
  readonly [key: string]: unknown;
}

function captureLogger(): { logger: Logger; records: LogRecord[]; raw: string[] } {
  const records: LogRecord[] = [];
  const raw: string[] = [];
  const logger = createLogger({
    level: "debug",
    destination: {
      write(line: string): void {
        raw.push(line);
        records.push(JSON.parse(line) as LogRecord);
      },
    },
  });
  return { logger, records, raw };
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A handler whose calls are recorded; each op's behaviour can be replaced per test. */
class FakeHandler implements ControlHandler {
  readonly sends: Array<{ messages: readonly NewMessage[]; peer: PeerCredentials }> = [];
  readonly peers: PeerCredentials[] = [];
  readonly tokenRequests: unknown[] = [];
  /** Handler calls so far, and who waits for a count of them. */
  #calls = 0;
  #waiters: Array<{ readonly at: number; readonly resolve: () => void }> = [];
  #nextId = 0;
  onSend: (messages: readonly NewMessage[]) => Promise<{ accepted: number; ids: string[] }> = async (
    messages,
  ) => this.ids(messages);
  onStatus: () => unknown = () => ({ state: "signed-in", sinks: [{ name: "mqtt:broker" }] });
  onToken: () => Promise<TokenResponse> = async () => ({
    accessToken: TOKEN,
    expiresAt: Date.UTC(2026, 11, 2, 13, 0, 0),
    scopes: ["api://telemetry/.default"],
    account: { username: "pi@contoso.example", tenantId: "t-1", homeAccountId: "h-1" },
    tokenType: "Bearer",
    profile: "default",
    fromCache: true,
  });

  ids(messages: readonly NewMessage[]): { accepted: number; ids: string[] } {
    const ids = messages.map(() => `id-${this.#nextId++}`);
    return { accepted: ids.length, ids };
  }

  /** Resolves once handler methods have been entered `n` more times (counted from now). */
  entered(n = 1): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ at: this.#calls + n, resolve }));
  }

  #enter(): void {
    this.#calls += 1;
    for (const waiter of this.#waiters.filter((w) => w.at <= this.#calls)) waiter.resolve();
    this.#waiters = this.#waiters.filter((w) => w.at > this.#calls);
  }

  async send(messages: readonly NewMessage[], peer: PeerCredentials) {
    this.sends.push({ messages, peer });
    this.peers.push(peer);
    this.#enter();
    return this.onSend(messages);
  }

  status(peer: PeerCredentials): unknown {
    this.peers.push(peer);
    this.#enter();
    return this.onStatus();
  }

  async getToken(request: unknown, peer: PeerCredentials) {
    this.tokenRequests.push(request);
    this.peers.push(peer);
    this.#enter();
    return this.onToken();
  }
}

let dir: string;
let cleanups: Array<() => Promise<void> | void>;

beforeEach(async () => {
  // Short: a socket path holds at most 107 bytes.
  dir = await mkdtemp("/tmp/et-ctl-");
  cleanups = [];
});

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await rm(dir, { recursive: true, force: true });
});

interface World {
  readonly server: ControlServer;
  readonly handler: FakeHandler;
  readonly path: string;
  readonly clock: VirtualClock;
  readonly records: LogRecord[];
  readonly raw: string[];
}

/** A started server on `<dir>/agent.sock` (a manual clock: nothing times out unless advanced). */
async function world(options: Partial<ConstructorParameters<typeof ControlServer>[0]> = {}): Promise<World> {
  const { logger, records, raw } = captureLogger();
  const handler = new FakeHandler();
  const clock = new VirtualClock(Date.UTC(2026, 11, 2, 12, 0, 0), { auto: false });
  const path = options.path ?? join(dir, "agent.sock");
  const server = new ControlServer({
    path,
    logger,
    clock,
    handler,
    accounts: async () => ({ groups: [], users: [] }),
    ...options,
  });
  cleanups.push(() => server.stop());
  await server.start();
  return { server, handler, path, clock, records, raw };
}

/**
 * A handler's answer that never comes while the test runs; released before the server stops, so
 * that the stop need not wait out its grace on a clock nobody moves.
 */
function hang<T>(): Promise<T> {
  const pending = deferred<T>();
  cleanups.push(() => pending.reject(new Error("released")));
  return pending.promise;
}

/** Client options on a clock that never moves unless a test advances it. */
function client(clock = new VirtualClock(0, { auto: false })) {
  return { clock };
}

async function rejection(promise: Promise<unknown>): Promise<EntraToolError> {
  try {
    await promise;
  } catch (error) {
    if (isEntraToolError(error)) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

/** The message of an error answer ("" when there is none). */
function errorMessage(answer: Record<string, unknown> | undefined): string {
  const error = answer?.error;
  return typeof error === "object" && error !== null && "message" in error ? String(error.message) : "";
}

/** A raw connection: writes bytes as given, collects answer lines, tells when the agent closed it. */
async function rawConnection(path: string) {
  const lines: string[] = [];
  let buffer = "";
  const waiters: Array<() => void> = [];
  const closed = deferred<void>();
  let unsent: Uint8Array[] = [];
  const wake = (): void => {
    for (const waiter of waiters.splice(0)) waiter();
  };
  const socket = await Bun.connect({
    unix: path,
    socket: {
      data(_socket, chunk) {
        buffer += chunk.toString();
        let end = buffer.indexOf("\n");
        while (end !== -1) {
          lines.push(buffer.slice(0, end));
          buffer = buffer.slice(end + 1);
          end = buffer.indexOf("\n");
        }
        wake();
      },
      drain(s) {
        while (unsent.length > 0) {
          const bytes = unsent[0] as Uint8Array;
          const written = Math.max(0, s.write(bytes));
          if (written < bytes.length) {
            unsent[0] = bytes.subarray(written);
            return;
          }
          unsent.shift();
        }
      },
      close() {
        closed.resolve();
        wake();
      },
      end() {
        closed.resolve();
        wake();
      },
    },
  });
  cleanups.push(() => socket.terminate());
  return {
    write(text: string | Uint8Array): void {
      let bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
      if (unsent.length === 0) {
        const written = Math.max(0, socket.write(bytes));
        if (written === bytes.length) return;
        bytes = bytes.subarray(written);
      }
      unsent.push(bytes);
    },
    /** The first `n` answers, parsed. */
    async answers(n: number): Promise<Array<Record<string, unknown>>> {
      while (lines.length < n) {
        let isClosed = false;
        closed.promise.then(() => {
          isClosed = true;
        });
        await new Promise<void>((resolve) => waiters.push(resolve));
        if (isClosed && lines.length < n) break;
      }
      return lines.slice(0, n).map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    closed: closed.promise,
    drop(): void {
      unsent = [];
    },
  };
}

describe("the control socket: requests and answers", () => {
  test("send, status and get-token round trips; the handler sees this process as the peer", async () => {
    const w = await world();
    const messages: WireMessage[] = [
      { topic: "sensors/temp", data: { celsius: 21.5 } },
      { topic: "sensors/door", data: "open", at: Date.UTC(2026, 11, 2, 11, 59, 0) },
    ];
    expect(await agentSend(w.path, messages, client())).toEqual({ accepted: 2, ids: ["id-0", "id-1"] });
    expect(w.handler.sends[0]?.messages).toEqual([
      { topic: "sensors/temp", data: { celsius: 21.5 } },
      { topic: "sensors/door", data: "open", at: Date.UTC(2026, 11, 2, 11, 59, 0) },
    ]);

    expect(await agentStatus(w.path, client())).toEqual({
      state: "signed-in",
      sinks: [{ name: "mqtt:broker" }],
    });

    const token = await agentGetToken(w.path, { scopes: ["api://x/.default"], forceRefresh: true }, client());
    expect(token).toMatchObject({
      accessToken: TOKEN,
      scopes: ["api://telemetry/.default"],
      tokenType: "Bearer",
    });
    expect(token.account.username).toBe("pi@contoso.example");
    expect(w.handler.tokenRequests).toEqual([{ scopes: ["api://x/.default"], forceRefresh: true }]);
    // Without scopes: the profile's (the field is left out, not sent empty).
    await agentGetToken(w.path, { scopes: [] }, client());
    expect(w.handler.tokenRequests[1]).toEqual({});

    expect(w.handler.peers).toHaveLength(4);
    for (const peer of w.handler.peers) expect(peer).toEqual(SELF);
  });

  test("a token never reaches the log, even at debug", async () => {
    const w = await world();
    await agentGetToken(w.path, {}, client());
    expect(w.raw.join("")).not.toContain(TOKEN);
    expect(w.records.some((record) => record.op === "get-token")).toBe(true);
  });

  test("send is answered only once the handler made the messages durable", async () => {
    const w = await world();
    const durable = deferred<{ accepted: number; ids: string[] }>();
    w.handler.onSend = () => durable.promise;
    const entered = w.handler.entered();
    let answered = false;
    const sending = agentSend(w.path, [{ topic: "t", data: 1 }], client()).then((result) => {
      answered = true;
      return result;
    });
    await entered;
    // A whole round trip on another connection: the agent had every chance to answer the send.
    await agentStatus(w.path, client());
    expect(answered).toBe(false);
    durable.resolve({ accepted: 1, ids: ["0190-durable"] });
    expect(await sending).toEqual({ accepted: 1, ids: ["0190-durable"] });
  });

  test("pipelined requests are answered in their order, whichever finishes first", async () => {
    const w = await world();
    const slow = deferred<{ accepted: number; ids: string[] }>();
    w.handler.onSend = () => slow.promise;
    const conn = await rawConnection(w.path);
    const entered = w.handler.entered(3);
    conn.write(
      [
        JSON.stringify({ v: 1, id: 1, op: "send", messages: [{ topic: "t", data: null }] }),
        JSON.stringify({ v: 1, id: 2, op: "status" }),
        JSON.stringify({ v: 1, id: 3, op: "get-token" }),
        "",
      ].join("\n"),
    );
    // All three run at once: the status and the token are ready while the send still waits.
    await entered;
    slow.resolve({ accepted: 1, ids: ["a"] });
    const answers = await conn.answers(3);
    expect(answers.map((answer) => answer.id)).toEqual([1, 2, 3]);
    expect(answers.map((answer) => answer.ok)).toEqual([true, true, true]);
    expect(answers[0]?.result).toEqual({ accepted: 1, ids: ["a"] });
  });

  test("one connection serves many requests through the client API", async () => {
    const w = await world();
    const connection = await connectAgent(w.path, client());
    cleanups.push(() => connection.close());
    const results = await Promise.all([
      connection.request({ op: "status" }),
      connection.request({ op: "send", messages: [{ topic: "a", data: 1 }] }),
      connection.request({ op: "status" }),
    ]);
    expect(results[1]).toEqual({ accepted: 1, ids: ["id-0"] });
    expect(results[0]).toEqual(results[2]);
  });

  test("malformed lines, unknown operations and invalid requests get error answers; the connection stays usable", async () => {
    const w = await world();
    const conn = await rawConnection(w.path);
    const tooMany = Array.from({ length: MAX_MESSAGES_PER_REQUEST + 1 }, () => ({ topic: "t", data: 0 }));
    conn.write(
      [
        "this is not json",
        "[1,2]",
        JSON.stringify({ v: 1, id: 2, op: "reboot" }),
        JSON.stringify({ v: 2, id: 3, op: "status" }),
        JSON.stringify({ v: 1, id: 4, op: "send", messages: [] }),
        JSON.stringify({ v: 1, id: 5, op: "send", messages: [{ topic: "", data: 1 }, { topic: "x" }] }),
        JSON.stringify({ v: 1, id: 6, op: "send", messages: tooMany }),
        JSON.stringify({ v: 1, id: 7, op: "status", extra: true }),
        "",
        "   ",
        JSON.stringify({ v: 1, id: 8, op: "status" }),
        "",
      ].join("\n"),
    );
    const answers = await conn.answers(9);
    expect(answers.map((answer) => [answer.id, answer.ok])).toEqual([
      [null, false],
      [null, false],
      [2, false],
      [3, false],
      [4, false],
      [5, false],
      [6, false],
      [7, false],
      [8, true],
    ]);
    const errors = answers.slice(0, 8).map((answer) => answer.error as { code: string; message: string });
    expect(new Set(errors.map((error) => error.code))).toEqual(new Set(["E_AGENT_REFUSED"]));
    expect(errors[0]?.message).toMatch(/not JSON/);
    expect(errors[2]?.message).toMatch(/"reboot".*send, status or get-token/);
    expect(errors[3]?.message).toMatch(/protocol version 1/);
    expect(errors[5]?.message).toMatch(
      /messages\[0\]\.topic: must be a topic.*messages\[1\]\.data: is required/,
    );
    expect(errors[6]?.message).toMatch(/1-10000 messages/);
    expect(errors[7]?.message).toMatch(/extra: unknown field/);
    expect(w.handler.sends).toHaveLength(0);
  });

  test("a line longer than the limit is refused and the connection closed, after the answers before it", async () => {
    const w = await world();
    const conn = await rawConnection(w.path);
    conn.write(`${JSON.stringify({ v: 1, id: 1, op: "status" })}\n`);
    conn.write(new Uint8Array(MAX_REQUEST_BYTES + 2).fill(0x20));
    const answers = await conn.answers(2);
    await conn.closed;
    expect(answers[0]).toMatchObject({ id: 1, ok: true });
    expect(answers[1]).toMatchObject({ id: null, ok: false, error: { code: "E_AGENT_REFUSED" } });
    expect(errorMessage(answers[1])).toMatch(/longer than 4194304 bytes/);
    // The agent itself goes on.
    expect(await agentStatus(w.path, client())).toBeDefined();
  });

  test("more requests in flight than one connection may have: the rest is refused and the connection ends", async () => {
    const w = await world();
    w.handler.onStatus = () => hang();
    const conn = await rawConnection(w.path);
    const entered = w.handler.entered(MAX_IN_FLIGHT_PER_CONNECTION);
    const lines = Array.from({ length: MAX_IN_FLIGHT_PER_CONNECTION + 5 }, (_, i) =>
      JSON.stringify({ v: 1, id: i, op: "status" }),
    );
    conn.write(`${lines.join("\n")}\n`);
    await entered;
    // A round trip on another connection: the agent read all of the first one's lines by now.
    const other = await rawConnection(w.path);
    w.handler.onStatus = () => ({ other: true });
    other.write(`${JSON.stringify({ v: 1, id: 0, op: "status" })}\n`);
    expect(await other.answers(1)).toEqual([{ id: 0, ok: true, result: { other: true } }]);
    // Only the first 64 reached the handler (plus the other connection's one).
    expect(w.handler.peers).toHaveLength(MAX_IN_FLIGHT_PER_CONNECTION + 1);
  });

  test("more connections than allowed: the extra one is refused", async () => {
    const w = await world({ maxConnections: 1 });
    const first = await rawConnection(w.path);
    const second = await rawConnection(w.path);
    const [refusal] = await second.answers(1);
    await second.closed;
    expect(refusal).toMatchObject({ id: null, ok: false, error: { code: "E_AGENT_REFUSED" } });
    expect(errorMessage(refusal)).toMatch(/1 connections open already/);
    first.write(`${JSON.stringify({ v: 1, id: 1, op: "status" })}\n`);
    expect(await first.answers(1)).toMatchObject([{ id: 1, ok: true }]);
  });

  test("the handler's errors reach the client with their code and message; others as E_INTERNAL", async () => {
    const w = await world();
    w.handler.onToken = async () => {
      throw new EntraToolError("E_SIGN_IN_REQUIRED", {
        message: "The agent is not signed in yet: see its status.",
      });
    };
    const signIn = await rejection(agentGetToken(w.path, {}, client()));
    expect(signIn.code).toBe("E_SIGN_IN_REQUIRED");
    expect(signIn.message).toBe("The agent is not signed in yet: see its status.");
    expect(signIn.exitCode).toBe(9);

    w.handler.onStatus = () => {
      throw new TypeError("cannot read properties of undefined");
    };
    const internal = await rejection(agentStatus(w.path, client()));
    expect(internal.code).toBe("E_INTERNAL");
    expect(internal.message).not.toContain("undefined");
    expect(
      w.records.some((record) => record.level === "error" && record.msg === "control request failed"),
    ).toBe(true);
  });
});

describe("the control socket: who may connect", () => {
  const GROUP = 4321;
  const accounts: Accounts = {
    groups: parseGroupFile("root:x:0:\nentratool:x:4321:alice,bob\nstaff:x:50:carol\n"),
    users: parsePasswdFile(
      "alice:x:1001:1001::/home/alice:/bin/sh\ndave:x:1004:4321::/home/dave:/bin/sh\neve:x:1005:1005::/home/eve:/bin/sh\n",
    ),
  };
  const policy = { selfUid: 999, groupGid: GROUP };
  const peer = (uid: number, gid: number): PeerCredentials => ({ pid: 77, uid, gid });

  test.each([
    ["the agent's own user", peer(999, 999), true],
    ["root", peer(0, 0), true],
    ["a member listed in /etc/group", peer(1001, 1001), true],
    ["a user whose primary group it is (/etc/passwd)", peer(1004, 1004), true],
    ["a process running with the group as its gid", peer(1234, GROUP), true],
    ["a user of another group", peer(1005, 1005), false],
    ["a uid without an account", peer(2000, 2000), false],
  ])("%s: %s", (_name, credentials, allowed) => {
    expect(peerAllowed(credentials, policy, accounts)).toBe(allowed);
  });

  test("without a group, or without the account files, only the cheap rules count", () => {
    expect(peerAllowed(peer(1001, 1001), { selfUid: 999, groupGid: undefined }, accounts)).toBe(false);
    expect(peerAllowed(peer(1001, 1001), policy, undefined)).toBe(false);
    expect(peerAllowed(peer(1234, GROUP), policy, undefined)).toBe(true);
  });

  test("the account files: comments, NIS lines and malformed lines are skipped", () => {
    expect(parseGroupFile("# c\n+nis\nbad\nwheel:x:notanumber:\ngpio:x:997:pi,\n")).toEqual([
      { name: "gpio", gid: 997, members: ["pi"] },
    ]);
    expect(parsePasswdFile("pi:x:1000:1000:,,,:/home/pi:/bin/bash\n-x\nbroken:x:1\n")).toEqual([
      { name: "pi", uid: 1000, gid: 1000 },
    ]);
  });

  test("a refused peer gets one E_SOCKET answer, is disconnected, and the log names its uid and pid", async () => {
    const stranger: PeerCredentials = { pid: 4242, uid: 4242, gid: 4242 };
    const w = await world({ peerCredentials: () => stranger, uid: 999 });
    const conn = await rawConnection(w.path);
    conn.write(`${JSON.stringify({ v: 1, id: 1, op: "status" })}\n`);
    const answers = await conn.answers(2);
    await conn.closed;
    expect(answers).toHaveLength(1);
    expect(answers[0]).toMatchObject({ id: null, ok: false, error: { code: "E_SOCKET" } });
    expect(errorMessage(answers[0])).toMatch(/not allowed.*group entratool/);
    expect(w.handler.peers).toHaveLength(0);
    const warning = w.records.find((record) => record.msg === "control socket: peer not allowed");
    expect(warning).toMatchObject({ level: "warn", uid: 4242, pid: 4242 });

    // Through the client: the refusal becomes the error of the request.
    const error = await rejection(agentStatus(w.path, client()));
    expect(error.code).toBe("E_SOCKET");
    expect(error.message).toMatch(/add this user to the group entratool/);
  });

  test("a peer in the socket's group (from the account files) is served", async () => {
    const member: PeerCredentials = { pid: 4243, uid: 1001, gid: 1001 };
    const w = await world({
      peerCredentials: () => member,
      uid: 999,
      accounts: async () => ({
        groups: [{ name: "entratool", gid: SELF.gid, members: ["alice"] }],
        users: [{ name: "alice", uid: 1001, gid: 1001 }],
      }),
      group: "entratool",
    });
    expect(await agentStatus(w.path, client())).toBeDefined();
    expect(w.handler.peers).toEqual([member]);
  });

  test("another user's process: the kernel refuses it on a 0660 socket, the peer check on an open one", async () => {
    const w = await world();
    if (!IS_ROOT) {
      // Not root: this user cannot become another, but a socket without permissions refuses it too.
      await chmod(w.path, 0o000);
      const error = await rejection(agentStatus(w.path, client()));
      expect(error.code).toBe("E_SOCKET");
      expect(error.message).toMatch(/Permission denied.*add this user to the group entratool/);
      return;
    }
    // Root passes every permission check: run the client as nobody instead, for real.
    await chmod(dir, 0o711);
    const asNobody = (code: string) =>
      new Promise<string>((resolveRun, rejectRun) => {
        const child = spawn(process.execPath, ["-e", code], {
          uid: NOBODY,
          gid: NOBODY,
          cwd: "/",
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        let err = "";
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
        });
        child.stderr.on("data", (chunk: Buffer) => {
          err += chunk.toString();
        });
        child.on("error", rejectRun);
        child.on("exit", (status) => (status === 0 ? resolveRun(out.trim()) : rejectRun(new Error(err))));
      });
    const clientModule = JSON.stringify(join(ROOT, "agent/cli/control-client.ts"));
    const clockModule = JSON.stringify(join(ROOT, "agent/core/virtual-clock.ts"));
    const program = `
      const { agentStatus } = await import(${clientModule});
      const { VirtualClock } = await import(${clockModule});
      try {
        await agentStatus(${JSON.stringify(w.path)}, { clock: new VirtualClock(0, { auto: false }) });
        console.log(JSON.stringify({ ok: true }));
      } catch (error) {
        console.log(JSON.stringify({ code: error.code, message: error.message }));
      }`;
    const denied = JSON.parse(await asNobody(program)) as { code: string; message: string };
    expect(denied.code).toBe("E_SOCKET");
    expect(denied.message).toMatch(/Permission denied.*add this user to the group entratool/);

    await chmod(w.path, 0o666);
    const refused = JSON.parse(await asNobody(program)) as { code: string; message: string };
    expect(refused.code).toBe("E_SOCKET");
    expect(refused.message).toMatch(/not allowed/);
    expect(w.records.find((record) => record.msg === "control socket: peer not allowed")).toMatchObject({
      uid: NOBODY,
      gid: NOBODY,
    });
    expect(w.handler.peers).toHaveLength(0);
  });
});

describe("the control socket: its file", () => {
  test("the socket file is a socket with mode 0660, and stop() removes it", async () => {
    const w = await world();
    const info = await lstat(w.path);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o660);
    await w.server.stop();
    await expect(lstat(w.path)).rejects.toMatchObject({ code: "ENOENT" });
    // Idempotent, and a client now finds no agent.
    await w.server.stop();
    expect((await rejection(agentStatus(w.path, client()))).code).toBe("E_AGENT_NOT_RUNNING");
  });

  test("the socket is given to the group entratool when it exists", async () => {
    // Root may give a file to any group; another user only to one of its own.
    const gid = IS_ROOT ? 4321 : SELF.gid;
    const w = await world({
      accounts: async () => ({ groups: [{ name: "entratool", gid, members: [] }], users: [] }),
    });
    expect((await lstat(w.path)).gid).toBe(gid);
    expect(w.records.filter((record) => record.level === "warn" || record.level === "error")).toEqual([]);
  });

  test("without that group the socket keeps the agent's group", async () => {
    const w = await world({ accounts: async () => ({ groups: parseGroupFile("staff:x:50:\n"), users: [] }) });
    expect((await lstat(w.path)).gid).toBe(SELF.gid);
  });

  test("the directory is created private when missing", async () => {
    const path = join(dir, "run", "entratool", "agent.sock");
    await world({ path, privateRoot: join(dir, "run") });
    expect((await lstat(join(dir, "run"))).mode & 0o777).toBe(0o700);
    expect((await lstat(join(dir, "run", "entratool"))).mode & 0o777).toBe(0o700);
  });

  test("a stale socket file (its agent was killed) is removed, and the new agent answers", async () => {
    const path = join(dir, "agent.sock");
    const child = spawn(
      process.execPath,
      ["-e", `Bun.listen({ unix: ${JSON.stringify(path)}, socket: { data() {} } }); console.log("ready");`],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolveReady) => child.stdout.once("data", () => resolveReady()));
    const exited = new Promise<void>((resolveExit) => child.on("exit", () => resolveExit()));
    child.kill("SIGKILL");
    await exited;
    expect((await lstat(path)).isSocket()).toBe(true);

    const w = await world({ path });
    expect(w.records.some((record) => /removed a stale control socket/.test(record.msg))).toBe(true);
    expect(await agentStatus(path, client())).toBeDefined();
  });

  test("a second agent on the same path fails with E_AGENT_RUNNING; the first one goes on", async () => {
    const first = await world();
    const { logger } = captureLogger();
    const second = new ControlServer({
      path: first.path,
      logger,
      clock: first.clock,
      handler: new FakeHandler(),
      accounts: async () => ({ groups: [], users: [] }),
    });
    const error = await rejection(second.start());
    expect(error.code).toBe("E_AGENT_RUNNING");
    await second.stop();
    expect((await lstat(first.path)).isSocket()).toBe(true);
    expect(await agentStatus(first.path, client())).toBeDefined();
  });

  test("a file that is not a socket is left alone and named", async () => {
    const path = join(dir, "agent.sock");
    await writeFile(path, "mine");
    const { logger } = captureLogger();
    const server = new ControlServer({ path, logger, clock: new VirtualClock(), handler: new FakeHandler() });
    const error = await rejection(server.start());
    expect(error.code).toBe("E_SOCKET");
    expect(error.message).toContain(`${path} exists and is not a socket`);
    expect(await Bun.file(path).text()).toBe("mine");
  });

  test("too long a path is refused with the way out, by the agent and by a client", async () => {
    const path = `${dir}/${"d".repeat(100)}/agent.sock`;
    const { logger } = captureLogger();
    const server = new ControlServer({ path, logger, clock: new VirtualClock(), handler: new FakeHandler() });
    const error = await rejection(server.start());
    expect(error.code).toBe("E_SOCKET");
    expect(error.message).toMatch(/at most 107: set RUNTIME_DIRECTORY/);
    expect((await rejection(agentStatus(path, client()))).code).toBe("E_SOCKET");
  });

  test("a socket directory that is not this user's own and private is refused (the /tmp fallback)", async () => {
    const shared = join(dir, "shared");
    await mkdir(shared, { mode: 0o755 });
    await chmod(shared, 0o755);
    const path = join(shared, "agent.sock");
    const { logger } = captureLogger();
    const server = new ControlServer({
      path,
      logger,
      clock: new VirtualClock(),
      handler: new FakeHandler(),
      ownDir: true,
    });
    const error = await rejection(server.start());
    expect(error.code).toBe("E_SOCKET");
    expect(error.message).toMatch(/not a private directory of this user.*mode 0755/);
    const clientError = await rejection(agentStatus({ path, ownDir: true }, client()));
    expect(clientError.code).toBe("E_SOCKET");

    // Private, but another user's.
    await chmod(shared, 0o700);
    const otherUid = SELF.uid === NOBODY ? NOBODY - 1 : NOBODY;
    const foreign = await rejection(agentStatus({ path, ownDir: true }, { ...client(), uid: otherUid }));
    expect(foreign.message).toMatch(/owner uid/);
  });

  test("stop() lets a request in flight finish and answers it, then closes", async () => {
    const w = await world();
    const durable = deferred<{ accepted: number; ids: string[] }>();
    w.handler.onSend = () => durable.promise;
    const entered = w.handler.entered();
    const sending = agentSend(w.path, [{ topic: "t", data: 1 }], client());
    await entered;
    const stopping = w.server.stop();
    durable.resolve({ accepted: 1, ids: ["kept"] });
    expect(await sending).toEqual({ accepted: 1, ids: ["kept"] });
    await stopping;
    await expect(lstat(w.path)).rejects.toMatchObject({ code: "ENOENT" });
  });

  test("stop() waits for a hung request only as long as its grace", async () => {
    const w = await world({ stopGraceMs: 2000 });
    w.handler.onSend = () => new Promise(() => {});
    const entered = w.handler.entered();
    const sending = rejection(agentSend(w.path, [{ topic: "t", data: 1 }], client()));
    await entered;
    let stopped = false;
    const stopping = w.server.stop().then(() => {
      stopped = true;
    });
    // The grace is on the injected clock: the stop waits until it passes.
    await agentStatus(w.path, client()).catch(() => undefined);
    expect(stopped).toBe(false);
    w.clock.advance(2000);
    await stopping;
    expect((await sending).code).toBe("E_SOCKET");
    await expect(lstat(w.path)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("the control client", () => {
  test("no socket file, or nobody listening on it: E_AGENT_NOT_RUNNING", async () => {
    const missing = await rejection(agentStatus(join(dir, "agent.sock"), client()));
    expect(missing.code).toBe("E_AGENT_NOT_RUNNING");
    expect(missing.exitCode).toBe(13);
    const plain = join(dir, "not-a-socket");
    await writeFile(plain, "");
    expect((await rejection(agentStatus(plain, client()))).code).toBe("E_AGENT_NOT_RUNNING");
    expect((await rejection(agentStatus([join(dir, "a.sock"), join(dir, "b.sock")], client()))).code).toBe(
      "E_AGENT_NOT_RUNNING",
    );
  });

  test("the system agent's socket is tried when this user's has no agent", async () => {
    const w = await world();
    const result = await agentStatus(
      [{ path: join(dir, "mine", "agent.sock"), ownDir: true }, w.path],
      client(),
    );
    expect(result).toEqual({ state: "signed-in", sinks: [{ name: "mqtt:broker" }] });
    const paths = resolvePaths({ XDG_RUNTIME_DIR: "/run/user/1000" }, "/home/pi", 1000);
    expect(agentAddresses(paths)).toEqual([
      { path: "/run/user/1000/entratool/agent.sock", ownDir: true },
      "/run/entratool/agent.sock",
    ]);
  });

  test("how connect errors and error answers map to our codes", () => {
    const denied = connectError(
      Object.assign(new Error("Failed to connect"), { code: "EACCES" }),
      "/run/x.sock",
    );
    expect(denied.code).toBe("E_SOCKET");
    expect(denied.message).toMatch(
      /Permission denied on the agent's socket \/run\/x\.sock: add this user to the group entratool/,
    );
    expect(connectError(Object.assign(new Error("x"), { code: "ECONNREFUSED" }), "/p").code).toBe(
      "E_AGENT_NOT_RUNNING",
    );
    expect(connectError(Object.assign(new Error("x"), { code: "EMFILE" }), "/p").message).toMatch(/EMFILE/);
    expect(answerError({ code: "E_OUTBOX", message: "The disk is full." })).toMatchObject({
      code: "E_OUTBOX",
      message: "The disk is full.",
    });
    // A code from a newer agent: refused, with its message.
    expect(answerError({ code: "E_FROM_THE_FUTURE", message: "Something new." })).toMatchObject({
      code: "E_AGENT_REFUSED",
      message: "Something new.",
    });
  });

  test("an agent that does not answer: E_SOCKET after the timeout, on the injected clock", async () => {
    const w = await world();
    w.handler.onStatus = () => hang();
    const clock = new VirtualClock(0, { auto: false });
    const entered = w.handler.entered();
    const asking = rejection(agentStatus(w.path, { clock, timeoutMs: 3000 }));
    await entered;
    clock.advance(2999);
    clock.advance(1);
    const error = await asking;
    expect(error.code).toBe("E_SOCKET");
    expect(error.message).toMatch(/did not answer within 3 s/);
  });

  test("an abort signal ends the call with E_CANCELLED", async () => {
    const w = await world();
    w.handler.onStatus = () => hang();
    const controller = new AbortController();
    const entered = w.handler.entered();
    const asking = rejection(agentStatus(w.path, { ...client(), signal: controller.signal }));
    await entered;
    controller.abort();
    expect((await asking).code).toBe("E_CANCELLED");
  });

  test("a large input goes in requests of at most 1000 messages, ids in order", async () => {
    const w = await world();
    async function* ndjson(): AsyncGenerator<WireMessage> {
      for (let i = 0; i < 2500; i++) yield { topic: "bulk", data: { i } };
    }
    const result = await agentSend(w.path, ndjson(), client());
    expect(w.handler.sends.map((send) => send.messages.length)).toEqual([1000, 1000, 500]);
    expect(result.accepted).toBe(2500);
    expect(result.ids[0]).toBe("id-0");
    expect(result.ids[2499]).toBe("id-2499");
  });

  test("large messages go in requests of at most 1 MiB; one too large for the agent is refused", async () => {
    const w = await world();
    const big = "x".repeat(300 * 1024);
    const result = await agentSend(
      w.path,
      Array.from({ length: 7 }, () => ({ topic: "blob", data: big })),
      client(),
    );
    expect(result.accepted).toBe(7);
    expect(w.handler.sends.map((send) => send.messages.length)).toEqual([3, 3, 1]);

    const huge = await rejection(
      agentSend(w.path, [{ topic: "blob", data: "y".repeat(MAX_REQUEST_BYTES) }], client()),
    );
    expect(huge.code).toBe("E_PAYLOAD");
  });

  test("a failure after some requests were accepted says how many were", async () => {
    const w = await world();
    let calls = 0;
    w.handler.onSend = async (messages) => {
      calls += 1;
      if (calls === 2) throw new EntraToolError("E_OUTBOX", { message: "The outbox's disk is full." });
      return w.handler.ids(messages);
    };
    const messages = Array.from({ length: 1500 }, (_, i) => ({ topic: "t", data: i }));
    const error = await rejection(agentSend(w.path, messages, client()));
    expect(error.code).toBe("E_OUTBOX");
    expect(error.details.accepted).toBe(1000);
    expect(error.message).toMatch(/disk is full.*accepted 1000 messages/);
  });
});

describe("the protocol's request check", () => {
  test("a valid send keeps the messages as sent", () => {
    const parsed = parseRequest(
      JSON.stringify({
        v: 1,
        id: 0,
        op: "send",
        messages: [{ topic: "a/b", data: [1, { x: null }], at: 5 }],
      }),
    );
    expect(parsed).toEqual({
      ok: true,
      request: { v: 1, id: 0, op: "send", messages: [{ topic: "a/b", data: [1, { x: null }], at: 5 }] },
    });
  });

  test("a request id that is not a whole number is answered with id null", () => {
    expect(parseRequest(JSON.stringify({ v: 1, id: "7", op: "status" }))).toMatchObject({
      ok: false,
      id: null,
    });
    expect(parseRequest(JSON.stringify({ v: 1, id: 1.5, op: "status" }))).toMatchObject({
      ok: false,
      id: null,
    });
  });
});
