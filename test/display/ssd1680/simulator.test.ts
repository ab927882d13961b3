import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import {
  SSD1680_PANEL_HEIGHT,
  SSD1680_PANEL_WIDTH,
  Ssd1680Simulator,
  Ssd1680SimulatorError,
  type Ssd1680SimulatorErrorCode,
} from "../../../display/drivers/ssd1680/sim.ts";

/**
 * The simulator driven by hand, from the datasheet's command table, independently of the driver.
 */

function rig() {
  const clock = new VirtualClock();
  const sim = new Ssd1680Simulator({ clock, resetMs: 10, fullRefreshMs: 2000, partialRefreshMs: 500 });
  return { clock, sim };
}

async function cmd(sim: Ssd1680Simulator, opcode: number, params: readonly number[] = []): Promise<void> {
  await sim.dc.set(0);
  await sim.spi.write(Uint8Array.of(opcode));
  if (params.length === 0) return;
  await sim.dc.set(1);
  await sim.spi.write(Uint8Array.from(params));
}

async function hardwareReset(sim: Ssd1680Simulator, clock: VirtualClock): Promise<void> {
  await sim.rst.set(0);
  await sim.rst.set(1);
  expect(await sim.busy.get()).toBe(1);
  clock.advance(10);
  expect(await sim.busy.get()).toBe(0);
}

/** Reset and the configuration for the 250x122 glass: full-width window, X then Y incrementing. */
async function configure(sim: Ssd1680Simulator, clock: VirtualClock): Promise<void> {
  await hardwareReset(sim, clock);
  await cmd(sim, 0x12);
  clock.advance(10);
  await cmd(sim, 0x01, [0xf9, 0x00, 0x00]);
  await cmd(sim, 0x11, [0x03]);
  await cmd(sim, 0x44, [0x00, 0x0f]);
  await cmd(sim, 0x45, [0x00, 0x00, 0xf9, 0x00]);
  await cmd(sim, 0x4e, [0x00]);
  await cmd(sim, 0x4f, [0x00, 0x00]);
}

async function rejection(promise: Promise<unknown>): Promise<Ssd1680SimulatorErrorCode> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof Ssd1680SimulatorError))
    throw new Error(`expected a simulator error, got ${String(error)}`);
  return error.code;
}

/** 4000 RAM bytes (16 a row, 250 rows), white except gate `gate`'s first byte (sources 0-7) black. */
function imageWithBlackAt(gate: number): Uint8Array {
  const bytes = new Uint8Array(16 * 250).fill(0xff);
  bytes[gate * 16] = 0x00;
  return bytes;
}

describe("Ssd1680Simulator", () => {
  test("a hardware reset raises BUSY for resetMs of virtual time; the glass starts white", async () => {
    const { sim, clock } = rig();
    await hardwareReset(sim, clock);
    expect(sim.counts.hardwareResets).toBe(1);
    expect(sim.panel().width).toBe(SSD1680_PANEL_WIDTH);
    expect(sim.panel().height).toBe(SSD1680_PANEL_HEIGHT);
    expect(sim.panel().pixels.every((p) => p === 0)).toBe(true);
  });

  test("a full refresh copies B/W RAM to the glass, landscape: gate = x, source 121 - y", async () => {
    const { sim, clock } = rig();
    await configure(sim, clock);
    await cmd(sim, 0x24, [...imageWithBlackAt(5)]);
    await cmd(sim, 0x22, [0xf7]);
    await cmd(sim, 0x20);
    expect(await sim.busy.get()).toBe(1);
    expect(sim.counts).toMatchObject({ fullRefreshes: 1, partialRefreshes: 0 });
    const panel = sim.panel();
    // Sources 0-7 of gate 5 are black: landscape column 5, rows 121 down to 114.
    for (let y = 0; y < SSD1680_PANEL_HEIGHT; y++) expect(panel.get(5, y)).toBe(y >= 114);
    expect(panel.get(4, 121)).toBe(false);
    expect(sim.counts.spiBytes).toBeGreaterThan(4000);
  });

  test("a partial refresh drives only pixels whose new and old RAM differ", async () => {
    const { sim, clock } = rig();
    await configure(sim, clock);
    await cmd(sim, 0x24, [...imageWithBlackAt(5)]);
    // Old RAM says gate 5 is already black: mode 2 leaves it, so the glass stays white there.
    await cmd(sim, 0x4e, [0x00]);
    await cmd(sim, 0x4f, [0x00, 0x00]);
    await cmd(sim, 0x26, [...imageWithBlackAt(5)]);
    await cmd(sim, 0x22, [0xff]);
    await cmd(sim, 0x20);
    expect(sim.counts).toMatchObject({ fullRefreshes: 0, partialRefreshes: 1 });
    expect(sim.panel().get(5, 121)).toBe(false);
    clock.advance(500);
    expect(await sim.busy.get()).toBe(0);
  });

  test("rejects commands while BUSY is high", async () => {
    const { sim } = rig();
    await sim.rst.set(0);
    await sim.rst.set(1);
    expect(await rejection(cmd(sim, 0x12))).toBe("E_BUSY");
  });

  test("rejects SPI while RST is low", async () => {
    const { sim } = rig();
    await sim.rst.set(0);
    expect(await rejection(cmd(sim, 0x12))).toBe("E_IN_RESET");
  });

  test("rejects data before any command, extra data, and truncated parameters", async () => {
    const { sim, clock } = rig();
    await hardwareReset(sim, clock);
    await sim.dc.set(1);
    expect(await rejection(sim.spi.write(Uint8Array.of(0x00)))).toBe("E_NO_COMMAND");
    expect(await rejection(cmd(sim, 0x11, [0x03, 0x03]))).toBe("E_EXTRA_DATA");
    await cmd(sim, 0x45, [0x00]);
    expect(await rejection(cmd(sim, 0x11, [0x03]))).toBe("E_TRUNCATED");
  });

  test("rejects unknown and unmodelled commands, and bad parameters", async () => {
    const { sim, clock } = rig();
    await hardwareReset(sim, clock);
    expect(await rejection(cmd(sim, 0xa5))).toBe("E_UNKNOWN_COMMAND");
    expect(await rejection(cmd(sim, 0x32))).toBe("E_UNSUPPORTED");
    expect(await rejection(cmd(sim, 0x21, [0x03, 0x80]))).toBe("E_PARAMETER");
    expect(await rejection(cmd(sim, 0x10, [0x02]))).toBe("E_PARAMETER");
  });

  test("rejects windows and counters outside RAM, and RAM data past the window", async () => {
    const { sim, clock } = rig();
    await configure(sim, clock);
    expect(await rejection(cmd(sim, 0x44, [0x00, 0x16]))).toBe("E_RANGE");
    expect(await rejection(cmd(sim, 0x45, [0x00, 0x00, 0x28, 0x01]))).toBe("E_RANGE");
    await cmd(sim, 0x44, [0x00, 0x00]);
    await cmd(sim, 0x45, [0x00, 0x00, 0x01, 0x00]);
    await cmd(sim, 0x4e, [0x00]);
    await cmd(sim, 0x4f, [0x00, 0x00]);
    // The window holds two bytes; the third would wrap onto the first.
    expect(await rejection(cmd(sim, 0x24, [0x00, 0x00, 0x00]))).toBe("E_RANGE");
    await cmd(sim, 0x4e, [0x05]);
    expect(await rejection(cmd(sim, 0x24, [0x00]))).toBe("E_RANGE");
  });

  test("refuses a refresh before Driver Output Control since reset", async () => {
    const { sim, clock } = rig();
    await hardwareReset(sim, clock);
    await cmd(sim, 0x22, [0xf7]);
    expect(await rejection(cmd(sim, 0x20))).toBe("E_NOT_CONFIGURED");
  });

  test("deep sleep: BUSY high, everything refused until a hardware reset", async () => {
    const { sim, clock } = rig();
    await configure(sim, clock);
    await cmd(sim, 0x10, [0x01]);
    expect(sim.sleeping).toBe(true);
    clock.advance(60_000);
    expect(await sim.busy.get()).toBe(1);
    expect(await rejection(cmd(sim, 0x12))).toBe("E_SLEEPING");
    await hardwareReset(sim, clock);
    expect(sim.sleeping).toBe(false);
    await cmd(sim, 0x12);
    expect(sim.counts.deepSleeps).toBe(1);
  });

  test("BUSY is an input: the host cannot drive it", async () => {
    const { sim } = rig();
    expect(await rejection(sim.busy.set(0))).toBe("E_DIRECTION");
  });
});
