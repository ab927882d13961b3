import { writeFile } from "node:fs/promises";
import jsQR from "jsqr";
import { afterEach, describe, expect, test } from "vitest";
import {
  dirtyBands,
  FramebufferDisplay,
  FramebufferError,
  readFramebufferGeometry,
} from "../../../display/drivers/framebuffer/driver.ts";
import { framebufferFrame, type Region } from "../../../display/drivers/framebuffer/layout.ts";
import {
  defaultPixelFormat,
  describePixelFormat,
  type PixelFormat,
} from "../../../display/drivers/framebuffer/pixel-format.ts";
import {
  FramebufferSimulator,
  type FramebufferSimulatorOptions,
} from "../../../display/drivers/framebuffer/sim.ts";
import { encodeRgbPng } from "../../../display/render/png.ts";
import type { Rotation } from "../../../display/schema.ts";
import { SCREEN_KINDS } from "../../../display/screens.ts";
import { codeScreen, sample, T0, URL } from "../samples.ts";

const sims: FramebufferSimulator[] = [];
const displays: FramebufferDisplay[] = [];
afterEach(async () => {
  for (const display of displays.splice(0)) await display.close();
  for (const sim of sims.splice(0)) await sim.dispose();
});

async function rig(options: FramebufferSimulatorOptions, rotate: Rotation = 0) {
  const sim = await FramebufferSimulator.create(options);
  sims.push(sim);
  const display = await FramebufferDisplay.open({
    sysfsRoot: sim.sysfsRoot,
    devRoot: sim.devRoot,
    ioctl: sim.ioctl,
    rotate,
  });
  displays.push(display);
  return { sim, display };
}

function decodeQr(rgb: Uint8Array, width: number, height: number): string | undefined {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, o = 0; i < rgb.length; i += 3, o += 4) {
    rgba[o] = rgb[i] ?? 0;
    rgba[o + 1] = rgb[i + 1] ?? 0;
    rgba[o + 2] = rgb[i + 2] ?? 0;
    rgba[o + 3] = 255;
  }
  return jsQR(rgba, width, height, { inversionAttempts: "dontInvert" })?.data;
}

/**
 * The first index where `a` and `b` differ, -1 if equal. vitest's toEqual walks megabyte typed
 * arrays element by element and takes seconds; this keeps the tests fast and the failure readable.
 */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  if (Buffer.compare(a, b) === 0) return -1;
  return a.findIndex((v, i) => v !== b[i]);
}

/** Lit (non-black) pixels of `rgb` inside `region`. */
function litIn(rgb: Uint8Array, width: number, region: Region): number {
  let lit = 0;
  for (let y = region.y; y < region.y + region.height; y++) {
    for (let x = region.x; x < region.x + region.width; x++) {
      const i = (y * width + x) * 3;
      if ((rgb[i] ?? 0) + (rgb[i + 1] ?? 0) + (rgb[i + 2] ?? 0) > 0) lit++;
    }
  }
  return lit;
}

/** Every other pixel in both directions: a 1920x1080 frame as a 960x540 PNG. */
function downscale(rgb: Uint8Array, width: number, height: number, by: number) {
  const w = Math.floor(width / by);
  const h = Math.floor(height / by);
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++)
      out.set(
        rgb.subarray((y * by * width + x * by) * 3, (y * by * width + x * by) * 3 + 3),
        (y * w + x) * 3,
      );
  }
  return { width: w, height: h, rgb: out };
}

describe("framebuffer geometry from sysfs", () => {
  test("virtual_size, bits_per_pixel, stride and the visible mode", async () => {
    const sim = await FramebufferSimulator.create({
      width: 1920,
      height: 1080,
      virtualHeight: 2160,
      bitsPerPixel: 32,
      stride: 7936,
      device: 1,
    });
    sims.push(sim);
    await expect(readFramebufferGeometry({ device: 1, sysfsRoot: sim.sysfsRoot })).resolves.toEqual({
      width: 1920,
      height: 1080,
      virtualWidth: 1920,
      virtualHeight: 2160,
      bitsPerPixel: 32,
      stride: 7936,
      // Until the device is open and asked (FBIOGET_VSCREENINFO): what fbdev on KMS offers.
      format: defaultPixelFormat(32),
    });
  });

  test("without a mode file the virtual size is the visible size; 24 bpp is refused with the fix", async () => {
    const sim = await FramebufferSimulator.create({ width: 640, height: 480, bitsPerPixel: 16, mode: false });
    sims.push(sim);
    const geometry = await readFramebufferGeometry({ sysfsRoot: sim.sysfsRoot });
    expect([geometry.width, geometry.height, geometry.stride, geometry.bitsPerPixel]).toEqual([
      640, 480, 1280, 16,
    ]);
    const deep = await FramebufferSimulator.create({ width: 640, height: 480, bitsPerPixel: 24 });
    sims.push(deep);
    await expect(readFramebufferGeometry({ sysfsRoot: deep.sysfsRoot })).rejects.toMatchObject({
      code: "E_FB_FORMAT",
      message: expect.stringContaining("framebuffer_depth=32"),
    });
  });

  test("no device: a typed error with the sentence that says what to check", async () => {
    const sim = await FramebufferSimulator.create({
      width: 640,
      height: 480,
      bitsPerPixel: 32,
      withDevice: false,
    });
    sims.push(sim);
    const opening = FramebufferDisplay.open({ sysfsRoot: sim.sysfsRoot, devRoot: sim.devRoot });
    await expect(opening).rejects.toBeInstanceOf(FramebufferError);
    await expect(opening).rejects.toMatchObject({
      code: "E_FB_ABSENT",
      message: `No framebuffer at ${sim.devicePath}: is a display connected and 'dtoverlay=vc4-kms-v3d' set? The terminal display keeps working.`,
    });
    // And with no sysfs entry at all (no display driver): the same error.
    await expect(
      FramebufferDisplay.open({ device: 3, sysfsRoot: sim.sysfsRoot, devRoot: sim.devRoot }),
    ).rejects.toMatchObject({ code: "E_FB_ABSENT" });
  });
});

describe("FramebufferDisplay", () => {
  test.each([16, 32] as const)(
    "%i bpp: every screen round-trips (simulator decode == driver frame)",
    async (bpp) => {
      const { sim, display } = await rig({
        width: 480,
        height: 270,
        bitsPerPixel: bpp,
        stride: bpp === 16 ? 1024 : 1920,
      });
      for (const kind of SCREEN_KINDS) {
        await display.show(sample(kind), T0);
        const frame = display.frameRgb();
        expect(firstDifference(await sim.rgb(), frame.rgb), kind).toBe(-1);
      }
    },
  );

  test("16 bpp frames are quantised to RGB565 as the glass shows them", async () => {
    const { sim, display } = await rig({ width: 320, height: 180, bitsPerPixel: 16 });
    await display.show(sample("signed-in"), T0);
    const rgb = await sim.rgb();
    const colours = new Set<string>();
    for (let i = 0; i < rgb.length; i += 3) colours.add(`${rgb[i]},${rgb[i + 1]},${rgb[i + 2]}`);
    // The headline green (64, 220, 96) in 5-6-5 bits, widened back.
    expect(colours.has("66,223,99")).toBe(true);
  });

  test("1080p code screen: huge code, the QR decodes to the URL; PNG at /tmp/fb-code.png", async () => {
    const { sim, display } = await rig({ width: 1920, height: 1080, bitsPerPixel: 32 });
    await display.show(codeScreen, T0);
    const rgb = await sim.rgb();
    const { codeRegion, qrRegion } = display.layout;
    expect(codeRegion?.height).toBeGreaterThanOrEqual(1080 * 0.2);
    expect(qrRegion?.width).toBeGreaterThanOrEqual(400);
    expect(decodeQr(rgb, 1920, 1080)).toBe(URL);
    const small = downscale(rgb, 1920, 1080, 2);
    await writeFile("/tmp/fb-code.png", encodeRgbPng(small.width, small.height, small.rgb));
  });

  test("the QR decodes at 16 bpp on a small 640x480 monitor too", async () => {
    const { sim, display } = await rig({ width: 640, height: 480, bitsPerPixel: 16 });
    await display.show({ ...codeScreen, kind: "waiting", note: "slowed to 10 s" }, T0);
    expect(decodeQr(await sim.rgb(), 640, 480)).toBe(URL);
  });

  test.each(SCREEN_KINDS.filter((k) => k !== "code" && k !== "waiting"))(
    "the code is gone from the glass on %s",
    async (kind) => {
      const { sim, display } = await rig({ width: 960, height: 540, bitsPerPixel: 16 });
      await display.show(codeScreen, T0);
      const region = display.layout.codeRegion;
      if (region === undefined) throw new Error("no code region");
      const before = litIn(await sim.rgb(), 960, region);
      await display.show(sample(kind), T0);
      const after = await sim.rgb();
      // Nothing survives the partial write: the glass is exactly the new screen, drawn fresh.
      expect(firstDifference(after, display.frameRgb().rgb)).toBe(-1);
      const fresh = framebufferFrame(sample(kind), T0, 960, 540).rgb;
      expect(litIn(after, 960, region)).toBe(litIn(fresh, 960, region));
      expect(display.layout.codeRegion).toBeUndefined();
      expect(litIn(after, 960, region)).toBeLessThan(before);
    },
  );

  test("a countdown tick rewrites only the countdown's rows", async () => {
    const { sim, display } = await rig({ width: 1280, height: 720, bitsPerPixel: 32 });
    await display.show(codeScreen, T0);
    const full = display.stats;
    expect(full).toEqual({ writes: 1, bytes: 1280 * 720 * 4 });
    await display.show({ ...codeScreen, kind: "waiting" }, T0 + 1000);
    const tick = { writes: display.stats.writes - full.writes, bytes: display.stats.bytes - full.bytes };
    const rows = display.layout.countdownRegion?.height ?? 0;
    expect(tick.writes).toBe(1);
    expect(tick.bytes).toBeLessThanOrEqual(rows * 1280 * 4);
    expect(tick.bytes).toBeLessThan((1280 * 720 * 4) / 5);
    expect(firstDifference(await sim.rgb(), display.frameRgb().rgb)).toBe(-1);
    // The same screen again writes nothing.
    await display.show({ ...codeScreen, kind: "waiting" }, T0 + 1000);
    expect(display.stats.writes).toBe(full.writes + 1);
  });

  test("clear() blacks the screen", async () => {
    const { sim, display } = await rig({ width: 320, height: 180, bitsPerPixel: 32 });
    await display.show(codeScreen, T0);
    await display.clear();
    expect((await sim.rgb()).every((v) => v === 0)).toBe(true);
  });

  test("dirtyBands finds runs of changed rows", () => {
    const before = Uint8Array.from([0, 0, 1, 1, 0, 0, 1, 1]);
    const after = Uint8Array.from([0, 0, 2, 1, 0, 0, 1, 2]);
    expect(dirtyBands(before, after, 2, 4)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(dirtyBands(undefined, after, 2, 4)).toEqual([[0, 4]]);
  });
});

const BGR565: PixelFormat = {
  bitsPerPixel: 16,
  red: { offset: 0, length: 5 },
  green: { offset: 5, length: 6 },
  blue: { offset: 11, length: 5 },
  transp: { offset: 0, length: 0 },
};
const XBGR8888: PixelFormat = {
  bitsPerPixel: 32,
  red: { offset: 0, length: 8 },
  green: { offset: 8, length: 8 },
  blue: { offset: 16, length: 8 },
  transp: { offset: 24, length: 0 },
};

/** The first pixel of `rgb` that is neither black nor grey/white: a coloured headline's ink. */
function firstColoured(rgb: Uint8Array): [number, number, number] | undefined {
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i] ?? 0;
    const g = rgb[i + 1] ?? 0;
    const b = rgb[i + 2] ?? 0;
    if (!(r === g && g === b)) return [r, g, b];
  }
  return undefined;
}

describe("framebuffer channel layout (FBIOGET_VSCREENINFO)", () => {
  test("names the formats: RGB565, BGR565, XRGB8888, XBGR8888", () => {
    expect(
      [defaultPixelFormat(16), BGR565, defaultPixelFormat(32), XBGR8888].map(describePixelFormat),
    ).toEqual(["RGB565", "BGR565", "XRGB8888", "XBGR8888"]);
  });

  test("XBGR8888: the device gets bytes R, G, B, X; the glass shows the right colours", async () => {
    const { sim, display } = await rig({ width: 320, height: 180, bitsPerPixel: 32, format: XBGR8888 });
    expect(display.geometry.format).toEqual(XBGR8888);
    expect(sim.screenInfoReads).toBe(1);
    await display.show(sample("signed-in"), T0);
    // "Signed in" is green (64, 220, 96): in memory R first on a BGR panel.
    const bytes = await sim.bytes();
    let at = -1;
    for (let i = 0; i < bytes.length; i += 4) {
      if (bytes[i] === 64 && bytes[i + 1] === 220 && bytes[i + 2] === 96) {
        at = i;
        break;
      }
    }
    expect(at).toBeGreaterThanOrEqual(0);
    expect(bytes[at + 3]).toBe(0xff);
    expect(firstColoured(await sim.rgb())).toEqual([64, 220, 96]);
    expect(firstDifference(await sim.rgb(), display.frameRgb().rgb)).toBe(-1);
  });

  test("BGR565: blue in the top five bits, red in the bottom five; colours right on the glass", async () => {
    const { sim, display } = await rig({ width: 320, height: 180, bitsPerPixel: 16, format: BGR565 });
    await display.show(sample("error"), T0);
    // The error headline is red (255, 72, 64): r5 = 31 at bits 0-4, g6 = 18, b5 = 8 at bits 11-15.
    const expected = 31 | (18 << 5) | (8 << 11);
    const bytes = await sim.bytes();
    let found = false;
    for (let i = 0; i < bytes.length && !found; i += 2)
      found = ((bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8)) === expected;
    expect(found).toBe(true);
    const colour = firstColoured(await sim.rgb());
    expect(colour?.[0]).toBeGreaterThan(200);
    expect(colour?.[2]).toBeLessThan(100);
    expect(firstDifference(await sim.rgb(), display.frameRgb().rgb)).toBe(-1);
  });

  test("the same frame on an RGB panel and a BGR panel looks the same; the bytes differ", async () => {
    const rgb = await rig({ width: 320, height: 180, bitsPerPixel: 32 });
    const bgr = await rig({ width: 320, height: 180, bitsPerPixel: 32, format: XBGR8888 });
    for (const { display } of [rgb, bgr]) await display.show(sample("wrong-account"), T0);
    expect(firstDifference(await rgb.sim.rgb(), await bgr.sim.rgb())).toBe(-1);
    expect(firstDifference(await rgb.sim.bytes(), await bgr.sim.bytes())).toBeGreaterThanOrEqual(0);
  });

  test("where FBIOGET_VSCREENINFO is not answered (a plain file), the KMS default is assumed", async () => {
    const sim = await FramebufferSimulator.create({ width: 64, height: 32, bitsPerPixel: 16 });
    sims.push(sim);
    const display = await FramebufferDisplay.open({
      sysfsRoot: sim.sysfsRoot,
      devRoot: sim.devRoot,
      ioctl: { ioctl: () => -1, errno: () => 25 },
    });
    displays.push(display);
    expect(display.geometry.format).toEqual(defaultPixelFormat(16));
  });

  test("a format it cannot draw (a palette) is E_FB_FORMAT, and the device is closed again", async () => {
    const palette: PixelFormat = { ...defaultPixelFormat(32), red: { offset: 0, length: 0 } };
    const sim = await FramebufferSimulator.create({
      width: 64,
      height: 32,
      bitsPerPixel: 32,
      format: palette,
    });
    sims.push(sim);
    const error = await FramebufferDisplay.open({
      sysfsRoot: sim.sysfsRoot,
      devRoot: sim.devRoot,
      ioctl: sim.ioctl,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FramebufferError);
    expect((error as FramebufferError).code).toBe("E_FB_FORMAT");
  });
});

describe("framebuffer rotate", () => {
  test.each([90, 270] as const)(
    "%i: laid out for the height as width, turned onto the screen; the QR still decodes",
    async (rotate) => {
      const { sim, display } = await rig({ width: 640, height: 480, bitsPerPixel: 32 }, rotate);
      await display.show(codeScreen, T0);
      const page = framebufferFrame(codeScreen, T0, 480, 640);
      const glass = await sim.rgb();
      // A pixel of the upright page inside the QR code lands where the turn puts it.
      const qr = page.qrRegion;
      expect(qr).toBeDefined();
      if (qr === undefined) return;
      const [x, y] = [qr.x + 1, qr.y + 1];
      const [tx, ty] = rotate === 90 ? [page.height - 1 - y, x] : [y, page.width - 1 - x];
      const from = (y * page.width + x) * 3;
      const to = (ty * 640 + tx) * 3;
      expect([...glass.subarray(to, to + 3)]).toEqual([...page.rgb.subarray(from, from + 3)]);
      expect(display.layout.width).toBe(640);
      expect(decodeQr(glass, 640, 480)).toBe(URL);
      expect(firstDifference(glass, display.frameRgb().rgb)).toBe(-1);
    },
  );

  test("180: the page upside down", async () => {
    const { sim, display } = await rig({ width: 320, height: 180, bitsPerPixel: 32 }, 180);
    await display.show(sample("signed-in"), T0);
    const page = framebufferFrame(sample("signed-in"), T0, 320, 180);
    const glass = await sim.rgb();
    for (const [x, y] of [
      [0, 0],
      [100, 50],
      [160, 90],
      [319, 179],
    ] as const) {
      const from = (y * 320 + x) * 3;
      const to = ((179 - y) * 320 + (319 - x)) * 3;
      expect([...glass.subarray(to, to + 3)]).toEqual([...page.rgb.subarray(from, from + 3)]);
    }
  });
});
