import { describe, expect, test } from "vitest";
import { displayUrl, remaining } from "../../display/text.ts";

describe("text every display shares", () => {
  test("the countdown: whole seconds rounded up, hours when needed, never negative", () => {
    expect(remaining(900_000, 0)).toBe("15:00");
    expect(remaining(899_001, 0)).toBe("15:00");
    expect(remaining(899_000, 0)).toBe("14:59");
    expect(remaining(59_000, 0)).toBe("0:59");
    expect(remaining(3_723_000, 0)).toBe("1:02:03");
    expect(remaining(0, 5_000)).toBe("0:00");
  });

  test("the URL as typed: https:// dropped, anything else kept as sent", () => {
    expect(displayUrl("https://microsoft.com/devicelogin")).toBe("microsoft.com/devicelogin");
    expect(displayUrl("HTTPS://www.microsoft.com/link")).toBe("www.microsoft.com/link");
    expect(displayUrl("http://example.test/x")).toBe("http://example.test/x");
  });
});
