import { describe, expect, test } from "vitest";
import { chunk, lcdFrame, lcdText, wrap } from "../../../display/drivers/hd44780/layout.ts";

describe("HD44780 layout", () => {
  test("URLs are cut after punctuation", () => {
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
