import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import type { I2CBus } from "../../../display/bus/types.ts";
import {
  Hd44780Display,
  type Hd44780DisplayOptions,
  Hd44780Error,
} from "../../../display/drivers/hd44780/driver.ts";
import { lcdPages } from "../../../display/drivers/hd44780/layout.ts";
import { Hd44780Simulator, type Hd44780StartState } from "../../../display/drivers/hd44780/sim.ts";
import type { Screen } from "../../../display/screens.ts";
import { BL, E, RS, send } from "./wire.ts";

/** A page boundary (3 s) and a whole minute, so page 0 and "15:00" start here. */
const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const EXPIRES = NOW + 900_000;
const URL = "https://microsoft.com/devicelogin";

const code: Screen = {
  kind: "code",
  userCode: "ABCD-EFGH",
  verificationUri: URL,
  expiresAt: EXPIRES,
  qrPayload: URL,
};

interface Rig {
  readonly clock: VirtualClock;
  readonly sim: Hd44780Simulator;
  readonly lcd: Hd44780Display;
}

function rig(
  size: "16x2" | "20x4" = "16x2",
  extra: { start?: Hd44780StartState; backlight?: boolean; busHz?: number; oscillatorHz?: number } = {},
): Rig {
  const [columns, rows] = size === "16x2" ? ([16, 2] as const) : ([20, 4] as const);
  const clock = new VirtualClock(NOW);
  const sim = new Hd44780Simulator({
    clock,
    columns,
    rows,
    ...(extra.start ? { start: extra.start } : {}),
    ...(extra.busHz === undefined ? {} : { busHz: extra.busHz }),
    ...(extra.oscillatorHz === undefined ? {} : { oscillatorHz: extra.oscillatorHz }),
  });
  const options: Hd44780DisplayOptions = { bus: sim, address: 0x27, columns, rows, clock };
  const lcd = new Hd44780Display(
    extra.backlight === undefined ? options : { ...options, backlight: extra.backlight },
  );
  return { clock, sim, lcd };
}

const pad = (rows: readonly string[], columns: number): string[] =>
  rows.map((row) => row.padEnd(columns, " "));

/** Bytes the driver wrote during `action`. */
async function bytesOf(sim: Hd44780Simulator, action: () => Promise<void>): Promise<number> {
  const before = sim.stats.bytes;
  await action();
  return sim.stats.bytes - before;
}

describe("HD44780 driver: initialisation", () => {
  test("from power-on, with the Figure 24 waits on the clock (the simulator rejects shorter ones)", async () => {
    const { clock, sim, lcd } = rig();
    await lcd.init();
    expect(sim.initialised).toBe(true);
    expect(sim.interfaceBits).toBe(4);
    expect(sim.lineMode).toBe(2);
    expect(sim.displayOn).toBe(true);
    expect(sim.cursor).toMatchObject({ visible: false, blink: false });
    expect(sim.entryMode).toEqual({ increment: true, shift: false });
    expect(sim.backlight).toBe(true);
    expect(sim.lines()).toEqual(pad(["", ""], 16));
    expect(clock.sleeps).toEqual(expect.arrayContaining([50, 4.5, 0.15, 2.5, 0.1]));
    // Virtual time only: the whole init is a few tens of ms on the VirtualClock.
    expect(clock.now() - NOW).toBeLessThan(70);
  });

  test.each<[string, Hd44780StartState]>([
    [
      "4-bit, aligned, old text on the glass",
      { kind: "running", interface: "4-bit", text: ["old text", "more"] },
    ],
    [
      "4-bit, half a data byte latched",
      { kind: "running", interface: "4-bit", pendingNibble: { rs: true, value: 0x4 } },
    ],
    [
      "4-bit, half a Clear latched",
      { kind: "running", interface: "4-bit", pendingNibble: { rs: false, value: 0x0 } },
    ],
    [
      "4-bit, half a Set DDRAM Address latched",
      { kind: "running", interface: "4-bit", pendingNibble: { rs: false, value: 0xb } },
    ],
    ["8-bit (a run stopped mid-init)", { kind: "running", interface: "8-bit", text: ["old"] }],
  ])("recovers a controller already running: %s", async (_, start) => {
    const { sim, lcd } = rig("16x2", { start });
    await lcd.show(code, NOW);
    expect(sim.lines()).toEqual(pad(["Code: ABCD-EFGH", "microsoft.com/"], 16));
    expect(sim.interfaceBits).toBe(4);
    expect(sim.lineMode).toBe(2);
  });

  test("a misaligned controller really is paired with the first 0x3 (the recovery is exercised)", async () => {
    const { sim, lcd } = rig("16x2", {
      start: { kind: "running", interface: "4-bit", pendingNibble: { rs: true, value: 0x4 } },
    });
    await lcd.init();
    // The leftover half and the first 0x3 made one (garbage) transfer; later lone 0x3s paired too.
    expect(sim.stats.splitPairs).toBeGreaterThanOrEqual(2);
    expect(sim.lines()).toEqual(pad(["", ""], 16));
  });

  test("a new driver recovers after a stray E pulse left the controller mid-byte", async () => {
    const first = rig();
    await first.lcd.show(code, NOW);
    // Noise on E (or a writer killed between halves): one nibble with RS=1 latched.
    const pins = 0x40 | BL | RS;
    await send(first.sim, [pins, pins | E, pins]);
    const second = new Hd44780Display({
      bus: first.sim,
      address: 0x27,
      columns: 16,
      rows: 2,
      clock: first.clock,
    });
    await second.show({ kind: "signed-in", username: "ana@contoso.com", expiresAt: EXPIRES }, NOW);
    expect(first.sim.lines()).toEqual(pad(["Signed in", "ana@contoso.com"], 16));
  });

  test("show() initialises on first use", async () => {
    const { sim, lcd } = rig();
    await lcd.show({ kind: "starting" }, NOW);
    expect(sim.initialised).toBe(true);
    expect(sim.lines()).toEqual(pad(["entratool", "Starting..."], 16));
  });
});

const screens: Array<[string, Screen, string[], string[]]> = [
  ["starting", { kind: "starting" }, ["entratool", "Starting..."], ["entratool", "Starting..."]],
  [
    "waiting-for-time",
    { kind: "waiting-for-time" },
    ["Please wait", "Waiting for"],
    ["Please wait", "Waiting for network", "time"],
  ],
  [
    "code",
    code,
    ["Code: ABCD-EFGH", "microsoft.com/"],
    ["Code: ABCD-EFGH", "microsoft.com/", "devicelogin", "15:00 left"],
  ],
  [
    "waiting",
    { ...code, kind: "waiting", note: "retrying" },
    ["Code: ABCD-EFGH", "microsoft.com/"],
    ["Code: ABCD-EFGH", "microsoft.com/", "devicelogin", "15:00 left"],
  ],
  [
    "signed-in",
    { kind: "signed-in", username: "alice@contoso.com", expiresAt: EXPIRES },
    ["Signed in", "alice@contoso."],
    ["Signed in", "alice@contoso.com"],
  ],
  [
    "sign-in-needed",
    { kind: "sign-in-needed", reason: "The refresh token was revoked." },
    ["Sign-in needed", "The refresh"],
    ["Sign-in needed", "The refresh token", "was revoked."],
  ],
  [
    "blocked",
    { kind: "blocked", message: "Blocked by Conditional Access." },
    ["Sign-in blocked", "Blocked by"],
    ["Sign-in blocked", "Blocked by", "Conditional Access."],
  ],
  [
    "offline",
    { kind: "offline", message: "No network." },
    ["Offline", "No network."],
    ["Offline", "No network."],
  ],
  ["expired", { kind: "expired" }, ["Code expired", "Sign in again"], ["Code expired", "Sign in again"]],
  ["cancelled", { kind: "cancelled" }, ["Cancelled", "Sign-in stopped"], ["Cancelled", "Sign-in stopped"]],
  [
    "error",
    { kind: "error", code: "E_NETWORK", message: "Cannot reach Entra ID." },
    ["Error E_NETWORK", "Cannot reach"],
    ["Error E_NETWORK", "Cannot reach Entra", "ID."],
  ],
];

describe("HD44780 driver: timing whatever the bus speed", () => {
  test.each([100_000, 400_000, 1_000_000])(
    "at %i Hz on the I2C bus, on the slowest oscillator, init and every frame pass the simulator's timing checks",
    async (busHz) => {
      const { sim, lcd } = rig("20x4", { busHz });
      await lcd.init();
      await lcd.show(code, NOW);
      await lcd.show(code, NOW + 1000);
      await lcd.show(
        { kind: "signed-in", username: "ada@example.com", expiresAt: NOW + 3_600_000 },
        NOW + 2000,
      );
      await lcd.clear();
      expect(sim.lines()).toEqual(pad(["", "", "", ""], 20));
      await lcd.show(code, NOW + 3000);
      expect(sim.lines()[0]).toContain("ABCD-EFGH");
    },
  );

  test("each instruction and character is its own write, followed by an explicit wait on the clock", async () => {
    const { clock, sim, lcd } = rig("16x2", { busHz: 400_000 });
    await lcd.init();
    const writes = sim.stats.transactions;
    const sleeps = clock.sleeps.length;
    await lcd.show(code, NOW);
    const drawn = sim.stats.transactions - writes;
    // The cells that differ from the cleared glass: most of both rows, and a Set DDRAM Address each.
    expect(drawn).toBeGreaterThan(20);
    // The simulator's own sleeps are the bytes' time on the wire; the driver's are the 100 µs waits.
    expect(clock.sleeps.slice(sleeps).filter((ms) => ms === 0.1)).toHaveLength(drawn);
  });
});

describe("HD44780 driver: every screen", () => {
  test.each(screens)("%s on a 16x2", async (_, screen, expected16) => {
    const { sim, lcd } = rig("16x2");
    await lcd.show(screen, NOW);
    expect(sim.lines()).toEqual(pad(expected16, 16));
  });

  test.each(screens)("%s on a 20x4", async (_, screen, __, expected20) => {
    const { sim, lcd } = rig("20x4");
    await lcd.show(screen, NOW);
    expect(sim.lines()).toEqual(pad([...expected20, "", "", ""].slice(0, 4), 20));
  });

  test("an error code too long for the title row is kept whole in the body", async () => {
    const { sim, lcd } = rig("16x2");
    const screen: Screen = { kind: "error", code: "E_POLICY_BLOCKED", message: "Ask your admin." };
    await lcd.show(screen, NOW);
    expect(sim.lines()).toEqual(pad(["E_POLICY_BLOCKED", "Ask your admin."], 16));
  });

  test("text outside the ROM's ASCII is folded or replaced, never sent raw", async () => {
    const { sim, lcd } = rig("20x4");
    await lcd.show({ kind: "signed-in", username: "zoë\\o~", expiresAt: EXPIRES }, NOW);
    expect(sim.lines()[1]).toBe("zoe?o?".padEnd(20, " "));
  });
});

describe("HD44780 driver: paging and countdown over time", () => {
  test("16x2: the second row pages the URL, then the countdown, as show() is called each second", async () => {
    const { clock, sim, lcd } = rig("16x2");
    await lcd.init();
    const seen: string[] = [];
    for (let second = 0; second < 12; second++) {
      const at = NOW + second * 1000;
      clock.advance(Math.max(0, at - clock.now()));
      await lcd.show(code, at);
      seen.push((sim.lines()[1] ?? "").trimEnd());
      expect(sim.lines()[0]).toBe("Code: ABCD-EFGH ");
    }
    expect(seen).toEqual([
      "microsoft.com/",
      "microsoft.com/",
      "microsoft.com/",
      "devicelogin",
      "devicelogin",
      "devicelogin",
      "14:54 left",
      "14:53 left",
      "14:52 left",
      "microsoft.com/",
      "microsoft.com/",
      "microsoft.com/",
    ]);
  });

  test("16x2 waiting: the note gets a page of its own", async () => {
    const { sim, lcd } = rig("16x2");
    const waiting: Screen = { ...code, kind: "waiting", note: "slowed to 10 s" };
    // Pages turn every 3 s from when the code came up: URL, URL, countdown, note.
    await lcd.show(waiting, NOW);
    await lcd.show(waiting, NOW + 9000);
    expect(sim.lines()[1]).toBe("slowed to 10 s  ");
  });

  test("20x4: a long URL pages two rows at a time; the countdown row ticks and alternates with the note", async () => {
    const { sim, lcd } = rig("20x4");
    const long = "https://login.microsoftonline.com/common/oauth2/deviceauth";
    const screen: Screen = {
      ...code,
      kind: "waiting",
      verificationUri: long,
      qrPayload: long,
      note: "retrying",
    };
    await lcd.show(screen, NOW);
    await lcd.show(screen, NOW + 1000);
    expect(sim.lines()).toEqual(pad(["Code: ABCD-EFGH", "login.", "microsoftonline.com/", "14:59 left"], 20));
    await lcd.show(screen, NOW + 3000);
    expect(sim.lines()).toEqual(pad(["Code: ABCD-EFGH", "common/oauth2/", "deviceauth", "retrying"], 20));
  });
});

describe("HD44780 driver: pages counted from when a screen came up", () => {
  test("a new code starts on its first page whatever the time; the same code keeps turning", async () => {
    const { sim, lcd } = rig("16x2");
    // 4 s past a 3 s boundary of the clock: a page counted from the epoch would be the second.
    await lcd.show(code, NOW + 4000);
    expect(sim.lines()[1]).toBe("microsoft.com/  ");
    await lcd.show(code, NOW + 7000);
    expect(sim.lines()[1]).toBe("devicelogin     ");
    await lcd.show({ ...code, userCode: "WXYZ-1234" }, NOW + 8000);
    expect(sim.lines()).toEqual(["Code: WXYZ-1234 ", "microsoft.com/  "]);
  });

  test("lcdPages: when each page of a screen comes up", () => {
    expect(lcdPages(code, { columns: 16, rows: 2 })).toEqual([0, 3000, 6000]);
    expect(lcdPages({ ...code, kind: "waiting", note: "retrying" }, { columns: 16, rows: 2 })).toEqual([
      0, 3000, 6000, 9000,
    ]);
    // 20x4: the URL fits one page; the countdown alternates with the note.
    expect(lcdPages({ ...code, kind: "waiting", note: "retrying" }, { columns: 20, rows: 4 })).toEqual([
      0, 3000,
    ]);
    expect(lcdPages({ kind: "expired" }, { columns: 16, rows: 2 })).toEqual([0]);
  });
});

describe("HD44780 driver: the code leaves the glass", () => {
  test.each<Screen>([
    { kind: "signed-in", username: "u@contoso.com", expiresAt: EXPIRES },
    { kind: "expired" },
    { kind: "cancelled" },
    { kind: "sign-in-needed", reason: "r" },
    { kind: "blocked", message: "m" },
    { kind: "offline", message: "m" },
    { kind: "error", code: "E_IDP", message: "m" },
    { kind: "starting" },
    { kind: "waiting-for-time" },
  ])("after $kind, on 16x2 and 20x4", async (after) => {
    for (const size of ["16x2", "20x4"] as const) {
      const { sim, lcd } = rig(size);
      await lcd.show(code, NOW);
      expect(sim.lines().join("\n")).toContain("ABCD-EFGH");
      await lcd.show(after, NOW + 1000);
      const glass = sim.lines().join("\n");
      for (const piece of ["ABCD", "EFGH", "Code:", "devicelogin", "left"])
        expect(glass).not.toContain(piece);
    }
  });

  test("clear() blanks the glass, and the next show draws in full", async () => {
    const { sim, lcd } = rig("20x4");
    await lcd.show(code, NOW);
    await lcd.clear();
    expect(sim.lines()).toEqual(pad(["", "", "", ""], 20));
    await lcd.show(code, NOW);
    expect(sim.lines()[0]).toBe("Code: ABCD-EFGH     ");
  });
});

describe("HD44780 driver: only what changed goes over the bus", () => {
  test("a countdown tick costs a few bytes; a full frame hundreds; an unchanged frame none", async () => {
    const { sim, lcd } = rig("20x4");
    await lcd.init();
    const full = await bytesOf(sim, () => lcd.show(code, NOW));
    const tick = await bytesOf(sim, () => lcd.show(code, NOW + 1000));
    const transactions = sim.stats.transactions;
    const same = await bytesOf(sim, () => lcd.show(code, NOW + 1500));
    expect(sim.lines()[3]).toBe("14:59 left          ");
    // "15:00" → "14:59": 4 cells, one run → Set DDRAM Address + 4 data bytes, 4 PCF8574 bytes each,
    // plus one byte each time RS changes.
    expect(tick).toBe(22);
    expect(full).toBeGreaterThanOrEqual(10 * tick);
    expect(same).toBe(0);
    expect(sim.stats.transactions).toBe(transactions);
  });

  test("16x2: a tick on the countdown page rewrites one cell", async () => {
    const { sim, lcd } = rig("16x2");
    await lcd.show(code, NOW);
    await lcd.show(code, NOW + 7000);
    expect(sim.lines()[1]).toBe("14:53 left      ");
    const tick = await bytesOf(sim, () => lcd.show(code, NOW + 8000));
    expect(sim.lines()[1]).toBe("14:52 left      ");
    expect(tick).toBe(10);
  });
});

describe("HD44780 driver: backlight", () => {
  test("off when asked at construction, switched later without an instruction", async () => {
    const { sim, lcd } = rig("16x2", { backlight: false });
    await lcd.show(code, NOW);
    expect(sim.backlight).toBe(false);
    const instructions = sim.stats.instructions;
    await lcd.setBacklight(true);
    expect(sim.backlight).toBe(true);
    expect(sim.stats.instructions).toBe(instructions);
    // Later frames keep the bit.
    await lcd.show({ kind: "expired" }, NOW);
    expect(sim.backlight).toBe(true);
  });
});

/** A bus that fails chosen writes, as a loose wire or a missing device would. */
class FlakyBus implements I2CBus {
  failNext = 0;
  readonly #inner: I2CBus;

  constructor(inner: I2CBus) {
    this.#inner = inner;
  }

  write(address: number, data: Uint8Array): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new Error("Remote I/O error"));
    }
    return this.#inner.write(address, data);
  }

  probe(address: number): Promise<boolean> {
    return this.#inner.probe(address);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

describe("HD44780 driver: errors", () => {
  test("a failed write is a typed error with a sentence; the next show starts over and succeeds", async () => {
    const clock = new VirtualClock(NOW);
    const sim = new Hd44780Simulator({ clock });
    const bus = new FlakyBus(sim);
    const lcd = new Hd44780Display({ bus, address: 0x27, columns: 16, rows: 2, clock });
    await lcd.show(code, NOW);
    bus.failNext = 1;
    const error = await lcd
      .show({ kind: "signed-in", username: "u", expiresAt: EXPIRES }, NOW)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Hd44780Error);
    expect(error).toMatchObject({ code: "E_DISPLAY_WRITE" });
    expect((error as Error).message).toMatch(
      /^The HD44780 LCD at I2C address 0x27 did not accept a write \(Remote I\/O error\)\./,
    );
    expect((error as Error).message).toContain("i2cdetect");
    await lcd.show({ kind: "signed-in", username: "u", expiresAt: EXPIRES }, NOW);
    expect(sim.lines()).toEqual(pad(["Signed in", "u"], 16));
  });

  test("no device at the address: a typed error, not a crash", async () => {
    const clock = new VirtualClock(NOW);
    const sim = new Hd44780Simulator({ clock, address: 0x3f });
    const lcd = new Hd44780Display({ bus: sim, address: 0x27, columns: 16, rows: 2, clock });
    const error = await lcd.init().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Hd44780Error);
    expect(error).toMatchObject({ code: "E_DISPLAY_WRITE" });
    expect((error as Error).cause).toMatchObject({ code: "E_NACK" });
  });

  test("options that cannot describe a module are rejected at construction", () => {
    const clock = new VirtualClock(NOW);
    const bus = new Hd44780Simulator({ clock });
    const thrown = (options: Hd44780DisplayOptions): unknown => {
      try {
        new Hd44780Display(options);
      } catch (error) {
        return error;
      }
      return undefined;
    };
    expect(thrown({ bus, address: 0x80, columns: 16, rows: 2, clock })).toMatchObject({
      code: "E_DISPLAY_CONFIG",
    });
    const wide = { bus, address: 0x27, columns: 24, rows: 2, clock } as unknown as Hd44780DisplayOptions;
    const error = thrown(wide);
    expect(error).toMatchObject({ code: "E_DISPLAY_CONFIG" });
    expect((error as Error).message).toContain("use 16x2 or 20x4");
  });

  test("overlapping calls run in order: the last screen wins", async () => {
    const { sim, lcd } = rig("16x2");
    await Promise.all([
      lcd.show(code, NOW),
      lcd.show({ kind: "expired" }, NOW),
      lcd.show({ kind: "cancelled" }, NOW),
    ]);
    expect(sim.lines()).toEqual(pad(["Cancelled", "Sign-in stopped"], 16));
  });
});
