/**
 * A Buffer as the `BufferSource` WebCrypto's types ask for. Node Buffers never sit on shared
 * memory, so the cast only narrows the type.
 */
export function bytes(buffer: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(buffer.buffer as ArrayBuffer, buffer.byteOffset, buffer.byteLength);
}
