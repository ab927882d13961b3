import type { Libc } from "../../../agent/linux/libc.ts";

/** What a fake device returns: a result (>= 0) or a failure with its errno. */
export type FakeResult = number | { readonly errno: number };

/** One device node of the fake kernel; a missing handler fails ENOTTY (ioctl) or EINVAL. */
export interface FakeDevice {
  ioctl?(request: number, arg: Uint8Array | number): FakeResult;
  write?(data: Uint8Array): FakeResult;
  read?(buffer: Uint8Array): FakeResult;
}

export interface FakeCall {
  readonly fd: number;
  readonly call: "ioctl" | "write" | "read" | "fcntl" | "flock" | "close";
  readonly request?: number;
  /** A copy of the bytes written, or the integer ioctl argument. */
  readonly arg?: Uint8Array | number;
}

/** fcntl commands the fake answers itself (<asm-generic/fcntl.h>). */
const F_GETFL = 3;
const F_SETFL = 4;
const F_DUPFD_CLOEXEC = 1030;

/**
 * A stand-in for libc that plays the kernel: device nodes by path, fds, errno. It lets the tests
 * check what the buses send and how they react to each errno, on a machine with no I2C, SPI or
 * GPIO hardware (the ioctl numbers and struct layouts are checked against the headers separately).
 *
 * Given the real libc, it can also play a device on a real fd (`attachReal`): a pipe's read end
 * standing for a GPIO line request, say, so that code which waits on the fd itself (the edge
 * watcher, through Bun's event loop) meets a real kernel object.
 */
export class FakeLibc implements Libc {
  readonly devices = new Map<string, FakeDevice | { readonly openErrno: number }>();
  readonly calls: FakeCall[] = [];
  readonly open = (path: string, _flags: number): number => {
    const device = this.devices.get(path);
    if (device === undefined) return this.#fail(2);
    if ("openErrno" in device) return this.#fail(device.openErrno);
    return this.attach(device);
  };
  readonly #fds = new Map<number, FakeDevice>();
  readonly #flags = new Map<number, number>();
  /** The real libc, and the fds it serves (apart from their ioctls). */
  readonly #real: Libc | undefined;
  readonly #realFds = new Set<number>();
  #nextFd: number;
  #errno: number | undefined;

  constructor(options: { readonly real?: Libc } = {}) {
    this.#real = options.real;
    // Fake fds far above the real ones, so that a fake number never shadows a real fd.
    this.#nextFd = options.real === undefined ? 3 : 100_000;
  }

  /** Gives `device` a new fd, as the kernel does for a GPIO line request. */
  attach(device: FakeDevice): number {
    while (this.#fds.has(this.#nextFd)) this.#nextFd++;
    const fd = this.#nextFd++;
    this.#fds.set(fd, device);
    return fd;
  }

  /**
   * Plays `device` on `fd`, a real fd: its ioctls go to `device`, its fcntl, read, write and close
   * to the real kernel (a copy made with F_DUPFD_CLOEXEC plays the same device). Needs the real libc.
   */
  attachReal(fd: number, device: FakeDevice): number {
    if (this.#real === undefined) throw new Error("FakeLibc needs the real libc for real fds");
    if (this.#fds.has(fd)) throw new Error(`fd ${fd} is already attached`);
    this.#fds.set(fd, device);
    this.#realFds.add(fd);
    return fd;
  }

  get openFds(): number[] {
    return [...this.#fds.keys()];
  }

  flagsOf(fd: number): number | undefined {
    const real = this.#realFor(fd);
    if (real !== undefined) {
      const flags = real.fcntl(fd, F_GETFL, 0);
      return flags < 0 ? undefined : flags;
    }
    return this.#flags.get(fd);
  }

  close(fd: number): number {
    this.calls.push({ fd, call: "close" });
    const real = this.#realFor(fd);
    if (real !== undefined) {
      this.#fds.delete(fd);
      this.#realFds.delete(fd);
      return this.#fromReal(real, real.close(fd));
    }
    return this.#fds.delete(fd) ? 0 : this.#fail(9);
  }

  read(fd: number, buffer: Uint8Array): number {
    this.calls.push({ fd, call: "read" });
    const real = this.#realFor(fd);
    if (real !== undefined) return this.#fromReal(real, real.read(fd, buffer));
    const device = this.#fds.get(fd);
    if (device === undefined) return this.#fail(9);
    return this.#result(device.read?.(buffer) ?? { errno: 22 });
  }

  write(fd: number, data: Uint8Array): number {
    this.calls.push({ fd, call: "write", arg: data.slice() });
    const real = this.#realFor(fd);
    if (real !== undefined) return this.#fromReal(real, real.write(fd, data));
    const device = this.#fds.get(fd);
    if (device === undefined) return this.#fail(9);
    return this.#result(device.write?.(data) ?? { errno: 22 });
  }

  ioctl(fd: number, request: number, arg: Uint8Array | number): number {
    this.calls.push({ fd, call: "ioctl", request, arg: typeof arg === "number" ? arg : arg.slice() });
    const device = this.#fds.get(fd);
    if (device === undefined) return this.#fail(9);
    return this.#result(device.ioctl?.(request, arg) ?? { errno: 25 });
  }

  fcntl(fd: number, command: number, arg: number): number {
    this.calls.push({ fd, call: "fcntl", request: command, arg });
    const real = this.#realFor(fd);
    const device = this.#fds.get(fd);
    if (real !== undefined && device !== undefined) {
      const result = this.#fromReal(real, real.fcntl(fd, command, arg));
      if (command === F_DUPFD_CLOEXEC && result >= 0) this.attachReal(result, device);
      return result;
    }
    if (device === undefined) return this.#fail(9);
    if (command === F_GETFL) return this.#flags.get(fd) ?? 2;
    if (command === F_SETFL) {
      this.#flags.set(fd, arg);
      return 0;
    }
    return this.#fail(22);
  }

  /** The buses never lock files; a call here is recorded and fails as an unsupported one (ENOSYS). */
  flock(fd: number, operation: number): number {
    this.calls.push({ fd, call: "flock", arg: operation });
    return this.#fail(38);
  }

  errno(): number | undefined {
    return this.#errno;
  }

  #realFor(fd: number): Libc | undefined {
    return this.#realFds.has(fd) ? this.#real : undefined;
  }

  /** A real call's result, with its errno kept for errno(). */
  #fromReal(real: Libc, result: number): number {
    return result < 0 ? this.#fail(real.errno() ?? 0) : result;
  }

  #result(result: FakeResult): number {
    return typeof result === "number" ? result : this.#fail(result.errno);
  }

  #fail(errno: number): number {
    this.#errno = errno;
    return -1;
  }
}

/** The struct bytes an ioctl or write call carried (fails the test if it carried an integer). */
export function bytesOf(call: FakeCall | undefined): Uint8Array {
  if (!(call?.arg instanceof Uint8Array))
    throw new Error(`expected a byte argument, got ${String(call?.arg)}`);
  return call.arg;
}
