import jsQR from "jsqr";
import { describe, expect, test } from "vitest";
import type { CodeInfo, PollEvent } from "../../../agent/auth/session-state.ts";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { DeviceCodePrompt } from "../../../display/drivers/terminal/driver.ts";
import { TerminalSimulator, TerminalSimulatorError } from "../../../display/drivers/terminal/sim.ts";
import { Bitmap } from "../../../display/render/bitmap.ts";
import { qrMatrix } from "../../../display/render/qr.ts";
import { type Screen, screenFor } from "../../../display/screens.ts";
import { flush } from "../configs.ts";
import { toRgba } from "../render/rgba.ts";

const ESC = "\x1b";

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

/** The screen the session's `code-issued` state becomes. */
function issued(c: CodeInfo): Screen {
  const screen = screenFor({ kind: "code-issued", profile: "default", ...c });
  if (screen === undefined) throw new Error("no screen");
  return screen;
}

function waiting(c: CodeInfo, poll: PollEvent): Screen {
  const screen = screenFor({ kind: "waiting", profile: "default", poll, ...c });
  if (screen === undefined) throw new Error("no screen");
  return screen;
}

const signedIn: Screen = { kind: "signed-in", username: "u", expiresAt: 0 };

/** A prompt on a simulated terminal (a TTY of 100x60 unless told) on a clock the test moves. */
function rig(options: { tty: boolean; color?: boolean; columns?: number; rows?: number; qr?: boolean }) {
  const clock = new VirtualClock(undefined, { auto: false });
  const terminal = new TerminalSimulator({
    isTTY: options.tty,
    columns: options.columns ?? 100,
    rows: options.rows ?? 60,
  });
  const prompt = new DeviceCodePrompt(terminal, clock, {
    color: options.color ?? false,
    ...(options.qr ? { qr: (text: string) => qrMatrix(text) } : {}),
  });
  return { clock, terminal, prompt };
}

describe("the terminal display (device code prompt)", () => {
  test("shows the URL and code exactly as issued, the time left and how to cancel", async () => {
    const { clock, terminal, prompt } = rig({ tty: false });
    await prompt.show(issued(code(clock)), clock.now());
    expect(terminal.text).toContain("│ 1. Visit: https://microsoft.com/devicelogin");
    expect(terminal.text).toContain("│ 2. Enter code: ABCD-EFGH");
    expect(terminal.text).toContain("Waiting for authentication... (expires in 15 min)");
    expect(terminal.text).toContain("Press Ctrl+C to cancel");
    expect(terminal.lines()[0]).toMatch(/^To sign in, use a web browser to open the page /);
    expect(terminal.text).not.toContain("\x1b[");
    // Every box row has the same width.
    const rows = terminal.text.split("\n").filter((l) => /^[│┌├└]/.test(l));
    expect(rows).toHaveLength(10);
    expect(new Set(rows.map((r) => [...r].length)).size).toBe(1);
  });

  test("on a terminal: a spinner and live countdown, the code in bold, then wiped on success", async () => {
    const { clock, terminal, prompt } = rig({ tty: true, color: true });
    await prompt.show(issued(code(clock)), clock.now());
    expect(terminal.text).toContain("\x1b[1mABCD-EFGH\x1b[22m");
    expect(terminal.lines().at(-1)).toBe("⠋ Waiting for authentication... 15:00 left");
    clock.advance(61_000);
    await flush();
    expect(terminal.lines().at(-1)).toBe("⠙ Waiting for authentication... 13:59 left");
    await prompt.show(signedIn, clock.now());
    expect(prompt.showingCode).toBe(false);
    // Cursor up over every row printed, then erase to the end of the screen: nothing of it is left.
    expect(terminal.text).toMatch(new RegExp(`${ESC}\\[\\d+A${ESC}\\[0J$`));
    expect(terminal.lines()).toEqual([]);
  });

  test("the spinner turns every 100 ms of the clock while the code is up, and stops with it", async () => {
    const { clock, terminal, prompt } = rig({ tty: true });
    await prompt.show(issued(code(clock)), clock.now());
    const redraws = (): number => terminal.text.split("\r\x1b[2K").length - 1;
    expect(redraws()).toBe(1);
    for (let i = 0; i < 10; i++) {
      clock.advance(100);
      await flush();
    }
    expect(redraws()).toBe(11);
    // Ten turns: the spinner has come round to its first frame; a second has gone from the countdown.
    expect(terminal.lines().at(-1)).toBe("⠋ Waiting for authentication... 14:59 left");
    await prompt.show({ kind: "expired" }, clock.now());
    const after = redraws();
    clock.advance(1000);
    await flush();
    expect(redraws()).toBe(after);
    expect(clock.waitingSleeps).toBe(0);
  });

  test.each([
    { kind: "cancelled" },
    { kind: "expired" },
    { kind: "error", code: "E_IDP", message: "x" },
  ] as const)("the code is wiped on $kind, and nothing is printed in its place", async (screen) => {
    const { clock, terminal, prompt } = rig({ tty: true });
    await prompt.show(issued(code(clock)), clock.now());
    await prompt.show(screen, clock.now());
    expect(prompt.showingCode).toBe(false);
    expect(terminal.text.endsWith("\x1b[0J")).toBe(true);
    expect(terminal.lines()).toEqual([]);
  });

  test("without a terminal: plain lines, a reminder each minute, notes for slow_down and retries", async () => {
    const { clock, terminal, prompt } = rig({ tty: false });
    const c = code(clock);
    await prompt.show(issued(c), clock.now());
    // The set shows the code screen again every second.
    for (let s = 1; s <= 61; s++) {
      clock.advance(1000);
      await prompt.show(issued(c), clock.now());
    }
    expect(terminal.text).not.toContain("Still waiting for authentication... 15 min left");
    expect(terminal.text.match(/Still waiting for authentication\.\.\. 14 min left/g)).toHaveLength(1);
    await prompt.show(waiting(c, { type: "slow-down", intervalSeconds: 10 }), clock.now());
    await prompt.show(waiting(c, { type: "slow-down", intervalSeconds: 10 }), clock.now());
    await prompt.show(waiting(c, { type: "pending" }), clock.now());
    await prompt.show(waiting(c, { type: "retry", reason: "HTTP 503", delayMs: 5000 }), clock.now());
    expect(terminal.lines().filter((line) => line.startsWith("Note: "))).toEqual([
      "Note: server asked to slow down; polling every 10 s",
      "Note: identity provider unreachable (HTTP 503); still trying",
    ]);
    // One box: the code is printed once however often it is shown.
    expect(terminal.text.match(/Enter code: ABCD-EFGH/g)).toHaveLength(1);
    expect(terminal.text).not.toContain("\r");
    expect(terminal.text).not.toContain(ESC);
  });

  test("says why it waits, once each, and why a new sign-in or a new code is needed", async () => {
    const { clock, terminal, prompt } = rig({ tty: false });
    const lock: Screen = { kind: "waiting-for-lock", profile: "p" };
    await prompt.show(lock, clock.now());
    await prompt.show(lock, clock.now());
    await prompt.show({ kind: "waiting-for-time" }, clock.now());
    await prompt.show(
      {
        kind: "sign-in-needed",
        reason: "The saved sign-in of profile 'p' is no longer valid (it expired); a new sign-in is needed.",
      },
      clock.now(),
    );
    await prompt.show(
      { kind: "wrong-account", username: "guest@fabrikam.com", expected: "@contoso.com" },
      clock.now(),
    );
    for (const screen of [
      signedIn,
      { kind: "blocked", message: "x" },
      { kind: "offline", message: "y" },
    ] as const) {
      await prompt.show(screen, clock.now());
    }
    expect(terminal.lines()).toEqual([
      "Another entratool process is signing in profile 'p'; waiting for it to finish...",
      "Waiting for the system clock to be set (network time) before signing in...",
      "The saved sign-in of profile 'p' is no longer valid (it expired); a new sign-in is needed.",
      "Signed in as guest@fabrikam.com, but this device expects @contoso.com; a new code follows.",
    ]);
  });

  test("a new code asked for: the old box goes, the reason is said, the new box follows", async () => {
    const { clock, terminal, prompt } = rig({ tty: true });
    await prompt.show(issued(code(clock)), clock.now());
    await prompt.show(
      { kind: "sign-in-needed", reason: "A new code was asked for with the button." },
      clock.now(),
    );
    const next = { ...code(clock), userCode: "WXYZ-1234" };
    await prompt.show(
      issued({ ...next, message: next.message.replace("ABCD-EFGH", "WXYZ-1234") }),
      clock.now(),
    );
    expect(terminal.shows("ABCD-EFGH")).toBe(false);
    expect(terminal.lines()[0]).toBe("A new code was asked for with the button.");
    expect(terminal.shows("2. Enter code: WXYZ-1234")).toBe(true);
  });

  test("writes no escape sequence where there is no terminal (the simulator refuses them)", () => {
    const pipe = new TerminalSimulator({ isTTY: false });
    expect(() => pipe.write("\r\x1b[2K")).toThrow(TerminalSimulatorError);
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
  test.each([true, false])("on a terminal with room, it decodes to the URL (colour %s)", async (color) => {
    const { clock, terminal, prompt } = rig({ tty: true, color, qr: true });
    const c = code(clock);
    await prompt.show(issued(c), clock.now());
    expect(terminal.text).toContain("Or scan:");
    const rgba = toRgba(qrFromText(terminal.text, color), { scale: 4, border: 16, on: "black" });
    expect(jsQR(rgba.data, rgba.width, rgba.height)?.data).toBe(c.qrPayload);
  });

  test("not without a terminal, nor on one too narrow or too short to show it whole", async () => {
    for (const options of [{ tty: false }, { tty: true, columns: 30 }, { tty: true, rows: 20 }]) {
      const { clock, terminal, prompt } = rig({ ...options, qr: true });
      await prompt.show(issued(code(clock)), clock.now());
      expect(terminal.text).not.toContain("Or scan:");
    }
  });

  test("it is wiped with the box: the cursor goes up over every row printed", async () => {
    // 200 columns: no line wraps, so each printed line is one row.
    const { clock, terminal, prompt } = rig({ tty: true, color: true, columns: 200, qr: true });
    await prompt.show(issued(code(clock)), clock.now());
    const printed = terminal.text.split("\n").length - 1;
    await prompt.show({ kind: "expired" }, clock.now());
    // Message, box, "Or scan:" and the QR: one row each, escape sequences not counted as width.
    expect(terminal.text).toMatch(new RegExp(`${ESC}\\[${printed}A${ESC}\\[0J$`));
    expect(terminal.lines()).toEqual([]);
  });

  test("a line logged under the box while it is up (a display that failed) is wiped with it", async () => {
    const { clock, terminal, prompt } = rig({ tty: true, columns: 60 });
    await prompt.show(issued(code(clock)), clock.now());
    // What the CLI's logger writes to the same stderr: a long line, wrapped by the terminal.
    terminal.write(
      `\nentratool: error: displays[0] hd44780 on I2C bus 1 at 0x27: No device answers at that address: check the wiring.\n`,
    );
    await prompt.show(signedIn, clock.now());
    expect(terminal.lines().join("\n")).not.toContain("ABCD-EFGH");
    expect(terminal.lines()).toEqual([]);
  });

  test("on a narrow terminal the wrapped lines are counted too: nothing is left after the wipe", async () => {
    const { clock, terminal, prompt } = rig({ tty: true, columns: 40, qr: true });
    const c = code(clock);
    await prompt.show(issued(c), clock.now());
    expect(terminal.lines().length).toBeGreaterThan(terminal.text.split("\n").length);
    // A long note does not wrap the status line either: it is cut to the width.
    await prompt.show(
      waiting(c, { type: "retry", reason: "connection failed (ECONNRESET)", delayMs: 5 }),
      clock.now(),
    );
    const status = terminal.lines().at(-1) ?? "";
    expect(status).toMatch(/^⠙ Waiting for authentication\.\.\. 15:00.*…$/);
    expect([...status].length).toBeLessThan(40);
    await prompt.show({ kind: "cancelled" }, clock.now());
    expect(terminal.lines()).toEqual([]);
  });
});
