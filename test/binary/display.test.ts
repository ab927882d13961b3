import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { run, start } from "../support/cli.ts";
import {
  approveShown,
  boxFor,
  createProfile,
  emulatorPerFile,
  expectOneSentence,
  tokenJson,
} from "./harness.ts";

const emulator = emulatorPerFile();

describe.concurrent("entratool display", () => {
  it.each(["hd44780", "ssd1306", "ssd1680", "framebuffer", "leds", "terminal"])(
    "preview --driver %s writes a PNG of the code screen",
    async (driver) => {
      const box = boxFor(emulator());
      const out = join(box.binDir, "..", `${driver}.png`);
      const result = await run(
        ["display", "preview", "--driver", driver, "--screen", "code", "--out", out],
        box,
      );
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe(`Wrote ${out} (${driver}, code).\n`);
      const png = PNG.sync.read(readFileSync(out));
      expect(png.width).toBeGreaterThan(100);
      expect(png.height).toBeGreaterThan(40);
    },
  );

  it("an unknown driver or screen is a usage error, in one sentence", async () => {
    const box = boxFor(emulator());
    const driver = await run(["display", "preview", "--driver", "lcd", "--out", "x.png"], box);
    expect(driver.code).toBe(2);
    expectOneSentence(
      driver.stderr,
      "--driver must be one of hd44780, ssd1306, ssd1680, framebuffer, leds, terminal (got 'lcd').",
    );
    const screen = await run(
      ["display", "preview", "--driver", "leds", "--screen", "nope", "--out", "x.png"],
      box,
    );
    expect(screen.code).toBe(2);
    expect(screen.stderr).toContain("--screen must be one of");
  });

  it("a configuration with mistakes lists every one with its path", async () => {
    const box = boxFor(emulator());
    const file = join(box.binDir, "..", "bad.json");
    writeFileSync(
      file,
      JSON.stringify({ version: 1, displays: [{ type: "hd44780", address: "0x99" }, { type: "oled" }] }),
    );
    const result = await run(["display", "test", "--config", file], box);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("displays[0].address");
    expect(result.stderr).toContain("displays[1].type");
    expect(result.stderr).not.toContain("    at ");
  });

  it("display test on a machine without the hardware: each display FAILED with its fix, nothing crashes", async () => {
    const box = boxFor(emulator());
    const file = join(box.binDir, "..", "config.json");
    writeFileSync(file, JSON.stringify({ version: 1, displays: [{ type: "ssd1306", bus: 9 }] }));
    const result = await run(["display", "test", "--config", file, "--step", "0"], box);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("Showing: code");
    expect(result.stdout).toMatch(/ssd1306 .*: FAILED: \/dev\/i2c-9 does not exist/);
  });
});

describe.concurrent("get-token --config", () => {
  it("a display that cannot be opened never stops the sign-in", async () => {
    const emu = emulator();
    const box = boxFor(emu);
    await createProfile(box, "default");
    const file = join(box.binDir, "..", "config.json");
    writeFileSync(file, JSON.stringify({ version: 1, displays: [{ type: "hd44780", bus: 9 }] }));
    const child = start(["get-token", "--config", file, "--output", "json"], box);
    await approveShown(emu, child);
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    expect(tokenJson(result.stdout).from_cache).toBe(false);
  });
});
