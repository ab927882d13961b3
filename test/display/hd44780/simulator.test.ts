import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import {
  Hd44780Simulator,
  type Hd44780SimulatorErrorCode,
  type Hd44780SimulatorOptions,
} from "../../../display/drivers/hd44780/sim.ts";
import { a00Glyph } from "../../../display/drivers/hd44780/sim-font.ts";
import { BL, data, E, initByHand, instruction, nibble, RS, RW, send, text } from "./wire.ts";

function rig(options: Hd44780SimulatorOptions = {}): { clock: VirtualClock; sim: Hd44780Simulator } {
  const clock = new VirtualClock();
  return { clock, sim: new Hd44780Simulator({ clock, ...options }) };
}

async function ready(
  options: Hd44780SimulatorOptions = {},
): Promise<{ clock: VirtualClock; sim: Hd44780Simulator }> {
  const parts = rig(options);
  await initByHand(parts.sim, parts.clock);
  return parts;
}

async function rejection(promise: Promise<unknown>): Promise<Hd44780SimulatorErrorCode | "resolved"> {
  return promise.then(
    () => "resolved" as const,
    (error: unknown) => (error as { code: Hd44780SimulatorErrorCode }).code,
  );
}

const dots = (rows: readonly number[]): boolean[][] =>
  rows.map((mask) => [0x10, 0x08, 0x04, 0x02, 0x01].map((bit) => (mask & bit) !== 0));

describe("HD44780 simulator: the bus", () => {
  test("acknowledges only its own address", async () => {
    const { sim } = rig({ address: 0x3f });
    expect(await sim.probe(0x3f)).toBe(true);
    expect(await sim.probe(0x27)).toBe(false);
    expect(await rejection(sim.write(0x27, Uint8Array.of(BL)))).toBe("E_NACK");
    await sim.close();
    expect(await sim.probe(0x3f)).toBe(false);
    expect(await rejection(sim.write(0x3f, Uint8Array.of(BL)))).toBe("E_CLOSED");
  });

  test("counts bytes, transactions, transfers, instructions and data writes", async () => {
    const { sim } = await ready();
    const before = sim.stats;
    await send(sim, [...instruction(0x80), ...text("Hi")]);
    const after = sim.stats;
    expect(after.bytes - before.bytes).toBe(18);
    expect(after.transactions - before.transactions).toBe(1);
    expect(after.transfers - before.transfers).toBe(6);
    expect(after.instructions - before.instructions).toBe(1);
    expect(after.dataWrites - before.dataWrites).toBe(2);
  });

  test("a write takes its transfer time at 100 kHz on the clock", async () => {
    const { clock, sim } = rig();
    const start = clock.now();
    await send(sim, [BL, BL, BL, BL, BL, BL, BL, BL, BL]);
    // Address byte + 9 data bytes, 9 bit times each at 100 kHz.
    expect(clock.now() - start).toBeCloseTo(0.9, 3);
  });

  test("the backlight follows P3, and is on after the PCF8574's power-on reset", async () => {
    const { sim } = rig();
    expect(sim.backlight).toBe(true);
    await send(sim, [0x00]);
    expect(sim.backlight).toBe(false);
    await send(sim, [BL]);
    expect(sim.backlight).toBe(true);
  });
});

describe("HD44780 simulator: initialisation", () => {
  test("Figure 24 from power-on: 8-bit until 0x2, then 4-bit after Function Set", async () => {
    const { clock, sim } = rig();
    expect(sim.initialised).toBe(false);
    expect(sim.interfaceBits).toBe(8);
    expect(sim.displayOn).toBe(false);
    await initByHand(sim, clock);
    expect(sim.initialised).toBe(true);
    expect(sim.interfaceBits).toBe(4);
    expect(sim.lineMode).toBe(2);
    expect(sim.font).toBe("5x8");
    expect(sim.displayOn).toBe(true);
    expect(sim.lines()).toEqual(["                ", "                "]);
  });

  test("rejects a transfer during the power-on reset (40 ms)", async () => {
    const { sim } = rig();
    expect(await rejection(send(sim, nibble(0x3)))).toBe("E_BUSY");
  });

  test("rejects an instruction before the init sequence", async () => {
    const { clock, sim } = rig();
    await clock.sleep(50);
    expect(await rejection(send(sim, instruction(0x28)))).toBe("E_NOT_INITIALISED");
  });

  test("rejects data before the init sequence", async () => {
    const { clock, sim } = rig();
    await clock.sleep(50);
    expect(await rejection(send(sim, data(0x41)))).toBe("E_NOT_INITIALISED");
  });

  test("rejects a second 0x3 sooner than 4.1 ms after the first", async () => {
    const { clock, sim } = rig();
    await clock.sleep(50);
    await send(sim, nibble(0x3));
    await clock.sleep(1);
    expect(await rejection(send(sim, nibble(0x3)))).toBe("E_BUSY");
  });

  test("rejects anything but Function Set right after switching to 4 bits", async () => {
    const { clock, sim } = rig();
    await clock.sleep(50);
    await send(sim, nibble(0x3));
    await clock.sleep(5);
    await send(sim, nibble(0x3));
    await clock.sleep(0.2);
    await send(sim, [...nibble(0x3), ...nibble(0x2)]);
    expect(sim.interfaceBits).toBe(4);
    expect(await rejection(send(sim, instruction(0x0c)))).toBe("E_NOT_INITIALISED");
  });

  test("a controller left in 4-bit mode mid-byte garbles an init without the 0x3s", async () => {
    // Misaligned by one nibble (a writer stopped after the high half of Set DDRAM Address): an
    // init that trusts the alignment pairs every nibble with the wrong partner (0x8+0x2, 0x8+0x0,
    // 0xC+0x0, ...), so "OK" lands on the second row as two other characters.
    const { clock, sim } = rig({
      start: { kind: "running", interface: "4-bit", pendingNibble: { rs: false, value: 0x8 } },
    });
    await send(sim, [BL]);
    for (const value of [0x28, 0x0c, 0x01]) {
      await send(sim, instruction(value));
      await clock.sleep(2.2);
    }
    await send(sim, text("OK"));
    expect(sim.lines()).toEqual([" ".repeat(16), `\ufffd\ufffd${" ".repeat(14)}`]);
  });

  test("a controller left in 4-bit mode recovers through 0x3, 0x3, 0x3, 0x2", async () => {
    const { clock, sim } = rig({
      start: {
        kind: "running",
        interface: "4-bit",
        pendingNibble: { rs: true, value: 0x4 },
        text: ["old text"],
      },
    });
    await initByHand(sim, clock);
    await send(sim, [...instruction(0x80), ...text("OK")]);
    expect(sim.lines()).toEqual(["OK              ", "                "]);
    expect(sim.interfaceBits).toBe(4);
    expect(sim.stats.splitPairs).toBeGreaterThan(0);
  });
});

describe("HD44780 simulator: instructions and DDRAM", () => {
  test("rows of a 16x2 sit at 0x00 and 0x40", async () => {
    const { sim } = await ready();
    await send(sim, [...instruction(0xc0), ...text("Hi"), ...instruction(0x80 | 0x0e), ...text("ab")]);
    expect(sim.lines()).toEqual(["              ab", "Hi              "]);
  });

  test("a 20x4 shows 0x00, 0x40, 0x14, 0x54, and the counter runs 0x27 → 0x40", async () => {
    const { sim } = await ready({ columns: 20, rows: 4 });
    await send(sim, [
      ...instruction(0x80),
      ...text("A".repeat(20) + "C".repeat(20) + "B".repeat(20) + "D".repeat(20)),
    ]);
    expect(sim.lines()).toEqual(["A".repeat(20), "B".repeat(20), "C".repeat(20), "D".repeat(20)]);
  });

  test("Entry Mode decrement writes right to left; Clear restores increment and address 0", async () => {
    const { clock, sim } = await ready();
    await send(sim, [...instruction(0x04), ...instruction(0x85), ...text("abc")]);
    expect(sim.lines()[0]).toBe("   cba          ");
    expect(sim.entryMode).toEqual({ increment: false, shift: false });
    await send(sim, instruction(0x01));
    await clock.sleep(2.2);
    expect(sim.lines()[0]).toBe(" ".repeat(16));
    expect(sim.entryMode.increment).toBe(true);
    expect(sim.cursor).toMatchObject({ row: 0, column: 0 });
  });

  test("Clear and Return Home take 1.52 ms (2.16 ms on the slowest oscillator): the next transfer must wait", async () => {
    const { sim } = await ready();
    expect(await rejection(send(sim, [...instruction(0x01), ...text("x")]))).toBe("E_BUSY");
  });

  test("display shift moves the window; Return Home undoes it", async () => {
    const { clock, sim } = await ready();
    await send(sim, [...instruction(0x80), ...text("Hello"), ...instruction(0x18)]);
    expect(sim.lines()[0]).toBe("ello            ");
    await send(sim, instruction(0x02));
    await clock.sleep(2.2);
    expect(sim.lines()[0]).toBe("Hello           ");
  });

  test("display off hides the text, which comes back when switched on", async () => {
    const { sim } = await ready();
    await send(sim, [...instruction(0x80), ...text("Hi"), ...instruction(0x08)]);
    expect(sim.displayOn).toBe(false);
    expect(sim.lines()).toEqual([" ".repeat(16), " ".repeat(16)]);
    await send(sim, instruction(0x0c));
    expect(sim.lines()[0]).toBe(`Hi${" ".repeat(14)}`);
  });

  test("the A00 ROM shows a yen sign for 0x5C and arrows for 0x7E/0x7F", async () => {
    const { sim } = await ready();
    await send(sim, [...instruction(0x80), ...data(0x5c), ...data(0x7e), ...data(0x7f)]);
    expect(sim.lines()[0]?.slice(0, 3)).toBe("\u00a5\u2192\u2190");
  });

  test("CGRAM characters are drawn from CGRAM and named by index in lines()", async () => {
    const { sim } = await ready();
    const heart = [0x00, 0x0a, 0x1f, 0x1f, 0x0e, 0x04, 0x00, 0x00];
    await send(sim, [
      ...instruction(0x40 | (1 * 8)),
      ...heart.flatMap(data),
      ...instruction(0x80),
      ...data(0x01),
    ]);
    expect(sim.lines()[0]?.charAt(0)).toBe("\u2460");
    expect(sim.cellDots(0, 0)).toEqual(dots(heart));
  });

  test("glass: ROM dots per cell, and the cursor underlines the eighth row", async () => {
    const { sim } = await ready();
    await send(sim, [...instruction(0x80), ...text("A"), ...instruction(0x0e)]);
    expect(sim.cellDots(0, 0)).toEqual(dots(a00Glyph(0x41) ?? []));
    expect(sim.cursor).toEqual({ visible: true, blink: false, row: 0, column: 1 });
    expect(sim.cellDots(0, 1)[7]).toEqual([true, true, true, true, true]);
    const glass = sim.glass();
    expect(glass).toHaveLength(16);
    expect(glass[0]).toHaveLength(80);
    // Row 0 of "A" is .###. in the first five dots.
    expect(glass[0]?.slice(0, 5)).toEqual([false, true, true, true, false]);
  });

  test("a blinking cursor lights the whole cell in its on phase", async () => {
    const { sim } = await ready();
    await send(sim, instruction(0x0d));
    expect(sim.cellDots(0, 0, true).flat().every(Boolean)).toBe(true);
    expect(sim.cellDots(0, 0, false).flat().some(Boolean)).toBe(false);
  });
});

describe("HD44780 simulator: timing at 400 kHz", () => {
  /**
   * What a driver relying on bus time alone sends: characters back to back in one write, packed
   * as tightly as the wire allows (RS set once, then E high, E low per nibble: two bytes a latch).
   */
  function burst(chars: string): number[] {
    const bytes = [BL | RS];
    for (const char of chars) {
      const code = char.charCodeAt(0);
      for (const half of [code >> 4, code & 0x0f]) {
        const pins = (half << 4) | BL | RS;
        bytes.push(pins | E, pins);
      }
    }
    return bytes;
  }

  async function home(sim: Hd44780Simulator, clock: VirtualClock): Promise<void> {
    await send(sim, instruction(0x80));
    await clock.sleep(0.1);
  }

  test("at 100 kHz the bus time between latches (180 µs) covers a character even on the slowest oscillator", async () => {
    const { clock, sim } = await ready({ busHz: 100_000 });
    await home(sim, clock);
    await send(sim, burst("Hello"));
    expect(sim.lines()[0]).toBe("Hello".padEnd(16, " "));
  });

  test("at 400 kHz (45 µs between latches) the same burst is rejected on the slowest oscillator", async () => {
    const { clock, sim } = await ready({ busHz: 400_000 });
    await home(sim, clock);
    expect(await rejection(send(sim, burst("Hello")))).toBe("E_BUSY");
  });

  test("at 400 kHz a burst passes only on a typical 270 kHz module: by luck, which the default catches", async () => {
    const { clock, sim } = await ready({ busHz: 400_000, oscillatorHz: 270_000 });
    await home(sim, clock);
    await send(sim, burst("Hello"));
    expect(sim.lines()[0]).toBe("Hello".padEnd(16, " "));
  });

  test("at 400 kHz, one character a write with a 100 µs wait after each passes", async () => {
    const { clock, sim } = await ready({ busHz: 400_000 });
    for (const part of [instruction(0x80), ...[..."Hello"].map((c) => text(c))]) {
      await send(sim, part);
      await clock.sleep(0.1);
    }
    expect(sim.lines()[0]).toBe("Hello".padEnd(16, " "));
  });

  test("Clear takes 2.16 ms on the slowest oscillator: 1.9 ms is too short, 2.2 ms enough", async () => {
    const short = await ready({ busHz: 400_000 });
    await send(short.sim, instruction(0x01));
    await short.clock.sleep(1.9);
    expect(await rejection(send(short.sim, text("x")))).toBe("E_BUSY");
    const enough = await ready({ busHz: 400_000 });
    await send(enough.sim, instruction(0x01));
    await enough.clock.sleep(2.2);
    await send(enough.sim, text("x"));
    expect(enough.sim.lines()[0]?.startsWith("x")).toBe(true);
  });
});

describe("HD44780 simulator: what the chip would not accept", () => {
  test("an E pulse with R/W=1 (a read)", async () => {
    const { sim } = await ready();
    expect(await rejection(send(sim, [BL | RW, BL | RW | E, BL | RW]))).toBe("E_READ");
  });

  test("RS changed on the byte that raises E (no setup time)", async () => {
    const { sim } = await ready();
    expect(await rejection(send(sim, [BL, BL | RS | E, BL | RS]))).toBe("E_TIMING");
  });

  test("data changed on the byte that lowers E (no hold time)", async () => {
    const { sim } = await ready();
    expect(await rejection(send(sim, [BL | 0x40, BL | 0x40 | E, BL | 0x50]))).toBe("E_TIMING");
  });

  test("a nibble without its partner (an instruction missing its low half before data)", async () => {
    const { sim } = await ready();
    expect(await rejection(send(sim, [...nibble(0x8), ...text("A")]))).toBe("E_NIBBLE_PAIR");
  });

  test.each(["28", "3f", "68", "7f"])("Set DDRAM Address 0x%s is outside the 2-line map", async (address) => {
    const { sim } = await ready();
    expect(await rejection(send(sim, instruction(0x80 | Number.parseInt(address, 16))))).toBe("E_ADDRESS");
  });

  test("in 1-line mode the map is 0x00-0x4F and only the first row is driven", async () => {
    const { clock, sim } = rig();
    await initByHand(sim, clock, 0x20);
    expect(sim.lineMode).toBe(1);
    await send(sim, [...instruction(0x80 | 0x45), ...text("x"), ...instruction(0x80), ...text("one")]);
    expect(sim.lines()).toEqual([`one${" ".repeat(13)}`, " ".repeat(16)]);
    expect(await rejection(send(sim, instruction(0x80 | 0x50)))).toBe("E_ADDRESS");
  });
});
