import type { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import type { Hd44780Simulator } from "../../../display/drivers/hd44780/sim.ts";

/**
 * PCF8574 bytes written by hand, independently of the driver, to drive the simulator in its own
 * tests: P0=RS, P1=R/W, P2=E, P3=backlight, P4..P7=DB4..DB7.
 */
export const RS = 0x01;
export const RW = 0x02;
export const E = 0x04;
export const BL = 0x08;

/** One nibble: RS and data set with E low, E high, E low. */
export function nibble(value: number, rs = false): number[] {
  const pins = ((value & 0x0f) << 4) | BL | (rs ? RS : 0);
  return [pins, pins | E, pins];
}

export function instruction(value: number): number[] {
  return [...nibble(value >> 4), ...nibble(value & 0x0f)];
}

export function data(value: number): number[] {
  return [...nibble(value >> 4, true), ...nibble(value & 0x0f, true)];
}

export function text(chars: string): number[] {
  return [...chars].flatMap((char) => data(char.charCodeAt(0)));
}

export async function send(sim: Hd44780Simulator, bytes: readonly number[]): Promise<void> {
  await sim.write(sim.address, Uint8Array.from(bytes));
}

/** Figure 24 by hand: 0x3, 0x3, 0x3, 0x2, then 4-bit 2-line Function Set, display on, clear. */
export async function initByHand(
  sim: Hd44780Simulator,
  clock: VirtualClock,
  functionSet = 0x28,
): Promise<void> {
  await send(sim, [BL]);
  await clock.sleep(41);
  await send(sim, nibble(0x3));
  await clock.sleep(4.2);
  await send(sim, nibble(0x3));
  await clock.sleep(0.11);
  await send(sim, [...nibble(0x3), ...nibble(0x2), ...instruction(functionSet), ...instruction(0x0c)]);
  await send(sim, instruction(0x01));
  await clock.sleep(2.2);
}
