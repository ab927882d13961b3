/**
 * Real kernel objects for the tests of fd watching: pipes, eventfds and socket pairs made with
 * bun:ffi, the calls that feed them, and what /proc/self/fd says about who holds them. (The
 * agent's own libc binding, agent/linux/libc.ts, has no reason to create these.)
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const AF_UNIX = 1;
const SOCK_STREAM = 1;

interface KernelCalls {
  pipe2(fds: Int32Array, flags: number): number;
  eventfd(initial: number, flags: number): number;
  socketpair(domain: number, type: number, protocol: number, fds: Int32Array): number;
  write(fd: number, data: Uint8Array): number;
  close(fd: number): number;
}

/** The calls, bound on first use (importing this module needs no bun:ffi). */
let bound: KernelCalls | undefined;

async function calls(): Promise<KernelCalls> {
  if (bound !== undefined) return bound;
  const { dlopen, FFIType } = await import("bun:ffi");
  const { symbols } = dlopen("libc.so.6", {
    pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    eventfd: { args: [FFIType.u32, FFIType.i32], returns: FFIType.i32 },
    socketpair: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
  bound = {
    pipe2: (fds, flags) => symbols.pipe2(fds, flags),
    eventfd: (initial, flags) => symbols.eventfd(initial, flags),
    socketpair: (domain, type, protocol, fds) => symbols.socketpair(domain, type, protocol, fds),
    write: (fd, data) => Number(symbols.write(fd, data, data.length)),
    close: (fd) => symbols.close(fd),
  };
  return bound;
}

/** The real kernel, for tests: make fds, write into them, close them. */
export interface KernelFds {
  /** A pipe, blocking unless asked; [read end, write end]. */
  pipe(options?: { nonBlocking?: boolean }): [number, number];
  /** An eventfd (a counter: a write adds, a read returns and clears it), blocking unless asked. */
  eventfd(options?: { nonBlocking?: boolean }): number;
  /** A connected pair of AF_UNIX stream sockets. */
  socketPair(): [number, number];
  /** write(2) of all of `data`; throws unless the kernel took every byte. */
  write(fd: number, data: Uint8Array): void;
  /** Adds `n` to an eventfd's counter. */
  signal(fd: number, n?: bigint): void;
  close(fd: number): void;
}

export async function kernelFds(): Promise<KernelFds> {
  const c = await calls();
  const flags = (nonBlocking: boolean | undefined) => (nonBlocking === true ? O_NONBLOCK : 0) | O_CLOEXEC;
  const pair = (result: number, fds: Int32Array, what: string): [number, number] => {
    const [a, b] = fds;
    if (result !== 0 || a === undefined || b === undefined) throw new Error(`${what} failed`);
    return [a, b];
  };
  const write = (fd: number, data: Uint8Array): void => {
    const written = c.write(fd, data);
    if (written !== data.length) throw new Error(`write(${fd}) took ${written} of ${data.length} bytes`);
  };
  return {
    pipe: (options = {}) => {
      const fds = new Int32Array(2);
      return pair(c.pipe2(fds, flags(options.nonBlocking)), fds, "pipe2");
    },
    eventfd: (options = {}) => {
      const fd = c.eventfd(0, flags(options.nonBlocking));
      if (fd < 0) throw new Error("eventfd failed");
      return fd;
    },
    socketPair: () => {
      const fds = new Int32Array(2);
      return pair(c.socketpair(AF_UNIX, SOCK_STREAM | O_CLOEXEC, 0, fds), fds, "socketpair");
    },
    write,
    signal: (fd, n = 1n) => write(fd, new Uint8Array(new BigUint64Array([n]).buffer)),
    close: (fd) => {
      if (c.close(fd) !== 0) throw new Error(`close(${fd}) failed`);
    },
  };
}

/** What /proc/self/fd/<fd> points at ("pipe:[1234]", "anon_inode:[eventfd]"), or undefined. */
export function fdTarget(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** This process's fds, each with what it points at. */
export function openFds(): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync("/proc/self/fd")) {
    const target = fdTarget(Number(name));
    if (target !== undefined) fds.set(Number(name), target);
  }
  return fds;
}

/** The fds of this process on `target`, optionally only those open for reading (a pipe's read ends). */
export function fdsOn(target: string, access?: "read"): number[] {
  return [...openFds()]
    .filter(([fd, t]) => t === target && (access === undefined || accessMode(fd) === 0))
    .map(([fd]) => fd);
}

/** O_ACCMODE bits of an open fd (0 read, 1 write, 2 both), from /proc/self/fdinfo. */
function accessMode(fd: number): number | undefined {
  try {
    const flags = /^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1];
    return flags === undefined ? undefined : Number.parseInt(flags, 8) & 3;
  } catch {
    return undefined;
  }
}
