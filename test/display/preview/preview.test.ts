import jsQR from "jsqr";
import { PNG } from "pngjs";
import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { Hd44780Display } from "../../../display/drivers/hd44780/driver.ts";
import { lcdFrame } from "../../../display/drivers/hd44780/layout.ts";
import { LCD_MARGIN, lcdDotOrigin } from "../../../display/drivers/hd44780/picture.ts";
import { Hd44780Simulator } from "../../../display/drivers/hd44780/sim.ts";
import { ledCircleCentre } from "../../../display/drivers/leds/picture.ts";
import { DeviceCodePrompt } from "../../../display/drivers/terminal/driver.ts";
import { TerminalSimulator } from "../../../display/drivers/terminal/sim.ts";
import { renderPreview } from "../../../display/preview.ts";
import type { Screen } from "../../../display/screens.ts";
import { createSimulatedDisplays } from "../../../display/simulated.ts";
import { displaysOf } from "../configs.ts";
import { CODE, codeScreen, sample, T0, URL } from "../samples.ts";

function decode(png: Uint8Array): PNG {
  return PNG.sync.read(Buffer.from(png));
}

function pixel(image: PNG, x: number, y: number): [number, number, number] {
  const at = (y * image.width + x) * 4;
  return [image.data[at] ?? 0, image.data[at + 1] ?? 0, image.data[at + 2] ?? 0];
}

function qr(image: PNG): string | undefined {
  return jsQR(new Uint8ClampedArray(image.data), image.width, image.height)?.data;
}

describe("renderPreview", () => {
  test.each([
    ["hd44780", 2 * LCD_MARGIN + (16 * 6 - 1) * 4, 2 * LCD_MARGIN + (2 * 9 - 1) * 4],
    ["ssd1306", 128 * 4, 64 * 4],
    ["ssd1680", 250 * 3, 122 * 3],
    ["framebuffer", 1280, 720],
    ["leds", (56 + 40 * 16 + 8) * 2, (20 + 3 * 16 + 8) * 2],
    // The server's message wraps to 2 lines above the 10-line box.
    ["terminal", (80 * 6 + 12) * 2, (12 * 10 + 12) * 2],
  ] as const)("%s: a PNG of %i x %i", async (driver, width, height) => {
    const image = decode(await renderPreview({ type: driver, screen: codeScreen, now: T0 }));
    expect([image.width, image.height]).toEqual([width, height]);
  });

  test("the LCD glass lights exactly the dots of the text the simulator decoded", async () => {
    const screen = codeScreen;
    const image = decode(await renderPreview({ type: "hd44780", screen, now: T0 }));
    // The same driver on a separate simulator: what the glass should read.
    const clock = new VirtualClock(T0);
    const sim = new Hd44780Simulator({ clock });
    await new Hd44780Display({ bus: sim, address: 0x27, columns: 16, rows: 2, clock }).show(screen, T0);
    expect(sim.lines()).toEqual(lcdFrame(screen, T0, { columns: 16, rows: 2 }));
    expect(sim.lines()[0]).toContain(CODE);
    const glass = sim.glass();
    let lit = 0;
    for (let row = 0; row < 2; row++) {
      for (let column = 0; column < 16; column++) {
        for (let dotRow = 0; dotRow < 8; dotRow++) {
          for (let dotColumn = 0; dotColumn < 5; dotColumn++) {
            const [x, y] = lcdDotOrigin(row, column, dotRow, dotColumn);
            const [r] = pixel(image, x + 1, y + 1);
            const on = glass[row * 8 + dotRow]?.[column * 5 + dotColumn] ?? false;
            expect(r > 128, `cell ${row},${column} dot ${dotRow},${dotColumn}`).toBe(on);
            if (on) lit++;
          }
        }
      }
    }
    expect(lit).toBeGreaterThan(100);
    // Glass background is dark blue-green.
    const [r, g, b] = pixel(image, 2, 2);
    expect(g > r && b > r && g < 128).toBe(true);
  });

  test("the OLED's first page is the QR code, decoding to the URL; page 2 is the code, lit on black", async () => {
    const image = decode(await renderPreview({ type: "ssd1306", screen: codeScreen, now: T0 + 7000 }));
    expect(qr(image)).toBe(URL);
    const codePage = decode(
      await renderPreview({ type: "ssd1306", screen: codeScreen, now: T0, options: { page: 2 } }),
    );
    expect(pixel(codePage, 0, 0)).toEqual([0, 0, 0]);
    expect(qr(codePage)).toBeUndefined();
  });

  test("the same request gives the same picture, whatever the time it is made at", async () => {
    const at = (now: number, options = {}) =>
      renderPreview({ type: "ssd1306", screen: { ...codeScreen, expiresAt: now + 900_000 }, now, options });
    for (const options of [{}, { page: 2 }]) {
      const first = decode(await at(T0, options));
      for (const later of [1000, 4500, 7000, 13_000]) {
        expect(decode(await at(T0 + later, options)).data.equals(first.data), `${later} ms`).toBe(true);
      }
    }
  });

  test("a sheet: every page side by side, 8 px apart (scaled); a page the screen lacks is refused", async () => {
    const sheet = decode(
      await renderPreview({
        type: "ssd1306",
        screen: codeScreen,
        now: T0,
        options: { sheet: true, scale: 1 },
      }),
    );
    expect([sheet.width, sheet.height]).toEqual([128 + 8 + 128, 64]);
    const lcd = decode(
      await renderPreview({ type: "hd44780", screen: codeScreen, now: T0, options: { sheet: true } }),
    );
    // 16x2: the second row pages through "microsoft.com/", "devicelogin", the countdown.
    const glass = 2 * LCD_MARGIN + (16 * 6 - 1) * 4;
    expect(lcd.width).toBe(3 * glass + 2 * 8);
    await expect(
      renderPreview({ type: "ssd1306", screen: codeScreen, now: T0, options: { page: 3 } }),
    ).rejects.toThrow("The 'code' screen of ssd1306 has pages 1-2, not 3.");
    await expect(
      renderPreview({ type: "ssd1680", screen: codeScreen, now: T0, options: { page: 2 } }),
    ).rejects.toThrow("The 'code' screen of ssd1680 has 1 page, not 2.");
  });

  test("the e-ink preview's QR code decodes to the URL (ink on white)", async () => {
    const image = decode(await renderPreview({ type: "ssd1680", screen: codeScreen, now: T0 }));
    expect(qr(image)).toBe(URL);
    expect(pixel(image, image.width - 1, image.height - 1)).toEqual([255, 255, 255]);
  });

  test("the framebuffer preview's QR code decodes to the URL", async () => {
    const image = decode(
      await renderPreview({
        type: "framebuffer",
        screen: codeScreen,
        now: T0,
        options: { framebuffer: { width: 640, height: 480, bitsPerPixel: 16 } },
      }),
    );
    expect([image.width, image.height]).toEqual([640, 480]);
    expect(qr(image)).toBe(URL);
  });

  test("the LED strip: slow blink on status (5 of every 10 steps), one beep, error dark", async () => {
    const image = decode(
      await renderPreview({ type: "leds", screen: codeScreen, now: T0, options: { scale: 1 } }),
    );
    const lit = (row: number, step: number): boolean => {
      const [x, y] = ledCircleCentre(row, step);
      const [r, g, b] = pixel(image, x, y);
      return Math.max(r, g, b) > 120;
    };
    const status = Array.from({ length: 40 }, (_, step) => lit(0, step));
    expect(status).toEqual(Array.from({ length: 40 }, (_, step) => step % 10 < 5));
    expect(Array.from({ length: 40 }, (_, step) => lit(1, step)).some(Boolean)).toBe(false);
    expect(Array.from({ length: 40 }, (_, step) => lit(2, step))).toEqual(
      Array.from({ length: 40 }, (_, step) => step === 0),
    );
  });

  test("the LED strip for an error: fast blink on the error LED", async () => {
    const image = decode(
      await renderPreview({
        type: "leds",
        screen: sample("error"),
        now: T0,
        options: { scale: 1, durationMs: 1000 },
      }),
    );
    const lit = (row: number, step: number): boolean => {
      const [x, y] = ledCircleCentre(row, step);
      return Math.max(...pixel(image, x, y)) > 120;
    };
    expect(Array.from({ length: 10 }, (_, step) => lit(1, step))).toEqual(
      Array.from({ length: 10 }, (_, step) => step % 2 === 0),
    );
    expect(Array.from({ length: 10 }, (_, step) => lit(0, step)).some(Boolean)).toBe(false);
  });

  test("terminal: the prompt's own lines, code and URL as issued; a screen that prints nothing is refused", async () => {
    const terminal = new TerminalSimulator({ isTTY: false, columns: 80 });
    await new DeviceCodePrompt(terminal, new VirtualClock(T0), { color: false }).show(codeScreen, T0);
    const lines = terminal.lines();
    expect(lines.some((line) => /^│ 2\. Enter code: FZ2X8LQ3N +│$/.test(line))).toBe(true);
    expect(lines.some((line) => line.includes(`Visit: ${URL}`))).toBe(true);
    expect(lines.every((line) => [...line].length <= 80)).toBe(true);
    // One line of its own: "Waiting for the system clock to be set…".
    const waitingForTime = decode(
      await renderPreview({ type: "terminal", screen: sample("waiting-for-time"), now: T0 }),
    );
    expect(waitingForTime.height).toBe((10 + 12) * 2);
    await expect(renderPreview({ type: "terminal", screen: sample("signed-in"), now: T0 })).rejects.toThrow(
      /prints nothing of its own on this screen/,
    );
  });

  test("every driver renders every screen kind without error (terminal: code screens)", async () => {
    const kinds: Screen[] = (
      ["starting", "code", "waiting", "signed-in", "sign-in-needed", "blocked", "expired", "error"] as const
    ).map(sample);
    for (const driver of ["hd44780", "ssd1306", "ssd1680", "leds"] as const) {
      for (const screen of kinds) {
        const image = decode(
          await renderPreview({ type: driver, screen, now: T0, options: { durationMs: 500 } }),
        );
        expect(image.width, `${driver} ${screen.kind}`).toBeGreaterThan(0);
      }
    }
  });

  test("the simulated displays behind the preview are the configured ones", async () => {
    const image = decode(
      await renderPreview({
        type: "hd44780",
        screen: codeScreen,
        now: T0,
        options: { columns: 20, rows: 4 },
      }),
    );
    expect(image.width).toBe(2 * LCD_MARGIN + (20 * 6 - 1) * 4);
    const { hardware, dispose } = await createSimulatedDisplays(
      displaysOf([{ type: "hd44780", columns: 20, rows: 4 }]),
      {
        clock: new VirtualClock(T0),
        logger: (await import("../../../agent/pino-logger.ts")).createLogger({
          level: "silent",
          destination: { write: () => undefined },
        }),
      },
    );
    expect(hardware[0]?.type === "hd44780" && hardware[0].sim.columns).toBe(20);
    await dispose();
  });
});
