import { open } from "node:fs/promises";

/** Configuration and state files are small; anything larger is a mistake or an attack. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/**
 * Reads at most `maxBytes` of `path`. A larger file (or an endless one: `--config /dev/zero`, a
 * FIFO) fails with an Error whose `code` is "EFBIG", after reading no more than `maxBytes + 1`
 * bytes, so memory stays bounded whatever the path names. Other failures are Node's own errors.
 */
export async function readFileCapped(path: string, maxBytes = MAX_CONFIG_FILE_BYTES): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) {
      throw Object.assign(new Error(`${path} is larger than ${maxBytes} bytes`), { code: "EFBIG", path });
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close().catch(() => undefined);
  }
}
