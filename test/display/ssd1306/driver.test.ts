import jsQR from "jsqr";
import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import type { I2CBus } from "../../../display/bus/types.ts";
import { dirtyWindows, Ssd1306Display, Ssd1306Error } from "../../../display/drivers/ssd1306/driver.ts";
import {
  type CodePlacement,
  codePageAt,
  codePagePlacement,
  DEFAULT_QR_PAGE_MS,
  OLED_PORTRAIT,
  oledFrame,
  oledPages,
  qrPagePlacement,
} from "../../../display/drivers/ssd1306/layout.ts";
import { Ssd1306Simulator, Ssd1306SimulatorError } from "../../../display/drivers/ssd1306/sim.ts";
import { Bitmap } from "../../../display/render/bitmap.ts";
import { drawText } from "../../../display/render/font.ts";
import { font6x10 } from "../../../display/render/fonts/6x10.ts";
import { font10x20 } from "../../../display/render/fonts/10x20.ts";
import type { Rotation } from "../../../display/schema.ts";
import { SCREEN_KINDS } from "../../../display/screens.ts";
import { toRgba } from "../render/rgba.ts";
import { CODE, codeScreen, sample, T0, URL } from "../samples.ts";

/** What a full frame costs on the bus: 0x00 + a 6-byte window, then 0x40 + 1024 bytes. */
const FULL_FRAME_BYTES = 7 + 1 + 1024;
/** The QR page comes first; the code page follows it. */
const CODE_PAGE_AT = DEFAULT_QR_PAGE_MS;

function rig(options: { rotate?: Rotation; address?: 0x3c | 0x3d } = {}) {
  const clock = new VirtualClock(T0);
  const sim = new Ssd1306Simulator(options.address === undefined ? {} : { address: options.address });
  const display = new Ssd1306Display({ bus: sim, clock, ...options });
  return { clock, sim, display };
}

/** The `placement` rectangle of `bitmap`. */
function crop(bitmap: Bitmap, placement: CodePlacement): Bitmap {
  const out = new Bitmap(placement.width, placement.height);
  for (let y = 0; y < out.height; y++)
    for (let x = 0; x < out.width; x++) out.set(x, y, bitmap.get(placement.x + x, placement.y + y));
  return out;
}

/** The code as drawText draws it, alone, in a rectangle of `placement`'s size (bold: twice, 1 px apart). */
function codeAlone(placement: CodePlacement, text = CODE): Bitmap {
  const out = new Bitmap(placement.width, placement.height);
  drawText(out, placement.font, text, 0, 0, { scale: placement.scale });
  if (placement.bold) drawText(out, placement.font, text, 1, 0, { scale: placement.scale });
  return out;
}

/** The QR code on the glass, decoded as a phone would: lit pixels light, glass around it dark or light. */
function decodeQr(glass: Bitmap, surroundings: "white" | "black"): string | undefined {
  const image = toRgba(glass, { scale: 4, border: 16, on: "white", borderColour: surroundings });
  return jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" })?.data;
}

describe("Ssd1306Display: init", () => {
  test("configures the panel, enables the charge pump before display on, and lights a blank glass", async () => {
    const { sim, display, clock } = rig();
    await display.init();
    expect(sim.state).toMatchObject({
      displayOn: true,
      chargePump: true,
      lit: true,
      mode: "horizontal",
      segmentRemap: true,
      comScanReversed: true,
      comPins: 0x12,
      multiplex: 64,
      displayOffset: 0,
      startLine: 0,
      entireOn: false,
      inverted: false,
    });
    expect(sim.contrast).toBe(0xcf);
    // The power-on noise was overwritten before the display went on.
    expect(sim.ram().equals(new Bitmap(128, 64))).toBe(true);
    expect(sim.pixels().equals(new Bitmap(128, 64))).toBe(true);
    // Resolves after tAF (100 ms), on the injected clock.
    expect(clock.now() - T0).toBe(100);
  });

  test("show() initialises a panel nobody initialised", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    expect(sim.state.lit).toBe(true);
    expect(sim.pixels().equals(display.frame())).toBe(true);
  });

  test("a new driver on a panel left running by an earlier process redraws it entirely", async () => {
    const { sim, display, clock } = rig();
    await display.show(codeScreen, T0);
    const again = new Ssd1306Display({ bus: sim, clock });
    await again.show(sample("signed-in"), T0);
    expect(sim.pixels().equals(oledFrame(sample("signed-in"), T0))).toBe(true);
  });
});

describe("Ssd1306Display: frames", () => {
  test.each(SCREEN_KINDS)("the %s screen lands in GDDRAM exactly as rendered", async (kind) => {
    const { sim, display } = rig();
    await display.show(sample(kind), T0);
    const frame = display.frame();
    expect(frame.equals(oledFrame(sample(kind), T0))).toBe(true);
    expect(sim.ram().equals(frame)).toBe(true);
    expect(sim.pixels().equals(frame)).toBe(true);
    // Every screen draws something.
    expect(frame.pixels.some((p) => p === 1)).toBe(true);
  });

  test("the code page shows the code in 10x20, bold, where the layout says, on a blank surround", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    await display.show(codeScreen, T0 + CODE_PAGE_AT);
    const placement = codePagePlacement(codeScreen);
    expect(placement.font).toBe(font10x20);
    expect(placement.width).toBeGreaterThanOrEqual(90);
    const glass = sim.pixels();
    expect(crop(glass, placement).toRows()).toEqual(codeAlone(placement).toRows());
    // Nothing else touches the code's box, one pixel around it.
    const around = {
      ...placement,
      x: placement.x - 1,
      y: placement.y - 1,
      width: placement.width + 2,
      height: placement.height + 2,
    };
    const expected = new Bitmap(around.width, around.height);
    expected.blit(codeAlone(placement), 1, 1);
    expect(crop(glass, around).toRows()).toEqual(expected.toRows());
  });

  test("a code and URL short enough leave room for the code at scale 2", async () => {
    // One line of URL (10 rows) + 40 rows of code + the bottom line fit 64; two URL lines do not.
    const screen = { ...codeScreen, userCode: "ABC123", verificationUri: "https://aka.ms/devicelogin" };
    const { sim, display } = rig();
    await display.show(screen, T0);
    await display.show(screen, T0 + CODE_PAGE_AT);
    const placement = codePagePlacement(screen);
    expect(placement.scale).toBeGreaterThan(1);
    expect(crop(sim.pixels(), placement).toRows()).toEqual(codeAlone(placement, "ABC123").toRows());
  });

  test("the QR page comes first; its code decodes to the verification URL, even with the glass's dark surround", async () => {
    const { sim, display } = rig();
    // Any time: the pages count from when the code appears, not from the clock.
    const now = T0 + 7000;
    expect(codePageAt(codeScreen, now, {}, now)).toBe("qr");
    await display.show(codeScreen, now);
    const glass = sim.pixels();
    expect(decodeQr(glass, "white")).toBe(URL);
    expect(decodeQr(glass, "black")).toBe(URL);
    // The code is on this page too, small, for whoever scanned.
    const placement = qrPagePlacement(codeScreen);
    expect(placement).toBeDefined();
    if (placement !== undefined)
      expect(crop(glass, placement).toRows()).toEqual(codeAlone(placement).toRows());
  });

  test("the QR page and the code page alternate, from when the code appeared: 4 s of QR, 6 s of code", async () => {
    const { sim, display } = rig();
    const pages: string[] = [];
    const start = T0 + 3000;
    for (let s = 0; s < 20; s++) {
      await display.show(codeScreen, start + s * 1000);
      pages.push(decodeQr(sim.pixels(), "white") === URL ? "Q" : "C");
    }
    expect(pages.join("")).toBe("QQQQCCCCCCQQQQCCCCCC");
    // A new code starts over on its QR page.
    await display.show({ ...codeScreen, userCode: "WXYZ-1234" }, start + 20_500);
    expect(decodeQr(sim.pixels(), "white")).toBe(URL);
    expect(oledPages(codeScreen)).toEqual([0, CODE_PAGE_AT]);
  });

  test("a payload too long for 2-px modules falls back to 1 px a module and still decodes", async () => {
    const payload = `${URL}?tenant=contoso.onmicrosoft.com&hint=kiosk-7`;
    const screen = { ...codeScreen, qrPayload: payload };
    const { sim, display } = rig();
    await display.show(screen, T0 + 7000);
    expect(decodeQr(sim.pixels(), "white")).toBe(payload);
  });

  test("qrPageMs 0 keeps the code page up", async () => {
    const clock = new VirtualClock(T0);
    const sim = new Ssd1306Simulator();
    const display = new Ssd1306Display({ bus: sim, clock, timing: { qrPageMs: 0 } });
    await display.show(codeScreen, T0 + 7000);
    expect(decodeQr(sim.pixels(), "white")).toBeUndefined();
    const placement = codePagePlacement(codeScreen);
    expect(crop(sim.pixels(), placement).toRows()).toEqual(codeAlone(placement).toRows());
  });

  test("the waiting screen shows the note where 'Expires in' was", async () => {
    const { sim, display } = rig();
    await display.show(sample("waiting"), T0);
    await display.show(sample("waiting"), T0 + CODE_PAGE_AT);
    const note = new Bitmap(128, 64);
    drawText(note, font6x10, "retrying", 2, 54);
    const glass = sim.pixels();
    for (let x = 0; x < 50; x++) for (let y = 54; y < 64; y++) expect(glass.get(x, y)).toBe(note.get(x, y));
  });
});

describe("Ssd1306Display: bytes on the bus", () => {
  test("a countdown tick sends under a quarter of a full frame, and the glass stays exact", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    await display.show(codeScreen, T0 + CODE_PAGE_AT);
    sim.resetStats();
    await display.show(codeScreen, T0 + CODE_PAGE_AT + 1000);
    const tick = sim.stats.bytes;
    expect(tick).toBeLessThan(FULL_FRAME_BYTES / 4);
    expect(sim.pixels().equals(oledFrame(codeScreen, T0 + CODE_PAGE_AT + 1000, {}, T0))).toBe(true);
    // The same screen at the same second sends nothing at all.
    sim.resetStats();
    await display.show(codeScreen, T0 + CODE_PAGE_AT + 1400);
    expect(sim.stats.bytes).toBe(0);
  });

  test("a tick on the QR page is as cheap", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0 + 7000);
    sim.resetStats();
    await display.show(codeScreen, T0 + 8000);
    expect(sim.stats.bytes).toBeLessThan(FULL_FRAME_BYTES / 4);
    expect(decodeQr(sim.pixels(), "white")).toBe(URL);
  });

  test("the first show() sends its own frame once, whole, before display on: no blank frame first", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    expect(sim.stats.dataBytes).toBe(1024);
    expect(sim.stats.bursts).toBe(1);
  });

  test("dirty windows: the smallest column range per page, neighbouring pages merged when it saves bytes", () => {
    const before = new Uint8Array(1024);
    const after = before.slice();
    after[2 * 128 + 40] = 1; // page 2, columns 40-44
    after[2 * 128 + 44] = 1;
    after[3 * 128 + 41] = 1; // page 3, column 41: merged with page 2 (5 + 5 + 8 < 5 + 8 + 1 + 8)
    after[6 * 128 + 0] = 1; // pages 6 and 7 far apart: kept separate
    after[7 * 128 + 127] = 1;
    expect(dirtyWindows(before, after)).toEqual([
      { c0: 40, c1: 44, p0: 2, p1: 3 },
      { c0: 0, c1: 0, p0: 6, p1: 6 },
      { c0: 127, c1: 127, p0: 7, p1: 7 },
    ]);
    expect(dirtyWindows(before, before)).toEqual([]);
  });

  test("init sends one full frame: 1024 bytes of GDDRAM in one burst", async () => {
    const { sim, display } = rig();
    await display.init();
    expect(sim.stats.dataBytes).toBe(1024);
    expect(sim.stats.bursts).toBe(1);
  });
});

describe("Ssd1306Display: the code leaves the glass", () => {
  const others = SCREEN_KINDS.filter((kind) => kind !== "code" && kind !== "waiting");

  test.each(
    others.flatMap(
      (kind) =>
        [
          [kind, "code"],
          [kind, "qr"],
        ] as const,
    ),
  )("the %s screen after the %s page leaves no pixel of the code", async (kind, page) => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    const shownAt = page === "qr" ? T0 : T0 + CODE_PAGE_AT;
    await display.show(codeScreen, shownAt);
    await display.show(sample(kind), shownAt + 1000);
    const glass = sim.pixels();
    // Exactly what a panel that never showed the code displays for this screen.
    const fresh = rig();
    await fresh.display.show(sample(kind), shownAt + 1000);
    expect(glass.equals(fresh.sim.pixels())).toBe(true);
    for (const placement of [codePagePlacement(codeScreen), qrPagePlacement(codeScreen)]) {
      if (placement === undefined) continue;
      expect(crop(glass, placement).equals(codeAlone(placement))).toBe(false);
    }
    expect(decodeQr(glass, "white")).toBeUndefined();
  });

  test("clear() blanks the glass and keeps the display on", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    await display.clear();
    expect(sim.state.lit).toBe(true);
    expect(sim.pixels().equals(new Bitmap(128, 64))).toBe(true);
    expect(display.frame().equals(new Bitmap(128, 64))).toBe(true);
  });
});

describe("Ssd1306Display: mounting, addresses and failures", () => {
  test("rotate 180 turns the picture with segment remap and COM scan, not by redrawing", async () => {
    const { sim, display } = rig({ rotate: 180 });
    await display.show(codeScreen, T0);
    expect(sim.state).toMatchObject({ segmentRemap: false, comScanReversed: false });
    // GDDRAM holds the same bytes as upright; the glass shows them turned.
    expect(sim.ram().equals(display.frame())).toBe(true);
    expect(sim.pixels().equals(display.frame().rotate(180))).toBe(true);
  });

  test.each([90, 270] as const)(
    "rotate %i: a 64x128 page turned onto the glass; both pages of the code screen fit, the QR decodes",
    async (rotate) => {
      const { sim, display } = rig({ rotate });
      await display.show(codeScreen, T0);
      const qrPage = display.frame();
      expect([qrPage.width, qrPage.height]).toEqual([64, 128]);
      expect(sim.pixels().equals(qrPage.rotate(rotate))).toBe(true);
      // The QR box is the top 64x64 of the page, lit: its top-left pixel is the glass's corner it turns to.
      expect(qrPage.get(0, 0)).toBe(true);
      expect(sim.pixels().get(rotate === 90 ? 127 : 0, rotate === 90 ? 0 : 63)).toBe(true);
      expect(decodeQr(sim.pixels(), "black")).toBe(URL);
      // The code page, 4 s later: the code where the portrait layout puts it, whole.
      await display.show(codeScreen, T0 + 4000);
      const codePage = display.frame();
      const placement = codePagePlacement(codeScreen, OLED_PORTRAIT);
      expect(placement.x + placement.width).toBeLessThanOrEqual(64);
      expect(crop(codePage, placement).equals(codeAlone(placement))).toBe(true);
      expect(sim.pixels().equals(codePage.rotate(rotate))).toBe(true);
      expect(sim.state).toMatchObject({ segmentRemap: rotate === 90, comScanReversed: rotate === 90 });
    },
  );

  test("drives a module at 0x3D", async () => {
    const { sim, display } = rig({ address: 0x3d });
    await display.show(codeScreen, T0);
    expect(sim.pixels().equals(display.frame())).toBe(true);
  });

  test("a module that does not answer becomes E_DISPLAY_WRITE with the address and what to check", async () => {
    const clock = new VirtualClock(T0);
    const sim = new Ssd1306Simulator({ address: 0x3c });
    const display = new Ssd1306Display({ bus: sim, clock, address: 0x3d });
    const error = await display.show(codeScreen, T0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Ssd1306Error);
    if (!(error instanceof Ssd1306Error)) return;
    expect(error.code).toBe("E_DISPLAY_WRITE");
    expect(error.message).toContain("0x3D");
    expect(error.message).toContain("i2cdetect -y 1");
    expect(error.message).toContain("raspi-config");
    expect(error.cause).toBeInstanceOf(Ssd1306SimulatorError);
  });

  test("after a failed write the next show starts again from init and the glass is right", async () => {
    const sim = new Ssd1306Simulator();
    let failNextData = false;
    const flaky: I2CBus = {
      write: async (address, data) => {
        if (failNextData && data[0] === 0x40) {
          // Half the burst reaches the chip, then the adapter reports the failure.
          failNextData = false;
          await sim.write(address, data.subarray(0, Math.ceil(data.length / 2)));
          throw new Error("Remote I/O error");
        }
        await sim.write(address, data);
      },
      probe: (address) => sim.probe(address),
      close: () => sim.close(),
    };
    const display = new Ssd1306Display({ bus: flaky, clock: new VirtualClock(T0) });
    await display.show(codeScreen, T0);
    failNextData = true;
    const error = await display.show(sample("signed-in"), T0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Ssd1306Error);
    expect(error instanceof Ssd1306Error && error.message).toContain("Remote I/O error");
    // The glass is now part code, part signed-in; the next show cannot trust any diff.
    sim.resetStats();
    await display.show(sample("signed-in"), T0 + 1000);
    expect(sim.stats.dataBytes).toBe(1024);
    expect(sim.pixels().equals(oledFrame(sample("signed-in"), T0 + 1000))).toBe(true);
  });

  test("calls made at once run one after the other; the last screen wins", async () => {
    const { sim, display } = rig();
    await Promise.all([
      display.show(codeScreen, T0),
      display.show(sample("signed-in"), T0),
      display.show(sample("error"), T0),
    ]);
    expect(sim.pixels().equals(oledFrame(sample("error"), T0))).toBe(true);
  });

  test("refuses an address the chip cannot have and a contrast outside 0-255", () => {
    const clock = new VirtualClock(T0);
    const sim = new Ssd1306Simulator();
    // Configuration files hold any number; the option's type cannot stop that at run time.
    const address = 0x27 as 0x3c;
    expect(() => new Ssd1306Display({ bus: sim, clock, address })).toThrow(
      expect.objectContaining({ code: "E_DISPLAY_CONFIG" }),
    );
    expect(() => new Ssd1306Display({ bus: sim, clock, contrast: 256 })).toThrow(
      expect.objectContaining({ code: "E_DISPLAY_CONFIG" }),
    );
  });

  test("frame() is a copy: changing it does not change the driver's idea of the glass", async () => {
    const { sim, display } = rig();
    await display.show(codeScreen, T0);
    display.frame().clear(true);
    sim.resetStats();
    await display.show(codeScreen, T0);
    expect(sim.stats.bytes).toBe(0);
  });
});
