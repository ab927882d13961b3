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
  FramebufferSimulator,
  type FramebufferSimulatorOptions,
} from "../../../display/drivers/framebuffer/sim.ts";
import { encodeRgbPng } from "../../../display/render/png.ts";
import { SCREEN_KINDS } from "../../../display/screens.ts";
import { codeScreen, sample, T0, URL } from "../samples.ts";

const sims: FramebufferSimulator[] = [];
const displays: FramebufferDisplay[] = [];
afterEach(async () => {
  for (const display of displays.splice(0)) await display.close();
  for (const sim of sims.splice(0)) await sim.dispose();
});

async function rig(options: FramebufferSimulatorOptions) {
  const sim = await FramebufferSimulator.create(options);
  sims.push(sim);
  const display = await FramebufferDisplay.open({ sysfsRoot: sim.sysfsRoot, devRoot: sim.devRoot });
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
