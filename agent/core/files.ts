import type { Stats } from "node:fs";

/** Configuration and state files are small; anything larger is a mistake or an attack. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/**
 * Reads at most `maxBytes` of `path`. A larger file (or an endless one: `--config /dev/zero`, a
 * FIFO fed forever) fails with an Error whose `code` is "EFBIG", after reading about `maxBytes`
 * bytes, so memory stays bounded whatever the path names. Other failures are the system's own
 * errors with their `code` (ENOENT, EACCES, EISDIR…).
 *
 * Through Bun's own file reader rather than node:fs: these files are read at every start, and
 * loading node:fs's JavaScript layer costs a cached `get-token` more than the read itself.
 */
export async function readFileCapped(path: string, maxBytes = MAX_CONFIG_FILE_BYTES): Promise<Buffer> {
  const bytes = await Bun.file(path)
    .slice(0, maxBytes + 1)
    .bytes();
  // A device or a pipe may give more than the slice asked for: the length is what counts.
  if (bytes.length > maxBytes) {
    throw Object.assign(new Error(`${path} is larger than ${maxBytes} bytes`), { code: "EFBIG", path });
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * stat(2), following links, through Bun's file API: node:fs's Stats (mode, ino, dev, size, mtimeMs,
 * isDirectory()) and its errors with `code` (ENOENT, ENOTDIR, EACCES), without loading node:fs,
 * which costs a cached `get-token` more than the stat (see readFileCapped).
 */
export function stat(path: string): Promise<Stats> {
  return Bun.file(path).stat();
}
