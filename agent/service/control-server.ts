import type { Socket, UnixSocketListener } from "bun";
import { ensurePrivateDir } from "../core/atomic.ts";
import type { Clock } from "../core/clock.ts";
import {
  EntraToolError,
  type ErrorCode,
  errnoCode,
  isEntraToolError,
  toEntraToolError,
} from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { dirname } from "../core/path.ts";
import { LazyLibc } from "../linux/libc.ts";
import {
  type Accounts,
  type PeerCredentials,
  type PeerPolicy,
  peerAllowed,
  peerCredentials,
  peerNeedsAccounts,
  readAccounts,
} from "../linux/peer.ts";
import type { NewMessage } from "../telemetry/types.ts";
import {
  assertOwnSocketDir,
  assertSocketPath,
  type ControlRequest,
  type ControlResponse,
  encodeLine,
  LineSplitter,
  MAX_REQUEST_BYTES,
  parseRequest,
  type SendResult,
  type TokenRequestBody,
  type TokenResponse,
  toNewMessages,
} from "./control-protocol.ts";

/**
 * What the agent does for its socket's clients. Each call gets the peer (as the kernel says who
 * connected). A rejection with an EntraToolError reaches the client with its code and message;
 * anything else as E_INTERNAL.
 */
export interface ControlHandler {
  /** Resolves once the messages are durable (the outbox's append), with their ids in order. */
  send(messages: readonly NewMessage[], peer: PeerCredentials): Promise<SendResult>;
  /** The agent's status: any JSON-serialisable object (opaque to the socket). */
  status(peer: PeerCredentials): unknown;
  /** A token from the agent's sign-in. Never logged. */
  getToken(request: TokenRequestBody, peer: PeerCredentials): Promise<TokenResponse>;
}

export interface ControlServerOptions {
  /** The socket file (Paths.socketFile); at most 107 bytes. */
  readonly path: string;
  readonly logger: Logger;
  /** For stop()'s bounded wait. */
  readonly clock: Clock;
  readonly handler: ControlHandler;
  /** The socket file's mode; default 0o660 (the agent's user and the socket's group). */
  readonly mode?: number;
  /**
   * The group the socket file is given when that group exists; default "entratool". When it does
   * not exist (or the agent may not give files to it), the file keeps the agent's group.
   */
  readonly group?: string;
  /** ensurePrivateDir's root for the socket's directory (Paths.socketRoot); default the directory. */
  readonly privateRoot?: string;
  /** The directory must be this user's own and private (Paths.socketDirOwned); default false. */
  readonly ownDir?: boolean;
  /** The C library for SO_PEERCRED; default the system's, loaded at start. */
  readonly libc?: LazyLibc;
  /** Who connected on an accepted socket's fd; default SO_PEERCRED. A seam for tests. */
  readonly peerCredentials?: (fd: number) => PeerCredentials;
  /** The account files; default /etc/group and /etc/passwd, read when a peer's group is in question. */
  readonly accounts?: () => Promise<Accounts>;
  /** The agent's uid (allowed, like root); default process.getuid(). */
  readonly uid?: number;
  /** How long stop() lets requests in flight finish, ms; default 5000. */
  readonly stopGraceMs?: number;
  /** Connections open at once; more are answered with E_AGENT_REFUSED and closed. Default 64. */
  readonly maxConnections?: number;
}

/** Unanswered requests one connection may have (a pipelining client waits for answers first). */
export const MAX_IN_FLIGHT_PER_CONNECTION = 64;
/** How long a connection whose end was sent waits for its client to close it, ms. */
export const LINGER_MS = 5000;
/** Answers not yet taken by a client, bytes: a client that stops reading is disconnected. */
export const MAX_UNSENT_BYTES = 64 * 1024 * 1024;

const encoder = new TextEncoder();

/** One client connection: its peer, its line splitter, its answers in order, its unsent bytes. */
class Connection {
  readonly socket: Socket<Connection | undefined>;
  readonly splitter = new LineSplitter(MAX_REQUEST_BYTES);
  peer: PeerCredentials | undefined;
  /** Resolves with the peer check's outcome; requests wait for it. */
  allowed: Promise<boolean> = Promise.resolve(false);
  /** The last answer written (or to be written): the next one waits for it. */
  tail: Promise<void> = Promise.resolve();
  inFlight = 0;
  /** Aborts the wait for the client to close, once it closed. */
  lingering: AbortController | undefined;
  /** false once a line was too long: what follows is not read. */
  reading = true;
  closed = false;
  #unsent: Uint8Array[] = [];
  #unsentBytes = 0;
  #endWhenFlushed = false;
  /** Called once the connection's end was sent (see endWhenFlushed). */
  readonly #onEnded: (connection: Connection) => void;

  constructor(socket: Socket<Connection | undefined>, onEnded: (connection: Connection) => void) {
    this.socket = socket;
    this.#onEnded = onEnded;
  }

  /** Queues `text` after what is still unsent (Bun's socket writes only what the kernel takes). */
  write(text: string): void {
    if (this.closed || this.#endWhenFlushed) return;
    let bytes = encoder.encode(text);
    if (this.#unsent.length === 0) {
      const written = Math.max(0, this.socket.write(bytes));
      if (written === bytes.length) return;
      bytes = bytes.subarray(written);
    }
    this.#unsent.push(bytes);
    this.#unsentBytes += bytes.length;
    if (this.#unsentBytes > MAX_UNSENT_BYTES) this.terminate();
  }

  /** The kernel took what was written: write more of what is unsent. */
  drain(): void {
    while (this.#unsent.length > 0 && !this.closed) {
      const bytes = this.#unsent[0] as Uint8Array;
      const written = Math.max(0, this.socket.write(bytes));
      this.#unsentBytes -= written;
      if (written < bytes.length) {
        this.#unsent[0] = bytes.subarray(written);
        return;
      }
      this.#unsent.shift();
    }
    if (this.#endWhenFlushed && !this.closed) this.#end();
  }

  /**
   * Ends the connection once everything written so far is sent; nothing more is written. Only our
   * side is shut (the client reads the answers, then an end): a full close right after accepting
   * makes the client's connect fail with ECONNRESET before it reads anything, and the refusal's
   * reason would be lost. The client closes it then (the server cuts it after a while otherwise).
   */
  endWhenFlushed(): void {
    if (this.closed || this.#endWhenFlushed) return;
    this.#endWhenFlushed = true;
    if (this.#unsent.length === 0) this.#end();
  }

  #end(): void {
    this.socket.shutdown();
    this.#onEnded(this);
  }

  terminate(): void {
    if (this.closed) return;
    this.closed = true;
    this.#unsent = [];
    this.lingering?.abort();
    this.socket.terminate();
  }
}

/**
 * The agent's control socket: accepts `send`, `status` and `get-token` from local clients (see
 * control-protocol.ts), after checking on every connection who connected (SO_PEERCRED): the
 * agent's own user, root and the members of the socket's group; anyone else gets one E_SOCKET
 * answer and is disconnected, with a warning in the log. Requests of a connection are handled at
 * once and answered in their order. Tokens in answers are never logged.
 *
 * One life: start() once (calling it again returns the same start), stop() once (idempotent).
 */
export class ControlServer {
  readonly #options: ControlServerOptions;
  readonly #uid: number;
  readonly #connections = new Set<Connection>();
  #listener: UnixSocketListener<Connection | undefined> | undefined;
  #credentials: ((fd: number) => PeerCredentials) | undefined;
  #policy: PeerPolicy | undefined;
  #socketIno: number | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: ControlServerOptions) {
    this.#options = options;
    this.#uid = options.uid ?? process.getuid?.() ?? 0;
  }

  /** The socket file. */
  get path(): string {
    return this.#options.path;
  }

  /**
   * Prepares the directory, takes over a stale socket file (one nobody answers on), listens, and
   * sets the file's mode and group. Rejects with E_AGENT_RUNNING when an agent answers on the path,
   * and with E_SOCKET when the path cannot be used (too long, not a socket, not ours).
   */
  start(): Promise<void> {
    if (this.#stopping)
      return Promise.reject(new EntraToolError("E_INTERNAL", { message: "The control socket was stopped." }));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { path, logger } = this.#options;
    assertSocketPath(path);
    this.#credentials = this.#options.peerCredentials ?? (await this.#kernelCredentials());
    const dir = dirname(path);
    try {
      if (this.#options.ownDir) await assertOwnSocketDir(dir, this.#uid);
      await ensurePrivateDir(dir, this.#options.privateRoot ?? dir);
      if (this.#options.ownDir) await assertOwnSocketDir(dir, this.#uid);
    } catch (error) {
      if (isEntraToolError(error)) throw error;
      throw new EntraToolError("E_SOCKET", {
        message: `Cannot create the agent's socket directory ${dir}: ${(error as Error).message}.`,
        cause: error,
      });
    }
    await this.#removeStale();
    try {
      this.#listener = Bun.listen<Connection | undefined>({
        unix: path,
        data: undefined,
        socket: {
          open: (socket) => this.#open(socket),
          data: (socket, chunk) => {
            if (socket.data) this.#data(socket.data, chunk);
          },
          drain: (socket) => socket.data?.drain(),
          close: (socket) => {
            if (socket.data) this.#closed(socket.data);
          },
          error: (socket, error) => {
            logger.debug({ err: error, pid: socket.data?.peer?.pid }, "control connection failed");
          },
        },
      });
    } catch (error) {
      // Someone bound the path between the stale check and here: another agent, starting too.
      if (errnoCode(error) === "EADDRINUSE") throw new EntraToolError("E_AGENT_RUNNING", { cause: error });
      throw new EntraToolError("E_SOCKET", {
        message: `Cannot listen on the agent's socket ${path}: ${(error as Error).message}.`,
        cause: error,
      });
    }
    await this.#setOwnership();
    logger.info({ path, mode: this.#modeText() }, "control socket listening");
  }

  async #kernelCredentials(): Promise<(fd: number) => PeerCredentials> {
    const lazy =
      this.#options.libc ??
      new LazyLibc({
        unavailable: (cause, libcPath) =>
          new EntraToolError("E_SOCKET", {
            message: `The C library (${libcPath}) cannot be loaded to check who connects to the agent's socket: entratool needs Bun on Linux with glibc.`,
            cause,
          }),
      });
    const libc = await lazy.get();
    return (fd) => peerCredentials(libc, fd);
  }

  /** Removes a socket file no agent answers on; refuses when one answers, or when it is no socket. */
  async #removeStale(): Promise<void> {
    const { path, logger } = this.#options;
    const { lstat, unlink } = await import("node:fs/promises");
    let info: Awaited<ReturnType<typeof lstat>>;
    try {
      info = await lstat(path);
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return;
      throw new EntraToolError("E_SOCKET", {
        message: `Cannot check ${path}: ${(error as Error).message}.`,
        cause: error,
      });
    }
    if (!info.isSocket()) {
      throw new EntraToolError("E_SOCKET", {
        message: `${path} exists and is not a socket, so the agent cannot listen there: move it away.`,
        details: { path },
      });
    }
    try {
      const probe = await Bun.connect({ unix: path, socket: { data: () => {} } });
      probe.terminate();
      throw new EntraToolError("E_AGENT_RUNNING", { details: { path } });
    } catch (error) {
      if (isEntraToolError(error)) throw error;
      if (errnoCode(error) !== "ECONNREFUSED") {
        throw new EntraToolError("E_SOCKET", {
          message: `Cannot tell whether an agent answers on ${path}: ${(error as Error).message}.`,
          cause: error,
        });
      }
    }
    try {
      await unlink(path);
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") {
        throw new EntraToolError("E_SOCKET", {
          message: `Cannot remove the stale socket ${path}: ${(error as Error).message}.`,
          cause: error,
        });
      }
    }
    logger.info({ path }, "removed a stale control socket (no agent answered on it)");
  }

  /** chmod to `mode`, the group when it exists; then the rule for peers follows the file's group. */
  async #setOwnership(): Promise<void> {
    const { path, logger } = this.#options;
    const mode = this.#options.mode ?? 0o660;
    const groupName = this.#groupName();
    const { chmod, chown, lstat } = await import("node:fs/promises");
    try {
      await chmod(path, mode);
    } catch (error) {
      this.#listener?.stop(true);
      this.#listener = undefined;
      await this.#abandon();
      throw new EntraToolError("E_SOCKET", {
        message: `Cannot set the mode of the agent's socket ${path}: ${(error as Error).message}.`,
        cause: error,
      });
    }
    const group = await this.#accounts().then(
      (accounts) => accounts?.groups.find((entry) => entry.name === groupName),
      () => undefined,
    );
    // Under systemd the socket is made in a directory of the group already (the service's own),
    // and the unit's system call filter forbids chown: nothing to change then.
    const current = await lstat(path).then(
      (info) => info.gid,
      () => undefined,
    );
    if (group !== undefined && current !== group.gid) {
      try {
        await chown(path, -1, group.gid);
      } catch (error) {
        logger.warn(
          { err: error, path, group: groupName },
          `cannot give the control socket to group ${groupName}: only this user and root can use it`,
        );
      }
    }
    const info = await lstat(path);
    this.#socketIno = info.ino;
    // Group members count only when the mode lets the group in at all.
    this.#policy = { selfUid: this.#uid, groupGid: (mode & 0o060) !== 0 ? info.gid : undefined };
  }

  #groupName(): string {
    return this.#options.group ?? "entratool";
  }

  #modeText(): string {
    return `0${(this.#options.mode ?? 0o660).toString(8)}`;
  }

  async #accounts(): Promise<Accounts | undefined> {
    try {
      return await (this.#options.accounts ?? (() => readAccounts()))();
    } catch (error) {
      this.#options.logger.warn({ err: error }, "cannot read the account files (/etc/group, /etc/passwd)");
      return undefined;
    }
  }

  #open(socket: Socket<Connection | undefined>): void {
    const { logger } = this.#options;
    const connection = new Connection(socket, (ended) => this.#linger(ended));
    socket.data = connection;
    if (this.#stopping) {
      connection.terminate();
      return;
    }
    this.#connections.add(connection);
    const max = this.#options.maxConnections ?? 64;
    if (this.#connections.size > max) {
      logger.warn({ max }, "control socket: too many connections, one refused");
      this.#refuse(
        connection,
        "E_AGENT_REFUSED",
        `The agent has ${max} connections open already: try again in a moment.`,
      );
      return;
    }
    let peer: PeerCredentials;
    try {
      // Bun's socket has its file descriptor as `fd`, which its type declarations leave out.
      const { fd } = socket as unknown as { readonly fd: number };
      peer = (this.#credentials as (fd: number) => PeerCredentials)(fd);
    } catch (error) {
      logger.warn({ err: error }, "control socket: cannot tell who connected, connection refused");
      this.#refuse(connection, "E_SOCKET", "The agent cannot tell who connected, so it does not answer.");
      return;
    }
    connection.peer = peer;
    const policy = this.#policy ?? { selfUid: this.#uid, groupGid: undefined };
    const decide = peerNeedsAccounts(peer, policy)
      ? this.#accounts().then((accounts) => peerAllowed(peer, policy, accounts))
      : Promise.resolve(peerAllowed(peer, policy));
    connection.allowed = decide.then((allowed) => {
      if (!allowed) {
        logger.warn({ uid: peer.uid, gid: peer.gid, pid: peer.pid }, "control socket: peer not allowed");
        this.#refuse(
          connection,
          "E_SOCKET",
          `This user is not allowed to use the entratool agent: add this user to the group ${this.#groupName()}.`,
        );
      }
      return allowed;
    });
  }

  #refuse(connection: Connection, code: ErrorCode, message: string): void {
    const response: ControlResponse = { id: null, ok: false, error: { code, message } };
    connection.write(encodeLine(response));
    connection.endWhenFlushed();
  }

  #data(connection: Connection, chunk: Uint8Array): void {
    if (connection.closed || !connection.reading) return;
    const lines = connection.splitter.push(chunk);
    if (lines === "overflow") {
      // The rest of that line cannot be told from the next request: nothing more is read, and the
      // connection ends after the answers to the requests before it.
      connection.reading = false;
      const { logger } = this.#options;
      logger.warn({ uid: connection.peer?.uid, pid: connection.peer?.pid }, "control request too long");
      connection.tail = connection.tail.then(() =>
        this.#refuse(
          connection,
          "E_AGENT_REFUSED",
          `The agent refused a request longer than ${MAX_REQUEST_BYTES} bytes: send fewer messages per request.`,
        ),
      );
      return;
    }
    for (const line of lines) {
      if (!connection.reading) break;
      this.#line(connection, line);
    }
  }

  #line(connection: Connection, line: string): void {
    if (line.trim() === "") return;
    if (connection.inFlight >= MAX_IN_FLIGHT_PER_CONNECTION) {
      // Like a line too long: nothing after it is read, and the connection ends after the answers.
      connection.reading = false;
      this.#options.logger.warn(
        { uid: connection.peer?.uid, pid: connection.peer?.pid },
        "control socket: too many requests in flight on one connection",
      );
      connection.tail = connection.tail.then(() =>
        this.#refuse(
          connection,
          "E_AGENT_REFUSED",
          `The agent answers at most ${MAX_IN_FLIGHT_PER_CONNECTION} requests in flight per connection: wait for answers before sending more.`,
        ),
      );
      return;
    }
    connection.inFlight += 1;
    const answer = connection.allowed.then((allowed) =>
      allowed ? this.#answer(connection.peer as PeerCredentials, line) : undefined,
    );
    connection.tail = connection.tail
      .then(() => answer)
      .then((text) => {
        connection.inFlight -= 1;
        if (text !== undefined) connection.write(text);
      });
  }

  /** The response line to one request line. Never rejects. */
  async #answer(peer: PeerCredentials, line: string): Promise<string> {
    const { logger } = this.#options;
    const parsed = parseRequest(line);
    if (!parsed.ok) {
      logger.debug({ uid: peer.uid, pid: peer.pid, code: parsed.error.code }, "control request refused");
      return encodeLine({ id: parsed.id, ok: false, error: parsed.error } satisfies ControlResponse);
    }
    const request = parsed.request;
    const started = this.#options.clock.now();
    try {
      const result = await this.#dispatch(request, peer);
      const text = encodeLine({ id: request.id, ok: true, result } satisfies ControlResponse);
      logger.debug(
        {
          op: request.op,
          id: request.id,
          uid: peer.uid,
          pid: peer.pid,
          ms: this.#options.clock.now() - started,
        },
        "control request answered",
      );
      return text;
    } catch (thrown) {
      const error = toEntraToolError(thrown);
      const fields = { op: request.op, id: request.id, uid: peer.uid, pid: peer.pid, code: error.code };
      if (isEntraToolError(thrown)) logger.debug(fields, "control request failed");
      else logger.error({ ...fields, err: thrown }, "control request failed");
      const response: ControlResponse = {
        id: request.id,
        ok: false,
        error: { code: error.code, message: error.message },
      };
      return encodeLine(response);
    }
  }

  async #dispatch(request: ControlRequest, peer: PeerCredentials): Promise<unknown> {
    const { handler } = this.#options;
    switch (request.op) {
      case "send": {
        return await handler.send(toNewMessages(request.messages), peer);
      }
      case "status":
        return await handler.status(peer);
      case "get-token": {
        const body: { profile?: string; scopes?: readonly string[]; forceRefresh?: boolean } = {};
        if (request.profile !== undefined) body.profile = request.profile;
        if (request.scopes !== undefined) body.scopes = request.scopes;
        if (request.forceRefresh !== undefined) body.forceRefresh = request.forceRefresh;
        return await handler.getToken(body, peer);
      }
    }
  }

  /** A connection whose end was sent: cut it if its client does not close it within LINGER_MS. */
  #linger(connection: Connection): void {
    const cancel = new AbortController();
    connection.lingering = cancel;
    this.#options.clock.sleep(LINGER_MS, cancel.signal).then(
      () => connection.terminate(),
      () => undefined,
    );
  }

  #closed(connection: Connection): void {
    connection.closed = true;
    connection.lingering?.abort();
    this.#connections.delete(connection);
  }

  /**
   * Stops accepting, lets requests in flight finish for at most stopGraceMs (their answers are
   * still sent), closes every connection and removes the socket file (when it is still the one this
   * server made). Idempotent; safe before start() or after a failed one.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const listener = this.#listener;
    if (listener === undefined) return;
    // Bun removes the socket file here; a file made by someone else since is left alone below.
    listener.stop(false);
    const grace = new AbortController();
    const finished = Promise.allSettled([...this.#connections].map((connection) => connection.tail));
    await Promise.race([
      finished,
      this.#options.clock.sleep(this.#options.stopGraceMs ?? 5000, grace.signal).catch(() => undefined),
    ]);
    grace.abort();
    // Answered connections end cleanly; one whose client stopped reading is cut.
    for (const connection of this.#connections) connection.endWhenFlushed();
    listener.stop(true);
    for (const connection of this.#connections) connection.terminate();
    this.#connections.clear();
    await this.#abandon();
    this.#options.logger.info({ path: this.#options.path }, "control socket closed");
  }

  /** Removes the socket file if it is still the one this server bound. */
  async #abandon(): Promise<void> {
    const { lstat, unlink } = await import("node:fs/promises");
    const path = this.#options.path;
    try {
      const info = await lstat(path);
      if (this.#socketIno === undefined || info.ino === this.#socketIno) await unlink(path);
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") {
        this.#options.logger.warn({ err: error, path }, "cannot remove the control socket file");
      }
    }
  }
}
