import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GOLDEN_CODE, GOLDEN_DIR, PREVIEW_DIR, pixelDifference } from "../../scripts/golden.ts";
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
  // The compiled binary's previews of the code screen, each against the image a person looked at
  // (test/display/golden, display/previews), pixel by pixel: same arguments, same picture.
  it.each([
    ["hd44780", [], join(GOLDEN_DIR, "hd44780-16x2-code.png")],
    ["hd44780", ["--size", "20x4"], join(GOLDEN_DIR, "hd44780-20x4-code.png")],
    ["ssd1306", ["--page", "2"], join(GOLDEN_DIR, "ssd1306-code.png")],
    ["ssd1306", ["--sheet"], join(PREVIEW_DIR, "ssd1306.png")],
    ["ssd1680", [], join(GOLDEN_DIR, "ssd1680-code.png")],
    ["framebuffer", ["--size", "640x360"], join(GOLDEN_DIR, "framebuffer-code.png")],
    ["leds", [], join(PREVIEW_DIR, "leds.png")],
    ["terminal", [], join(PREVIEW_DIR, "terminal.png")],
  ])(
    "preview --driver %s %j draws the code screen as the golden image shows it",
    async (driver, extra, golden) => {
      const box = boxFor(emulator());
      const out = join(box.binDir, "..", `${driver}.png`);
      const result = await run(
        [
          "display",
          "preview",
          "--driver",
          driver,
          "--screen",
          "code",
          "--code",
          GOLDEN_CODE,
          ...extra,
          "--out",
          out,
        ],
        box,
      );
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe(`Wrote ${out} (${driver}, code).\n`);
      expect(pixelDifference(readFileSync(golden), readFileSync(out))).toBeUndefined();
    },
  );

  it("a page the screen does not have, or --size where it means nothing, is a usage error", async () => {
    const box = boxFor(emulator());
    const page = await run(
      ["display", "preview", "--driver", "ssd1306", "--page", "3", "--out", join(box.home, "x.png")],
      box,
    );
    expect(page.code).toBe(2);
    expectOneSentence(
      page.stderr,
      "Cannot preview 'code' on ssd1306: The 'code' screen of ssd1306 has pages 1-2, not 3.",
    );
    const size = await run(
      ["display", "preview", "--driver", "leds", "--size", "16x2", "--out", join(box.home, "x.png")],
      box,
    );
    expect(size.code).toBe(2);
    expectOneSentence(size.stderr, "--size applies to hd44780 and framebuffer only, not leds.");
  });

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

  it("display test without --config names the default file it looked for", async () => {
    const box = boxFor(emulator());
    const result = await run(["display", "test", "--step", "0"], box);
    expect(result.code).toBe(2);
    expectOneSentence(
      result.stderr,
      `The configuration file ${join(box.home, "config", "config.json")} does not exist: create it (README, Displays), or name another with --config FILE.`,
    );
  });

  it("--config /dev/zero fails at once, in one sentence", async () => {
    const box = boxFor(emulator());
    const result = await run(["display", "test", "--config", "/dev/zero"], box);
    expect(result.code).toBe(2);
    expectOneSentence(
      result.stderr,
      "The configuration file /dev/zero is larger than 1 MiB: name the configuration file itself.",
    );
  });

  it("display test on a machine without the hardware: each display FAILED with its fix, nothing crashes", async () => {
    const box = boxFor(emulator());
    const file = join(box.binDir, "..", "config.json");
    writeFileSync(file, JSON.stringify({ version: 1, displays: [{ type: "ssd1306", bus: 9 }] }));
    const result = await run(["display", "test", "--config", file, "--step", "0"], box);
    // 12: a display, LED or bus could not be used (not 1, an internal error).
    expect(result.code).toBe(12);
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
