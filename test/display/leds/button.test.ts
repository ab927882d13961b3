import { describe, expect, test } from "vitest";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { ButtonConfigError, type ButtonEvent, SignInButton } from "../../../display/drivers/leds/button.ts";
import { GpioLineSimulator } from "../../../display/sim/gpio.ts";

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
};

function rig() {
  // Passive sleeps: time moves only by `advance`, so the debounce sleeps cannot stretch a press.
  const clock = new VirtualClock(T0);
  clock.passiveSleepsFromMs = 0;
  const line = new GpioLineSimulator({ name: "GPIO23", direction: "input", clock });
  const button = new SignInButton({ line, clock });
  const events: ButtonEvent[] = [];
  button.on((event) => events.push(event));
  /** Holds the button `ms` of virtual time, then lets the debounce time pass. */
  const press = async (ms: number, bounces = 0): Promise<void> => {
    const released = line.press(ms, { bounces });
    clock.advance(ms);
    await released;
    clock.advance(100);
    await settle();
  };
  return { clock, line, button, events, press };
}

describe("SignInButton", () => {
  test("a short press asks for a new code", async () => {
    const { events, press } = rig();
    await press(200);
    expect(events).toEqual([{ action: "new-code", pressedAt: T0, durationMs: 200 }]);
  });

  test("a press of 3 s or more signs out, once", async () => {
    const { events, press } = rig();
    await press(10_000);
    expect(events.map((e) => [e.action, e.durationMs])).toEqual([["sign-out", 10_000]]);
  });

  test("2999 ms is still short, 3000 ms is long", async () => {
    const { events, press } = rig();
    await press(2999);
    await press(3000);
    expect(events.map((e) => e.action)).toEqual(["new-code", "sign-out"]);
  });

  test("contact bounce makes one press, not several", async () => {
    const { events, press } = rig();
    await press(300, 4);
    expect(events).toHaveLength(1);
    expect(events[0]?.action).toBe("new-code");
    // Measured from the first closing to the last opening of the contact.
    expect(events[0]?.durationMs).toBe(308);
  });

  test("a spike shorter than the debounce time is ignored", async () => {
    const { clock, line, events, press } = rig();
    line.edge("rising", clock.now());
    line.edge("falling", clock.now() + 5);
    clock.advance(100);
    await settle();
    await press(150);
    expect(events.map((e) => [e.action, e.durationMs])).toEqual([["new-code", 150]]);
  });

  test("close() stops listening; bad timings are refused", async () => {
    const { button, events, press } = rig();
    button.close();
    await press(200);
    expect(events).toEqual([]);
    const clock = new VirtualClock(T0);
    expect(
      () =>
        new SignInButton({
          line: new GpioLineSimulator({ direction: "input", clock }),
          clock,
          longPressMs: 40,
        }),
    ).toThrow(ButtonConfigError);
  });
});
