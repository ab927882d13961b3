import { describe, expect, test } from "vitest";
import {
  Ssd1306Simulator,
  Ssd1306SimulatorError,
  type Ssd1306SimulatorErrorCode,
} from "../../../display/drivers/ssd1306/sim.ts";
import type { Bitmap } from "../../../display/render/bitmap.ts";

/**
 * The simulator driven by bytes written by hand from the datasheet, independently of the driver:
 * 0x00 starts a command stream, 0x40 a data stream, 0x80/0xC0 carry a single byte (Co=1).
 */
const CMD = 0x00;
const DATA = 0x40;

async function send(sim: Ssd1306Simulator, bytes: readonly number[]): Promise<void> {
  await sim.write(sim.address, Uint8Array.from(bytes));
}

/** The minimum that lights a module: charge pump on, then display on; upright (A1, C8). */
async function powerUp(sim: Ssd1306Simulator): Promise<void> {
  await send(sim, [CMD, 0x8d, 0x14, 0xa1, 0xc8, 0xaf]);
}

async function rejection(promise: Promise<unknown>): Promise<Ssd1306SimulatorErrorCode> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof Ssd1306SimulatorError))
    throw new Error(`expected a rejection, got ${String(error)}`);
  return error.code;
}

/** Positions of lit pixels, for short assertions. */
function lit(bitmap: Bitmap): Array<[number, number]> {
  const on: Array<[number, number]> = [];
  for (let y = 0; y < bitmap.height; y++)
    for (let x = 0; x < bitmap.width; x++) if (bitmap.get(x, y)) on.push([x, y]);
  return on;
}

describe("Ssd1306Simulator: power and the glass", () => {
  test("power-on RAM is noise, but the glass stays dark until the display is switched on", async () => {
    const sim = new Ssd1306Simulator();
    expect(lit(sim.ram()).length).toBeGreaterThan(1000);
    expect(lit(sim.pixels())).toEqual([]);
    expect(sim.state.lit).toBe(false);
  });

  test("display on without the charge pump leaves the glass dark; 8D 14 then AF lights it", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await send(sim, [CMD, 0xa5, 0xaf]);
    expect(sim.state).toMatchObject({ displayOn: true, chargePump: false, lit: false });
    expect(lit(sim.pixels())).toEqual([]);
    // Enabling the pump while on is not enough: VCC was absent when the panel was switched on.
    await send(sim, [CMD, 0x8d, 0x14]);
    expect(sim.state.lit).toBe(false);
    await send(sim, [CMD, 0xae, 0xaf]);
    expect(sim.state.lit).toBe(true);
    expect(lit(sim.pixels()).length).toBe(128 * 64);
    // Display off (AE) or the pump off (8D 10) darkens it again.
    await send(sim, [CMD, 0x8d, 0x10]);
    expect(lit(sim.pixels())).toEqual([]);
  });

  test("entire display on (A5) ignores RAM; invert (A7) lights what RAM leaves off", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await powerUp(sim);
    await send(sim, [CMD, 0x20, 0x00, 0x21, 0, 0, 0x22, 0, 0]);
    await send(sim, [DATA, 0x01]);
    expect(lit(sim.pixels())).toEqual([[0, 0]]);
    await send(sim, [CMD, 0xa7]);
    expect(lit(sim.pixels()).length).toBe(128 * 64 - 1);
    expect(sim.pixels().get(0, 0)).toBe(false);
    await send(sim, [CMD, 0xa6, 0xa5]);
    expect(lit(sim.pixels()).length).toBe(128 * 64);
    await send(sim, [CMD, 0xa4, 0xae]);
    expect(lit(sim.pixels())).toEqual([]);
  });

  test("segment remap and COM scan direction place column 0, row 0 in each corner of the glass", async () => {
    const cases = [
      [
        [0xa1, 0xc8],
        [0, 0],
      ],
      [
        [0xa0, 0xc8],
        [127, 0],
      ],
      [
        [0xa1, 0xc0],
        [0, 63],
      ],
      [
        [0xa0, 0xc0],
        [127, 63],
      ],
    ] as const;
    for (const [commands, corner] of cases) {
      const sim = new Ssd1306Simulator({ ram: "blank" });
      await send(sim, [CMD, 0x8d, 0x14, ...commands, 0xaf, 0x20, 0x00, 0x21, 0, 127, 0x22, 0, 7]);
      await send(sim, [DATA, 0x01]);
      expect(lit(sim.pixels())).toEqual([corner]);
    }
  });

  test("start line and display offset move RAM rows up the glass; sequential COM pins interleave rows", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await powerUp(sim);
    // RAM row 1 (bit 1 of page 0) in column 5.
    await send(sim, [CMD, 0x20, 0x00, 0x21, 5, 5, 0x22, 0, 0]);
    await send(sim, [DATA, 0x02]);
    expect(lit(sim.pixels())).toEqual([[5, 1]]);
    await send(sim, [CMD, 0x41]);
    expect(lit(sim.pixels())).toEqual([[5, 0]]);
    await send(sim, [CMD, 0x40, 0xd3, 1]);
    expect(lit(sim.pixels())).toEqual([[5, 0]]);
    await send(sim, [CMD, 0xd3, 0, 0xda, 0x02]);
    expect(lit(sim.pixels())).toEqual([[5, 2]]);
  });
});

describe("Ssd1306Simulator: GDDRAM addressing", () => {
  test("horizontal mode fills the column window left to right, then the next page, then wraps", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await send(sim, [CMD, 0x20, 0x00, 0x21, 10, 11, 0x22, 2, 3]);
    await send(sim, [DATA, 0x01, 0x02, 0x04, 0x08, 0x80]);
    const ram = sim.ram();
    // The fifth byte wrapped back to column 10 of page 2 and replaced the first.
    expect(lit(ram)).toEqual([
      [11, 17],
      [10, 23],
      [10, 26],
      [11, 27],
    ]);
    expect(sim.state).toMatchObject({ column: 11, page: 2 });
  });

  test("vertical mode goes down the page window, then to the next column", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await send(sim, [CMD, 0x20, 0x01, 0x21, 3, 4, 0x22, 6, 7]);
    await send(sim, [DATA, 0x01, 0x01, 0x01]);
    expect(lit(sim.ram())).toEqual([
      [3, 48],
      [4, 48],
      [3, 56],
    ]);
    expect(sim.state).toMatchObject({ column: 4, page: 7 });
  });

  test("page mode takes the page from B0-B7 and the column in two nibbles, and wraps within the page", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await send(sim, [CMD, 0xb3, 0x0f, 0x17]);
    expect(sim.state).toMatchObject({ mode: "page", column: 0x7f, page: 3 });
    await send(sim, [DATA, 0xff, 0x01]);
    expect(lit(sim.ram())).toEqual([
      [0, 24],
      [127, 24],
      [127, 25],
      [127, 26],
      [127, 27],
      [127, 28],
      [127, 29],
      [127, 30],
      [127, 31],
    ]);
    expect(sim.state).toMatchObject({ column: 1, page: 3 });
  });

  test("Co=1 control bytes carry one byte each and may split a command from its parameter", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await send(sim, [0x80, 0x81, 0x80, 0x42, 0x80, 0x20, 0x80, 0x00]);
    expect(sim.contrast).toBe(0x42);
    await send(sim, [0x80, 0x21, 0x80, 0, 0x80, 1, 0x80, 0x22, 0x80, 0, 0x80, 0, 0xc0, 0x01, 0x40, 0x02]);
    // The Co=0 data control byte streams the rest: the second byte goes to the next column.
    expect(lit(sim.ram())).toEqual([
      [0, 0],
      [1, 1],
    ]);
  });

  test("counts bytes, transactions, command bytes, data bytes and data bursts", async () => {
    const sim = new Ssd1306Simulator();
    await send(sim, [CMD, 0x20, 0x00, 0x21, 0, 127, 0x22, 0, 7]);
    await send(sim, [DATA, 1, 2, 3]);
    await send(sim, [0xc0, 4, 0xc0, 5, 0x80, 0xe3, 0xc0, 6]);
    expect(sim.stats).toEqual({
      bytes: 9 + 4 + 8,
      transactions: 3,
      commandBytes: 8 + 1,
      dataBytes: 6,
      bursts: 3,
    });
    sim.resetStats();
    expect(sim.stats.bytes).toBe(0);
  });
});

describe("Ssd1306Simulator: what the chip would not accept", () => {
  const addressed = [CMD, 0x20, 0x00, 0x21, 0, 127, 0x22, 0, 7];

  test.each<[string, number[][], Ssd1306SimulatorErrorCode]>([
    ["an unknown command", [[CMD, 0x24]], "E_UNKNOWN_COMMAND"],
    ["a COM scan byte other than C0/C8", [[CMD, 0xc4]], "E_UNKNOWN_COMMAND"],
    ["a parameter missing at the end of a command stream", [[CMD, 0xae, 0x81]], "E_TRUNCATED"],
    ["a window missing its end", [[CMD, 0x20, 0x00, 0x21, 0]], "E_TRUNCATED"],
    ["data while a command waits for its parameter", [[0x80, 0x81, 0xc0, 0x00]], "E_TRUNCATED"],
    ["a control byte with low bits set", [[0x01, 0xaf]], "E_CONTROL"],
    ["a Co=1 control byte with nothing after it", [[0x80]], "E_CONTROL"],
    ["data before any addressing", [[DATA, 0xff]], "E_NOT_ADDRESSED"],
    [
      "data with only a page set in page mode",
      [
        [CMD, 0xb0, 0x00],
        [DATA, 0xff],
      ],
      "E_NOT_ADDRESSED",
    ],
    ["a column window past 127", [[CMD, 0x20, 0x00, 0x21, 0, 128]], "E_RANGE"],
    ["a column window ending before it starts", [[CMD, 0x20, 0x00, 0x21, 9, 8]], "E_RANGE"],
    ["a page window past 7", [[CMD, 0x20, 0x00, 0x22, 0, 8]], "E_RANGE"],
    ["a page-mode column past 127", [[CMD, 0x18]], "E_RANGE"],
    ["a window in page mode", [[CMD, 0x21, 0, 127]], "E_MODE"],
    ["a page-mode page in horizontal mode", [[CMD, 0x20, 0x00, 0xb0]], "E_MODE"],
    ["addressing mode 11b", [[CMD, 0x20, 0x03]], "E_PARAMETER"],
    ["a multiplex ratio below 16", [[CMD, 0xa8, 14]], "E_PARAMETER"],
    ["a charge pump byte other than 0x10/0x14", [[CMD, 0x8d, 0x15]], "E_PARAMETER"],
    ["a COM pins byte without bit 1", [[CMD, 0xda, 0x10]], "E_PARAMETER"],
    ["a zero pre-charge phase", [[CMD, 0xd9, 0xf0]], "E_PARAMETER"],
    ["scrolling switched on", [[CMD, 0x2f]], "E_UNSUPPORTED"],
  ])("rejects %s", async (_, writes, code) => {
    const sim = new Ssd1306Simulator();
    const last = writes.at(-1) ?? [];
    for (const write of writes.slice(0, -1)) await send(sim, write);
    expect(await rejection(send(sim, last))).toBe(code);
  });

  test("accepts a full addressed frame, then a frame with a truncated window is refused", async () => {
    const sim = new Ssd1306Simulator();
    await send(sim, addressed);
    await send(sim, [DATA, ...new Uint8Array(1024)]);
    expect(lit(sim.ram())).toEqual([]);
    expect(await rejection(send(sim, [CMD, 0x21, 0, 127, 0x22, 0]))).toBe("E_TRUNCATED");
  });

  test("does not acknowledge another address, and refuses writes once closed", async () => {
    const sim = new Ssd1306Simulator({ address: 0x3d });
    expect(await sim.probe(0x3d)).toBe(true);
    expect(await sim.probe(0x3c)).toBe(false);
    expect(await rejection(sim.write(0x3c, Uint8Array.of(CMD, 0xaf)))).toBe("E_NACK");
    await sim.close();
    expect(await sim.probe(0x3d)).toBe(false);
    expect(await rejection(send(sim, [CMD, 0xaf]))).toBe("E_CLOSED");
  });

  test("a refused stream leaves RAM as it was before the refused byte", async () => {
    const sim = new Ssd1306Simulator({ ram: "blank" });
    await send(sim, [CMD, 0x20, 0x00, 0x21, 0, 127, 0x22, 0, 0]);
    // After a Co=1 data byte the next byte is a control byte again, and 0x24 is not one.
    expect(await rejection(send(sim, [0xc0, 0x01, 0x24, 0x02]))).toBe("E_CONTROL");
    expect(lit(sim.ram())).toEqual([[0, 0]]);
  });
});
