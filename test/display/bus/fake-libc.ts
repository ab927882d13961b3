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

/**
 * A stand-in for libc that plays the kernel: device nodes by path, fds, errno. It lets the tests
 * check what the buses send and how they react to each errno, on a machine with no I2C, SPI or
 * GPIO hardware (the ioctl numbers and struct layouts are checked against the headers separately).
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
  #nextFd = 3;
  #errno: number | undefined;

  /** Gives `device` a new fd, as the kernel does for a GPIO line request. */
  attach(device: FakeDevice): number {
    const fd = this.#nextFd++;
    this.#fds.set(fd, device);
    return fd;
  }

  get openFds(): number[] {
    return [...this.#fds.keys()];
  }

  flagsOf(fd: number): number | undefined {
    return this.#flags.get(fd);
  }

  close(fd: number): number {
    this.calls.push({ fd, call: "close" });
    return this.#fds.delete(fd) ? 0 : this.#fail(9);
  }

  read(fd: number, buffer: Uint8Array): number {
    this.calls.push({ fd, call: "read" });
    const device = this.#fds.get(fd);
    if (device === undefined) return this.#fail(9);
    return this.#result(device.read?.(buffer) ?? { errno: 22 });
  }

  write(fd: number, data: Uint8Array): number {
    this.calls.push({ fd, call: "write", arg: data.slice() });
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
    if (!this.#fds.has(fd)) return this.#fail(9);
    if (command === 3) return this.#flags.get(fd) ?? 2;
    if (command === 4) {
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
