/**
 * libc for the kernel buses: the shared binding (agent/libc.ts), the flag values they pass, and a
 * loader that turns a missing libc into a BusError.
 */
import { type Libc, openLibc } from "../../agent/libc.ts";
import { BusError } from "./errors.ts";

export type { Libc };

// <asm-generic/fcntl.h>: the same values on x86_64 and arm64 (not on 32-bit ARM, which Bun lacks).
export const O_RDONLY = 0;
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
/** Children we spawn must not inherit a bus or a GPIO line. */
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;

/**
 * Loads libc on first use, once per owner (no module-level state), so that importing a bus costs
 * nothing and works where bun:ffi is absent. A failed load is not cached: a later call retries.
 */
export class LazyLibc {
  readonly #path: string;
  #libc: Promise<Libc> | undefined;

  constructor(libc?: Libc, path = "libc.so.6") {
    this.#path = path;
    this.#libc = libc === undefined ? undefined : Promise.resolve(libc);
  }

  get(): Promise<Libc> {
    this.#libc ??= openLibc(this.#path).catch((error: unknown) => {
      this.#libc = undefined;
      throw new BusError("E_BUS_UNAVAILABLE", { cause: error, details: { libc: this.#path } });
    });
    return this.#libc;
  }
}
