/**
 * errno values the kernel interfaces we use can return, from <asm-generic/errno-base.h> and
 * <asm-generic/errno.h>: the same numbers on x86_64 and arm64 (not on every architecture, but Bun
 * exists for no other Linux we ship to).
 */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ENOLCK: 37,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  EREMOTEIO: 121,
} as const;

/** EWOULDBLOCK is EAGAIN on Linux. */
export const EWOULDBLOCK = Errno.EAGAIN;

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Errno).map(([name, n]) => [n, name]));

/** "EACCES", or "errno 42" for one we do not name, or "unknown errno" when it could not be read. */
export function errnoName(errno: number | undefined): string {
  if (errno === undefined) return "unknown errno";
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}
