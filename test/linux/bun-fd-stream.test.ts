/**
 * What agent/linux/fd-stream.ts relies on in Bun itself, pinned: if a Bun upgrade changes one of
 * these, this file fails before the button does. Reading fds that Bun did not open has had bugs
 * (https://github.com/oven-sh/bun/issues/30182: an externally made pipe was never drained).
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, test } from "vitest";
import { fdsOn, fdTarget, type KernelFds, kernelFds } from "./kernel-fds.ts";

let kernel: KernelFds;
beforeAll(async () => {
  kernel = await kernelFds();
});

/** O_NONBLOCK and O_CLOEXEC as /proc/self/fdinfo shows them. */
function statusFlags(fd: number): { nonBlocking: boolean; cloexec: boolean } {
  const text = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
  const flags = Number.parseInt(/^flags:\s+(\d+)$/m.exec(text)?.[1] ?? "0", 8);
  return { nonBlocking: (flags & 0o4000) !== 0, cloexec: (flags & 0o2000000) !== 0 };
}

describe("Bun.file(fd).stream() on fds Bun did not open", () => {
  test("a non-blocking eventfd (an anonymous inode, as a GPIO line fd) is read when it becomes readable", async () => {
    const fd = kernel.eventfd({ nonBlocking: true });
    const reader = Bun.file(fd).stream().getReader();
    const read = reader.read();
    kernel.signal(fd, 9n);
    const { value } = await read;
    expect(value && new DataView(value.buffer, value.byteOffset).getBigUint64(0, true)).toBe(9n);
    await reader.cancel();
    kernel.close(fd);
  });

  test("a blocking eventfd is taken for a regular file and fails with ESPIPE", async () => {
    const fd = kernel.eventfd();
    const reader = Bun.file(fd).stream().getReader();
    const error = await reader.read().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ESPIPE" });
    kernel.close(fd);
  });

  test("a pipe made with pipe(2) is drained, blocking or not", async () => {
    for (const nonBlocking of [false, true]) {
      const [readEnd, writeEnd] = kernel.pipe({ nonBlocking });
      const reader = Bun.file(readEnd).stream().getReader();
      const read = reader.read();
      kernel.write(writeEnd, new Uint8Array([1, 2, 3]));
      expect((await read).value).toEqual(new Uint8Array([1, 2, 3]));
      kernel.close(writeEnd);
      expect((await reader.read()).done).toBe(true);
      kernel.close(readEnd);
    }
  });

  test("getReader() dup()s the fd at once, non-blocking and close-on-exec", async () => {
    const fd = kernel.eventfd({ nonBlocking: true });
    const target = fdTarget(fd) ?? "";
    const before = fdsOn(target);
    const reader = Bun.file(fd).stream().getReader();
    const copies = fdsOn(target).filter((n) => !before.includes(n));
    expect(copies).toHaveLength(1);
    expect(statusFlags(copies[0] ?? -1)).toEqual({ nonBlocking: true, cloexec: true });
    await reader.cancel();
    kernel.close(fd);
  });
});
