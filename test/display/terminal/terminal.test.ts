import jsQR from "jsqr";
import { describe, expect, test } from "vitest";
import type { CodeInfo, SessionState as SignInState } from "../../../agent/auth/session-state.ts";
import type { Output } from "../../../agent/core/output.ts";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { DeviceCodePrompt } from "../../../display/drivers/terminal/driver.ts";
import { Bitmap } from "../../../display/render/bitmap.ts";
import { qrMatrix } from "../../../display/render/qr.ts";
import { toRgba } from "../render/rgba.ts";

const ESC = "\x1b";

class Screen implements Output {
  text = "";
  constructor(
    readonly isTTY: boolean,
    readonly columns = 100,
    readonly rows = 60,
  ) {}
  write(text: string): void {
    this.text += text;
  }
}

function code(clock: VirtualClock): CodeInfo {
  return {
    userCode: "ABCD-EFGH",
    verificationUri: "https://microsoft.com/devicelogin",
    message:
      "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate.",
    expiresAt: clock.now() + 900_000,
    intervalSeconds: 5,
    qrPayload: "https://microsoft.com/devicelogin",
  };
}

const issued = (c: CodeInfo): SignInState => ({ kind: "code-issued", profile: "default", ...c });

describe("device code prompt", () => {
  test("shows the URL and code exactly as issued, the time left and how to cancel", () => {
    const clock = new VirtualClock();
    const screen = new Screen(false);
    new DeviceCodePrompt(screen, clock, { color: false }).onState(issued(code(clock)));
    expect(screen.text).toContain("│ 1. Visit: https://microsoft.com/devicelogin");
    expect(screen.text).toContain("│ 2. Enter code: ABCD-EFGH");
    expect(screen.text).toContain("Waiting for authentication... (expires in 15 min)");
    expect(screen.text).toContain("Press Ctrl+C to cancel");
    expect(screen.text).toContain("To sign in, use a web browser to open the page");
    expect(screen.text).not.toContain("\x1b[");
    // Every box row has the same width.
    const rows = screen.text.split("\n").filter((l) => /^[│┌├└]/.test(l));
    expect(new Set(rows.map((r) => [...r].length)).size).toBe(1);
  });

  test("on a terminal: a spinner and live countdown, the code in bold, then wiped on success", () => {
    const clock = new VirtualClock();
    const screen = new Screen(true);
    const prompt = new DeviceCodePrompt(screen, clock, { color: true });
    prompt.onState(issued(code(clock)));
    expect(screen.text).toContain("\x1b[1mABCD-EFGH\x1b[22m");
    expect(screen.text).toMatch(/⠋ Waiting for authentication\.\.\. 15:00 left/);
    clock.advance(61_000);
    prompt.tick();
    expect(screen.text).toMatch(/⠙ Waiting for authentication\.\.\. 13:59 left/);
    prompt.onState({
      kind: "signed-in",
      profile: "default",
      username: "u",
      tenantId: "t",
      expiresAt: 0,
      fromCache: false,
    });
    expect(prompt.showingCode).toBe(false);
    // Cursor up over every row printed, then erase to the end of the screen.
    expect(screen.text).toMatch(new RegExp(`${ESC}\\[\\d+A${ESC}\\[0J$`));
  });

  test.each(["cancelled", "expired"] as const)("the code is cleared when %s", (kind) => {
    const clock = new VirtualClock();
    const screen = new Screen(true);
    const prompt = new DeviceCodePrompt(screen, clock, { color: false });
    prompt.onState(issued(code(clock)));
    prompt.onState({ kind, profile: "default" });
    expect(prompt.showingCode).toBe(false);
    expect(screen.text.endsWith("\x1b[0J")).toBe(true);
  });

  test("without a terminal: plain lines, a reminder each minute, notes for slow_down and retries", () => {
    const clock = new VirtualClock();
    const screen = new Screen(false);
    const prompt = new DeviceCodePrompt(screen, clock, { color: false });
    const c = code(clock);
    prompt.onState(issued(c));
    prompt.tick();
    expect(screen.text).not.toContain("Still waiting");
    clock.advance(60_000);
    prompt.tick();
    prompt.tick();
    expect(screen.text.match(/Still waiting for authentication\.\.\. 14 min left/g)).toHaveLength(1);
    prompt.onState({
      kind: "waiting",
      profile: "default",
      poll: { type: "slow-down", intervalSeconds: 10 },
      ...c,
    });
    expect(screen.text).toContain("Note: server asked to slow down; polling every 10 s");
    expect(screen.text).not.toContain("\r");
    expect(screen.text).not.toContain(ESC);
  });

  test("explains a wait for another process and a lost sign-in", () => {
    const screen = new Screen(false);
    const prompt = new DeviceCodePrompt(screen, new VirtualClock(), { color: false });
    prompt.onState({ kind: "waiting-for-lock", profile: "p" });
    prompt.onState({ kind: "waiting-for-time", profile: "p" });
    prompt.onState({
      kind: "sign-in-required",
      profile: "p",
      reason: {
        code: "E_SIGN_IN_REQUIRED",
        message: "The saved sign-in of profile 'p' is no longer valid (it expired); a new sign-in is needed.",
      },
    });
    expect(screen.text).toContain("Another entratool process is signing in profile 'p'");
    expect(screen.text).toContain(
      "Waiting for the system clock to be set (network time) before signing in...",
    );
    expect(screen.text).toContain("The saved sign-in of profile 'p' is no longer valid (it expired)");
  });
});

/** The QR code drawn in half blocks, read back into modules (ink = dark with colour, light without). */
function qrFromText(text: string, color: boolean): Bitmap {
  const start = text.indexOf("Or scan:\n");
  const body = text.slice(start + "Or scan:\n".length).split("\n");
  const lines = body
    .filter((line) => /[█▀▄]/.test(line))
    .map((line) => line.replace(new RegExp(`${ESC}\\[[0-9;]*m`, "g"), ""));
  const width = [...(lines[0] ?? "")].length;
  const bitmap = new Bitmap(width, lines.length * 2);
  lines.forEach((line, row) => {
    [...line].forEach((char, x) => {
      const top = char === "█" || char === "▀";
      const bottom = char === "█" || char === "▄";
      // With colour the blocks are the dark modules; without, the light ones.
      bitmap.set(x, row * 2, color ? top : !top);
      bitmap.set(x, row * 2 + 1, color ? bottom : !bottom);
    });
  });
  return bitmap;
}

describe("the QR code under the prompt", () => {
  test.each([true, false])("on a terminal with room, it decodes to the URL (colour %s)", (color) => {
    const clock = new VirtualClock();
    const screen = new Screen(true, 100, 60);
    const c = code(clock);
    new DeviceCodePrompt(screen, clock, { color, qr: (text) => qrMatrix(text) }).onState(issued(c));
    expect(screen.text).toContain("Or scan:");
    const rgba = toRgba(qrFromText(screen.text, color), { scale: 4, border: 16, on: "black" });
    expect(jsQR(rgba.data, rgba.width, rgba.height)?.data).toBe(c.qrPayload);
  });

  test("not without a terminal, nor on one too narrow or too short to show it whole", () => {
    for (const screen of [new Screen(false), new Screen(true, 30, 60), new Screen(true, 100, 20)]) {
      const clock = new VirtualClock();
      new DeviceCodePrompt(screen, clock, { color: false, qr: (text) => qrMatrix(text) }).onState(
        issued(code(clock)),
      );
      expect(screen.text).not.toContain("Or scan:");
    }
  });

  test("it is wiped with the box: the cursor goes up over every row printed", () => {
    const clock = new VirtualClock();
    // 200 columns: no line wraps, so each printed line is one row.
    const screen = new Screen(true, 200, 60);
    const prompt = new DeviceCodePrompt(screen, clock, { color: true, qr: (text) => qrMatrix(text) });
    prompt.onState(issued(code(clock)));
    const printed = screen.text.split("\n").length - 1;
    prompt.onState({ kind: "expired", profile: "default" });
    // Message, box, "Or scan:" and the QR: one row each, escape sequences not counted as width.
    expect(screen.text).toMatch(new RegExp(`${ESC}\\[${printed}A${ESC}\\[0J$`));
  });
});
