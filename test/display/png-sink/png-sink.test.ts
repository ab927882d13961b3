import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { createLogger } from "../../../agent/pino-logger.ts";
import { type AgentConfig, validateConfig } from "../../../display/config.ts";
import { PngSink } from "../../../display/drivers/png/driver.ts";
import { renderPreview } from "../../../display/preview.ts";
import type { Screen } from "../../../display/screens.ts";
import { createSimulatedDisplays } from "../../../display/set.ts";
import { codeScreen, sample, T0 } from "../samples.ts";

function config(displays: unknown[]): AgentConfig {
  const checked = validateConfig({ version: 1, displays });
  if (!checked.ok) throw new Error(checked.errors.join("; "));
  return checked.config;
}

/** Width, height and RGBA pixels, as pngjs decodes them. */
function pixels(png: Uint8Array) {
  const image = PNG.sync.read(Buffer.from(png));
  return { width: image.width, height: image.height, data: Buffer.from(image.data) };
}

describe("png display configuration", () => {
  test("defaults to the e-ink picture; as and scale taken", () => {
    expect(config([{ type: "png", file: "/var/lib/entratool/screen.png" }]).displays).toEqual([
      { type: "png", file: "/var/lib/entratool/screen.png", as: "ssd1680" },
    ]);
    expect(config([{ type: "png", file: "/srv/oled.png", as: "ssd1306", scale: 8 }]).displays).toEqual([
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

describe("PngSink", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "entratool-png-sink-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function counted(as: "ssd1306" | "ssd1680" | "framebuffer" | "hd44780", scale?: number) {
    const writes: Uint8Array[] = [];
    const sink = new PngSink({
      file: join(dir, "screen.png"),
      as,
      ...(scale === undefined ? {} : { scale }),
      now: () => T0,
      write: async (_file, png) => void writes.push(png),
    });
    return { sink, writes };
  }

  test.each([
    ["ssd1306", 2],
    ["ssd1680", undefined],
    ["hd44780", undefined],
  ] as const)("as %s: the file holds what renderPreview draws for the screen", async (as, scale) => {
    const clock = new VirtualClock(T0);
    const file = join(dir, "screen.png");
    const sims = await createSimulatedDisplays(
      config([{ type: "png", file, as, ...(scale === undefined ? {} : { scale }) }]),
      { clock, logger: createLogger({ level: "silent", destination: { write: () => undefined } }) },
    );
    const [display] = sims.set.displays;
    if (display === undefined) throw new Error("no display");
    await display.init();
    await display.show(codeScreen, T0);
    const expected = await renderPreview({
      driver: as,
      screen: codeScreen,
      now: T0,
      ...(scale === undefined ? {} : { options: { scale } }),
    });
    expect(pixels(await readFile(file))).toEqual(pixels(expected));
    // Owner only: the live code is for the person at the device, not every local account.
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await display.close();
    await sims.dispose();
  });

  test("an unchanged picture is not written again; a changed one is", async () => {
    const { sink, writes } = counted("ssd1680");
    await sink.show(codeScreen, T0);
    await sink.show(codeScreen, T0 + 1000);
    await sink.show({ ...codeScreen }, T0 + 2000);
    expect(writes).toHaveLength(1);
    await sink.show(sample("signed-in"), T0 + 3000);
    expect(writes).toHaveLength(2);
  });

  test("an unchanged picture leaves the file alone (same inode), through the real writer", async () => {
    const file = join(dir, "screen.png");
    const sink = new PngSink({ file, as: "ssd1306" });
    await sink.show(codeScreen, T0);
    const before = await stat(file);
    await sink.show(codeScreen, T0);
    expect((await stat(file)).ino).toBe(before.ino);
    await sink.show(sample("expired"), T0);
    expect((await stat(file)).ino).not.toBe(before.ino);
  });

  test("clear() writes the no-code screen", async () => {
    const { sink, writes } = counted("ssd1306");
    await sink.show(codeScreen, T0);
    await sink.clear();
    expect(writes).toHaveLength(2);
    const cancelled: Screen = { kind: "cancelled" };
    expect(pixels(writes[1] ?? new Uint8Array())).toEqual(
      pixels(await renderPreview({ driver: "ssd1306", screen: cancelled, now: T0 })),
    );
  });

  test("closing the set takes the code off the picture", async () => {
    const clock = new VirtualClock(T0);
    const file = join(dir, "screen.png");
    const sims = await createSimulatedDisplays(config([{ type: "png", file, as: "ssd1306" }]), {
      clock,
      logger: createLogger({ level: "silent", destination: { write: () => undefined } }),
    });
    await sims.set.init();
    await sims.set.show(codeScreen, T0);
    await sims.set.close();
    const cancelled = await renderPreview({ driver: "ssd1306", screen: { kind: "cancelled" }, now: T0 });
    expect(pixels(await readFile(file))).toEqual(pixels(cancelled));
    await sims.dispose();
  });

  test("a missing directory is a failed display in the set, logged; the others keep working", async () => {
    const clock = new VirtualClock(T0);
    const lines: Array<{ level: string; msg: string }> = [];
    const logger = createLogger({
      level: "debug",
      destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
    });
    const file = join(dir, "missing", "screen.png");
    const sims = await createSimulatedDisplays(
      config([{ type: "png", file, as: "ssd1306" }, { type: "ssd1306" }]),
      { clock, logger },
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
