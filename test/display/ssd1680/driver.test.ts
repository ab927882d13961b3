import jsQR from "jsqr";
import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import {
  COUNTDOWN_INTERVAL_MS,
  Ssd1680Display,
  Ssd1680Error,
} from "../../../display/drivers/ssd1680/driver.ts";
import {
  EINK_PORTRAIT,
  einkCodePlacement,
  einkFrame,
  einkQrPlacement,
} from "../../../display/drivers/ssd1680/layout.ts";
import { Ssd1680Simulator } from "../../../display/drivers/ssd1680/sim.ts";
import type { Bitmap } from "../../../display/render/bitmap.ts";
import type { Rotation } from "../../../display/schema.ts";
import { SCREEN_KINDS } from "../../../display/screens.ts";
import { toRgba } from "../render/rgba.ts";
import { CODE, codeScreen, sample, T0, URL } from "../samples.ts";

function rig(options: { rotate?: Rotation } = {}) {
  const clock = new VirtualClock(T0);
  const sim = new Ssd1680Simulator({ clock });
  const display = new Ssd1680Display({
    spi: sim.spi,
    dc: sim.dc,
    rst: sim.rst,
    busy: sim.busy,
    clock,
    ...options,
  });
  return { clock, sim, display };
}

function decodeQr(bitmap: Bitmap): string | undefined {
  const image = toRgba(bitmap, { scale: 3, border: 0, on: "black" });
  return jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" })?.data;
}

function inkIn(bitmap: Bitmap, x0: number, y0: number, w: number, h: number): number {
  let ink = 0;
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) if (bitmap.get(x, y)) ink++;
  return ink;
}

describe("Ssd1680Display", () => {
  test("init: hardware reset, BUSY waited out, configured, back to deep sleep, glass untouched", async () => {
    const { sim, display } = rig();
    await display.init();
    expect(sim.counts.hardwareResets).toBe(1);
    expect(sim.commands.map((c) => c.opcode)).toEqual([0x12, 0x01, 0x11, 0x44, 0x45, 0x21, 0x18, 0x10]);
    expect(sim.state.gates).toBe(250);
    expect(sim.sleeping).toBe(true);
    expect(sim.counts.fullRefreshes + sim.counts.partialRefreshes).toBe(0);
  });

  test("the code screen lands on the glass exactly as the driver's frame", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    const panel = sim.panel();
    expect(panel.equals(display.frame())).toBe(true);
    expect(panel.equals(einkFrame(codeScreen, T0))).toBe(true);
    expect(inkIn(panel, 0, 0, panel.width, panel.height)).toBeGreaterThan(1000);
  });

  test("rotate 180: the glass shows the frame upside down", async () => {
    const { sim, display } = rig({ rotate: 180 });
    await display.show(codeScreen, T0);
    expect(sim.panel().equals(display.frame().rotate(180))).toBe(true);
  });

  test.each([90, 270] as const)(
    "rotate %i: laid out on a 122x250 page, turned onto the glass; the QR code still decodes",
    async (rotate) => {
      const { sim, display } = rig({ rotate });
      await display.show(codeScreen, T0);
      const page = einkFrame(codeScreen, T0, EINK_PORTRAIT);
      expect([page.width, page.height]).toEqual([122, 250]);
      expect(display.frame().equals(page)).toBe(true);
      const panel = sim.panel();
      expect(panel.equals(page.rotate(rotate))).toBe(true);
      // The QR code is at the top of the portrait page: its top-left finder's corner module is ink.
      const qr = einkQrPlacement(codeScreen.qrPayload, EINK_PORTRAIT);
      expect(qr?.y).toBe(0);
      const x = (qr?.x ?? 0) + 4 * (qr?.moduleSize ?? 0);
      const y = (qr?.y ?? 0) + 4 * (qr?.moduleSize ?? 0);
      expect(page.get(x, y)).toBe(true);
      // Turned clockwise a quarter, (x, y) of the 250-tall page lands at (249 - y, x); at 270, at (y, 121 - x).
      const [px, py] = rotate === 90 ? [249 - y, x] : [y, 121 - x];
      expect(panel.get(px, py)).toBe(true);
      expect(decodeQr(panel)).toBe(URL);
      // The code itself is on the page, where the portrait layout puts it.
      const code = einkCodePlacement(codeScreen, EINK_PORTRAIT);
      expect(code.y).toBeGreaterThan(qr?.side ?? 0);
      expect(inkIn(page, 0, code.y, 122, 20)).toBeGreaterThan(50);
    },
  );

  test.each([90, 270] as const)("rotate %i: every screen kind fits the portrait page", async (rotate) => {
    for (const kind of SCREEN_KINDS) {
      const { sim, display } = rig({ rotate });
      await display.show(sample(kind), T0);
      expect(sim.panel().equals(display.frame().rotate(rotate)), kind).toBe(true);
    }
  });

  test("the QR code on the glass decodes to the URL; 3 px a module with the 4-module quiet zone", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    const qr = einkQrPlacement(URL);
    expect(qr).toMatchObject({ moduleSize: 3, side: 111 });
    expect(decodeQr(sim.panel())).toBe(URL);
  });

  test("the user code is drawn in 10x20 type, bold or doubled", () => {
    const placement = einkCodePlacement(codeScreen);
    expect(placement.scale === 2 || placement.bold).toBe(true);
    expect(placement.y).toBeGreaterThan(30);
  });

  test("a new code is one full refresh, then deep sleep", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    expect(sim.counts).toMatchObject({ fullRefreshes: 1, partialRefreshes: 0, deepSleeps: 1 });
    expect(sim.sleeping).toBe(true);
    expect(sim.commands.at(-1)).toEqual({ opcode: 0x10, params: [0x01] });
  });

  test("60 show() calls a second apart for the same code: at most 2 partial refreshes, no storm", async () => {
    const { sim, clock, display } = rig();
    await display.show(codeScreen, clock.now());
    const afterFirst = sim.counts.spiBytes;
    for (let i = 0; i < 60; i++) {
      clock.advance(1000);
      await display.show(codeScreen, clock.now());
    }
    expect(sim.counts.fullRefreshes).toBe(1);
    expect(sim.counts.partialRefreshes).toBeGreaterThanOrEqual(1);
    expect(sim.counts.partialRefreshes).toBeLessThanOrEqual(2);
    expect(sim.counts.spiBytes - afterFirst).toBeLessThan(3 * 8100);
    // Every refresh ends in deep sleep, and the glass shows exactly the newest frame drawn.
    expect(sim.counts.deepSleeps).toBe(1 + sim.counts.partialRefreshes);
    expect(sim.sleeping).toBe(true);
    expect(sim.panel().equals(einkFrame(codeScreen, clock.now()))).toBe(true);
  });

  test("a countdown change within a minute of the last refresh waits", async () => {
    const { sim, display } = rig();
    // 30 s before a minute boundary of the countdown: the text changes at +30 s.
    const screen = { ...codeScreen, expiresAt: T0 + 14 * 60_000 + 30_000 };
    await display.show(screen, T0);
    await display.show(screen, T0 + 31_000);
    expect(sim.counts.partialRefreshes).toBe(0);
    await display.show(screen, T0 + COUNTDOWN_INTERVAL_MS);
    expect(sim.counts.partialRefreshes).toBe(1);
  });

  test("waiting with the same code is a partial refresh; a new code is a full one", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    await display.show(sample("waiting"), T0 + COUNTDOWN_INTERVAL_MS);
    expect(sim.counts).toMatchObject({ fullRefreshes: 1, partialRefreshes: 1 });
    await display.show({ ...codeScreen, userCode: "ABCD1234Q" }, T0 + COUNTDOWN_INTERVAL_MS + 1000);
    expect(sim.counts).toMatchObject({ fullRefreshes: 2, partialRefreshes: 1 });
    expect(sim.panel().equals(display.frame())).toBe(true);
  });

  for (const kind of SCREEN_KINDS.filter((k) => k !== "code" && k !== "waiting")) {
    test(`${kind} after a code: a full refresh, and no pixel of the code or QR is left`, async () => {
      const { sim, display } = rig();
      await display.show(codeScreen, T0);
      await display.show(sample(kind), T0 + 5000);
      expect(sim.counts).toMatchObject({ fullRefreshes: 2, partialRefreshes: 0 });
      const panel = sim.panel();
      expect(panel.equals(einkFrame(sample(kind), T0 + 5000))).toBe(true);
      // Nothing decodes any more, and where the code was drawn the glass no longer shows it.
      expect(decodeQr(panel)).toBeUndefined();
      const code = einkCodePlacement(codeScreen);
      const before = einkFrame(codeScreen, T0);
      let codeInkLeft = 0;
      let codeInk = 0;
      for (let y = code.y; y < code.y + 20 * code.scale; y++) {
        for (let x = code.x; x < code.x + 10 * CODE.length * code.scale + 1; x++) {
          if (!before.get(x, y)) continue;
          codeInk++;
          if (panel.get(x, y)) codeInkLeft++;
        }
      }
      expect(codeInk).toBeGreaterThan(100);
      // Text of the new screen may cross the old code's box, but never most of its strokes.
      expect(codeInkLeft / codeInk).toBeLessThan(0.5);
      expect(sim.sleeping).toBe(true);
    });
  }

  test("every screen kind renders and lands on the glass", async () => {
    const { sim, display } = rig();
    // A minute apart, so that the code-to-waiting change is not held back by the countdown limit.
    for (const [i, kind] of SCREEN_KINDS.entries()) {
      await display.show(sample(kind), T0 + i * COUNTDOWN_INTERVAL_MS);
      expect(sim.panel().equals(display.frame())).toBe(true);
    }
    // code → waiting with the same code is the one partial refresh.
    expect(sim.counts).toMatchObject({ fullRefreshes: SCREEN_KINDS.length - 1, partialRefreshes: 1 });
  });

  test("an unchanged screen sends nothing", async () => {
    const { sim, display } = rig();
    await display.show(sample("signed-in"), T0);
    const bytes = sim.counts.spiBytes;
    await display.show(sample("signed-in"), T0 + 120_000);
    expect(sim.counts.spiBytes).toBe(bytes);
  });

  test("clear() whites the glass with a full refresh", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    await display.clear();
    expect(sim.counts.fullRefreshes).toBe(2);
    expect(sim.panel().pixels.every((p) => p === 0)).toBe(true);
  });

  test("BUSY stuck high: E_DISPLAY_BUSY after 10 s of virtual time, then a full redraw once it recovers", async () => {
    const { sim, clock, display } = rig();
    sim.jamBusy(true);
    const start = clock.now();
    const error = await display.init().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Ssd1680Error);
    expect(error).toMatchObject({
      code: "E_DISPLAY_BUSY",
      message: "The e-ink panel stayed busy for 10 s: check the BUSY wire and power, then restart",
    });
    const waited = clock.now() - start;
    expect(waited).toBeGreaterThanOrEqual(10_000);
    expect(waited).toBeLessThan(10_100);
    sim.jamBusy(false);
    await display.show(codeScreen, clock.now());
    expect(sim.counts.fullRefreshes).toBe(1);
  });

  test("a custom BUSY timeout is honoured and named in the message", async () => {
    const clock = new VirtualClock(T0);
    const sim = new Ssd1680Simulator({ clock });
    const display = new Ssd1680Display({ ...sim, clock, busyTimeoutMs: 2500 });
    sim.jamBusy(true);
    await expect(display.show(codeScreen, T0)).rejects.toThrow("stayed busy for 2.5 s");
  });
});
