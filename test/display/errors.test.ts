import { describe, expect, test } from "vitest";
import { EntraToolError, ERRORS, isEntraToolError } from "../../agent/core/errors.ts";
import { FramebufferError } from "../../display/drivers/framebuffer/driver.ts";
import { Hd44780Error } from "../../display/drivers/hd44780/driver.ts";
import { ButtonConfigError } from "../../display/drivers/leds/button.ts";
import { LedError } from "../../display/drivers/leds/driver.ts";
import { Ssd1306Error } from "../../display/drivers/ssd1306/driver.ts";
import { Ssd1680Error } from "../../display/drivers/ssd1680/driver.ts";
import { PreviewError } from "../../display/preview.ts";

describe("the display drivers' errors", () => {
  test.each([
    ["Hd44780Error", new Hd44780Error("E_DISPLAY_WRITE", "The LCD did not answer.")],
    ["Ssd1306Error", new Ssd1306Error("E_DISPLAY_CONFIG", "Bad address.")],
    ["Ssd1680Error", new Ssd1680Error("E_DISPLAY_BUSY", "Stayed busy.")],
    ["FramebufferError", new FramebufferError("E_FB_PERMISSION", "Not in group video.")],
    ["LedError", new LedError("status", new Error("EBUSY"))],
    ["ButtonConfigError", new ButtonConfigError("Too short.")],
    ["PreviewError", new PreviewError("No such page.")],
  ])("%s is an EntraToolError: its code is in the catalogue and gives the exit code", (name, error) => {
    expect(error).toBeInstanceOf(EntraToolError);
    expect(isEntraToolError(error)).toBe(true);
    expect(error.name).toBe(name);
    expect(error.exitCode).toBe(ERRORS[error.code].exit);
  });

  test("each keeps its sentence and cause", () => {
    const cause = new Error("EBUSY");
    const led = new LedError("status", cause);
    expect(led.code).toBe("E_LED_WRITE");
    expect(led.message).toMatch(/^Could not set the status GPIO line \(EBUSY\)\./);
    expect(led.cause).toBe(cause);
    const fb = new FramebufferError("E_FB_ABSENT", "No framebuffer at /dev/fb1.", cause);
    expect([fb.code, fb.message, fb.cause]).toEqual(["E_FB_ABSENT", "No framebuffer at /dev/fb1.", cause]);
  });
});
