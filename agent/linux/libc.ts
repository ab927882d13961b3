/**
 * The libc calls entratool makes through bun:ffi (no native addons: Bun 1.4 refuses the NAN addons
 * onoff, i2c-bus and spi-device, and a compiled binary cannot embed them): the token store's flock(2) locks
 * and the display buses' device I/O. An interface, so that each user receives it and tests can
 * hand in a fake that plays the kernel's part.
 *
 * Every call returns what the C function returns (-1 on failure); `errno()` is read right after,
 * on the same thread, before any other call can change it.
 */
export interface Libc {
  /** open(2) without O_CREAT (device nodes only). Returns the fd or -1. */
  open(path: string, flags: number): number;
  close(fd: number): number;
  /** read(2) into the whole of `buffer`. Returns the byte count or -1. */
  read(fd: number, buffer: Uint8Array): number;
  /** write(2) of the whole of `data`. Returns the byte count or -1. */
  write(fd: number, data: Uint8Array): number;
  /**
   * ioctl(2). `arg` is a pointer to the struct (a Uint8Array, passed by address) or an integer
   * passed by value (I2C_SLAVE takes the address itself).
   */
  ioctl(fd: number, request: number, arg: Uint8Array | number): number;
  /** fcntl(2) with an int argument (F_GETFL/F_SETFL). */
  fcntl(fd: number, command: number, arg: number): number;
  /** flock(2) (LOCK_EX, LOCK_NB, LOCK_UN): the store's cross-process locks. Returns 0 or -1. */
  flock(fd: number, operation: number): number;
  /**
   * getsockopt(2): `value` is the option's buffer, `length` a 4-byte socklen_t (native byte order)
   * holding its size on the way in and the size written on the way out. Returns 0 or -1. Optional,
   * so that fakes made for the buses need not have it; openLibc always binds it.
   */
  getsockopt?(fd: number, level: number, name: number, value: Uint8Array, length: Uint8Array): number;
  /** errno of the calling thread; undefined when it cannot be read. */
  errno(): number | undefined;
}

/** Binds libc with bun:ffi. ioctl and fcntl are variadic in C; on Linux x86_64 and arm64 an
 * integer or pointer variadic argument travels in the same register as a fixed one, so binding
 * them with a fixed third argument is sound there. */
export async function openLibc(path = "libc.so.6"): Promise<Libc> {
  const { dlopen, FFIType, read } = await import("bun:ffi");
  const { symbols } = dlopen(path, {
    open: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getsockopt: {
      args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
      returns: FFIType.i32,
    },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
  const encoder = new TextEncoder();
  return {
    open: (file, flags) => symbols.open(encoder.encode(`${file}\0`), flags),
    close: (fd) => symbols.close(fd),
    // A zero-length TypedArray has no backing store to point at; the kernel never reads it then.
    read: (fd, buffer) => Number(symbols.read(fd, buffer.length === 0 ? null : buffer, buffer.length)),
    write: (fd, data) => Number(symbols.write(fd, data.length === 0 ? null : data, data.length)),
    ioctl: (fd, request, arg) => symbols.ioctl(fd, request, arg),
    fcntl: (fd, command, arg) => symbols.fcntl(fd, command, arg),
    flock: (fd, operation) => symbols.flock(fd, operation),
    getsockopt: (fd, level, name, value, length) => symbols.getsockopt(fd, level, name, value, length),
    errno: () => {
      const pointer = symbols.__errno_location();
      return pointer === null ? undefined : read.i32(pointer, 0);
    },
  };
}

// <asm-generic/fcntl.h>: the same values on x86_64 and arm64 (not on 32-bit ARM, which Bun lacks).
export const O_RDONLY = 0;
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
/** Children we spawn must not inherit a bus, a GPIO line or a lock. */
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;
/** dup(2) through fcntl, the copy close-on-exec: a second owner of the same open file. */
export const F_DUPFD_CLOEXEC = 1030;

/**
 * libc, loaded on first use, once per owner (no module-level state), so that importing a user of
 * it costs nothing and works where bun:ffi is absent. A failed load is not cached: a later call
 * retries. `unavailable` turns the failure into the owner's own error (a bus error, a store error).
 */
export class LazyLibc {
  readonly #path: string;
  readonly #unavailable: (cause: unknown, path: string) => Error;
  #libc: Promise<Libc> | undefined;

  constructor(options: {
    readonly libc?: Libc | undefined;
    readonly path?: string | undefined;
    readonly unavailable: (cause: unknown, path: string) => Error;
  }) {
    this.#path = options.path ?? "libc.so.6";
    this.#unavailable = options.unavailable;
    this.#libc = options.libc === undefined ? undefined : Promise.resolve(options.libc);
  }

  get(): Promise<Libc> {
    this.#libc ??= openLibc(this.#path).catch((error: unknown) => {
      this.#libc = undefined;
      throw this.#unavailable(error, this.#path);
    });
    return this.#libc;
  }
}
