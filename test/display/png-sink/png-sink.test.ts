import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import jsQR from "jsqr";
import { PNG } from "pngjs";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { validateConfig } from "../../../agent/config/load.ts";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { createLogger } from "../../../agent/pino-logger.ts";
import { PngSink } from "../../../display/drivers/png/driver.ts";
import { renderPreview } from "../../../display/preview.ts";
import { createSimulatedDisplays } from "../../../display/simulated.ts";
import { GOLDEN_DIR, pixelDifference } from "../../../scripts/golden.ts";
import { displaysOf } from "../configs.ts";
import { codeScreen, sample, T0 } from "../samples.ts";

/** A golden image (test/display/golden), the picture a person looked at. */
function golden(name: string): Promise<Uint8Array> {
  return readFile(join(GOLDEN_DIR, name));
}

function silent() {
  return createLogger({ level: "silent", destination: { write: () => undefined } });
}

describe("png display configuration", () => {
  test("defaults to the e-ink picture; as and scale taken", () => {
    expect(displaysOf([{ type: "png", file: "/var/lib/entratool/screen.png" }])).toEqual([
      { type: "png", file: "/var/lib/entratool/screen.png", as: "ssd1680" },
    ]);
    expect(displaysOf([{ type: "png", file: "/srv/oled.png", as: "ssd1306", scale: 8 }])).toEqual([
      { type: "png", file: "/srv/oled.png", as: "ssd1306", scale: 8 },
    ]);
  });

  test("every error at once, each with its path", () => {
    const checked = validateConfig({
      version: 1,
      displays: [
        { type: "png", file: "screen.png", as: "leds", scale: 0 },
        { type: "png", file: "/var/lib/entratool/screen.jpg", scale: 1.5, colour: "red" },
        { type: "png" },
        { type: "png", file: "/a/b.png" },
        { type: "png", file: "/a/b.png", as: "hd44780" },
      ],
    });
    expect(checked).toEqual({
      ok: false,
      errors: [
        'displays[0].file: must be an absolute path ending in .png, e.g. "/var/lib/entratool/screen.png" (found "screen.png")',
        'displays[0].as: must be one of ssd1306, ssd1680, framebuffer, hd44780 (found "leds")',
        "displays[0].scale: must be a whole number 1-8 (found 0)",
        'displays[1].file: must be an absolute path ending in .png, e.g. "/var/lib/entratool/screen.png" (found "/var/lib/entratool/screen.jpg")',
        "displays[1].scale: must be a whole number 1-8 (found 1.5)",
        "displays[1].colour: unknown field",
        'displays[2].file: is required (an absolute path ending in .png, e.g. "/var/lib/entratool/screen.png")',
        "displays[4].file: file /a/b.png is already used by displays[3].file",
      ],
    });
  });
});

describe("the png display", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "entratool-png-sink-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A png display in a set of simulated displays, drawing through the preview path. */
  async function pngDisplay(config: Record<string, unknown>) {
    const clock = new VirtualClock(T0);
    // The set's countdown ticker waits for the test; only the drivers' own short waits run by themselves.
    clock.passiveSleepsFromMs = 1000;
    const file = join(dir, "screen.png");
    const sims = await createSimulatedDisplays(displaysOf([{ type: "png", file, ...config }]), {
      clock,
      logger: silent(),
      preview: renderPreview,
    });
    return { ...sims, file };
  }

  test.each([
    ["ssd1680", "ssd1680-code.png"],
    ["hd44780", "hd44780-16x2-code.png"],
  ] as const)(
    "as %s: the file holds what that display shows (its golden image), owner only",
    async (as, name) => {
      const { set, file, dispose } = await pngDisplay({ as });
      await set.show(codeScreen, T0);
      expect(pixelDifference(await golden(name), await readFile(file))).toBeUndefined();
      // Owner only: the live code is for the person at the device, not every local account.
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      await set.close();
      await dispose();
    },
  );

  test("as ssd1306: it turns the OLED's pages as the OLED does, counted from when the code came up", async () => {
    const { set, file, dispose } = await pngDisplay({ as: "ssd1306" });
    await set.show(codeScreen, T0 - 7000);
    await set.show(codeScreen, T0);
    expect(pixelDifference(await golden("ssd1306-code.png"), await readFile(file))).toBeUndefined();
    await set.close();
    await dispose();
  });

  test("an unchanged picture is not written again; a changed one is", async () => {
    const writes: Uint8Array[] = [];
    const sink = new PngSink({
      file: join(dir, "screen.png"),
      render: (screen, now, since) => renderPreview({ type: "ssd1680", screen, now, since }),
      write: async (_file, png) => void writes.push(png),
    });
    await sink.show(codeScreen, T0);
    // The e-ink countdown is in whole minutes: a second later the picture is the same.
    await sink.show(codeScreen, T0 + 1000);
    await sink.show({ ...codeScreen }, T0 + 2000);
    expect(writes).toHaveLength(1);
    await sink.show(sample("signed-in"), T0 + 3000);
    expect(writes).toHaveLength(2);
  });

  test("an unchanged picture leaves the file alone (same inode), through the real writer", async () => {
    const file = join(dir, "screen.png");
    const sink = new PngSink({
      file,
      render: (screen, now, since) => renderPreview({ type: "hd44780", screen, now, since }),
    });
    await sink.show(codeScreen, T0);
    const before = await stat(file);
    await sink.show(codeScreen, T0);
    expect((await stat(file)).ino).toBe(before.ino);
    await sink.show(sample("expired"), T0);
    expect((await stat(file)).ino).not.toBe(before.ino);
  });

  test("closing the set takes the code off the picture; a screen without it stays", async () => {
    const { set, file, dispose } = await pngDisplay({ as: "ssd1680" });
    await set.show(codeScreen, T0);
    const scanned = (png: Buffer): string | undefined => {
      const image = PNG.sync.read(png);
      return jsQR(new Uint8ClampedArray(image.data), image.width, image.height)?.data;
    };
    expect(scanned(await readFile(file))).toBe(codeScreen.qrPayload);
    await set.close();
    const closed = await readFile(file);
    expect(pixelDifference(await golden("ssd1680-code.png"), closed)).toBeDefined();
    expect(scanned(closed)).toBeUndefined();
    await dispose();

    const again = await pngDisplay({ as: "ssd1680" });
    await again.set.show(codeScreen, T0);
    await again.set.show(sample("expired"), T0 + 1000);
    await again.set.close();
    expect(pixelDifference(await golden("ssd1680-expired.png"), await readFile(again.file))).toBeUndefined();
    await again.dispose();
  });

  test("a missing directory is a failed display in the set, logged; the others keep working", async () => {
    const clock = new VirtualClock(T0);
    clock.passiveSleepsFromMs = 1000;
    const lines: Array<{ level: string; msg: string }> = [];
    const logger = createLogger({
      level: "debug",
      destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
    });
    const file = join(dir, "missing", "screen.png");
    const sims = await createSimulatedDisplays(
      displaysOf([{ type: "png", file, as: "ssd1306" }, { type: "ssd1306" }]),
      { clock, logger, preview: renderPreview },
    );
    await sims.set.init();
    await sims.set.show(codeScreen, T0);
    const [png, oled] = sims.set.status();
    expect(png?.health).toBe("failed");
    expect(png?.error).toBe(`Cannot write ${file}: its directory does not exist; create it.`);
    expect(oled?.health).toBe("ok");
    const hardware = sims.hardware.find((h) => h.type === "ssd1306");
    const lit = hardware?.type === "ssd1306" && hardware.sim.pixels().toRows().join("").includes("#");
    expect(lit).toBe(true);
    expect(lines.filter((line) => line.level === "error").map((line) => line.msg)).toEqual([
      `displays[0] png as ssd1306 to ${file}: Cannot write ${file}: its directory does not exist; create it. The other displays keep working.`,
    ]);
    await sims.set.close();
    await sims.dispose();
  });
});
