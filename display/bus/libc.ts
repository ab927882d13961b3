/** libc for the kernel buses: the shared binding (agent/linux/libc.ts), failing as a BusError. */
import { LazyLibc, type Libc } from "../../agent/linux/libc.ts";
import { BusError } from "./errors.ts";

/** A lazily opened libc (or `libc` itself, a test's fake) whose absence is E_BUS_UNAVAILABLE. */
export function busLibc(libc?: Libc, path?: string): LazyLibc {
  return new LazyLibc({
    libc,
    path,
    unavailable: (cause, libcPath) =>
      new BusError("E_BUS_UNAVAILABLE", { cause, details: { libc: libcPath } }),
  });
}
