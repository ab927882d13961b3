/**
 * What a chip's memory holds at power-on, as far as a test can tell: undefined, so noise; seeded,
 * so every run sees the same. A 32-bit linear congruential generator (Numerical Recipes
 * constants), the top byte of each state. A driver that leaves part of its first frame unwritten
 * shows the noise, as a real panel shows snow.
 */
export function noise(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}
