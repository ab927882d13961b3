import { describe, expect, test } from "vitest";
import {
  chunk,
  displayUrl,
  lcdFrame,
  lcdText,
  remaining,
  wrap,
} from "../../../display/drivers/hd44780-layout.ts";

describe("HD44780 layout", () => {
  test("countdown: whole seconds rounded up, hours when needed, never negative", () => {
    expect(remaining(900_000, 0)).toBe("15:00");
    expect(remaining(899_001, 0)).toBe("15:00");
    expect(remaining(899_000, 0)).toBe("14:59");
    expect(remaining(3_723_000, 0)).toBe("1:02:03");
    expect(remaining(0, 5_000)).toBe("0:00");
  });

  test("URLs drop only https:// and are cut after punctuation", () => {
    expect(displayUrl("https://microsoft.com/devicelogin")).toBe("microsoft.com/devicelogin");
    expect(displayUrl("http://example.test/x")).toBe("http://example.test/x");
    expect(chunk("microsoft.com/devicelogin", 16)).toEqual(["microsoft.com/", "devicelogin"]);
    expect(chunk("abcdefghijklmnopqrst", 8)).toEqual(["abcdefgh", "ijklmnop", "qrst"]);
  });

  test("words wrap to the width; long words are chunked", () => {
    expect(wrap("Cannot reach Microsoft Entra ID.", 16)).toEqual(["Cannot reach", "Microsoft Entra", "ID."]);
    expect(wrap("user alice@contoso.onmicrosoft.com", 16)).toEqual([
      "user",
      "alice@contoso.",
      "onmicrosoft.com",
    ]);
  });

  test("only the ROM's ASCII survives: accents folded, yen/arrow codes and controls replaced", () => {
    expect(lcdText("Café…\\~\ttab")).toBe("Cafe...?? tab");
  });

  test("every row is exactly the width, even for overlong single words", () => {
    const frame = lcdFrame({ kind: "offline", message: "x".repeat(50) }, 0, { columns: 16, rows: 2 });
    expect(frame).toEqual(["Offline         ", "x".repeat(16)]);
  });
});
