/**
 * The buses a display or LED driver talks through. Each has a real implementation on the kernel's
 * own interfaces (/dev/i2c-N, /dev/spidevB.C, the GPIO character device) and, in tests and
 * `display preview`, a simulator of the chip on the other end that decodes what was sent.
 * Drivers receive a bus; they never open devices themselves.
 */

/** One I2C adapter (`/dev/i2c-N`). */
export interface I2CBus {
  /** Writes `data` to the 7-bit address `address` as one I2C write transaction. */
  write(address: number, data: Uint8Array): Promise<void>;
  /** Whether a device acknowledges `address` (a zero-length write or a one-byte read). */
  probe(address: number): Promise<boolean>;
  close(): Promise<void>;
}

/** One SPI device (`/dev/spidevB.C`), transmit-only: the panels we drive never answer on MISO. */
export interface SpiBus {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export type Edge = "rising" | "falling";

/** One GPIO line, requested as an output or an input. */
export interface GpioLine {
  /**
   * 0 or 1: the logical value. With a line requested active-low the kernel inverts it, so `set(1)`
   * drives the pin low; drivers write what they mean ("on") and never invert themselves.
   */
  set(value: 0 | 1): Promise<void>;
  get(): Promise<0 | 1>;
  /**
   * Calls `listener` for each edge (inputs requested with edge detection); returns a function that
   * stops listening. `at` is the edge's time in epoch ms (the kernel's timestamp, on its realtime
   * clock), comparable with Clock.now().
   */
  watch(listener: (edge: Edge, at: number) => void): () => void;
  close(): Promise<void>;
}
