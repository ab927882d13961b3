import { describe, expect, test } from "vitest";
import { createSystemClock, MAX_TIMER_MS } from "../../agent/core/clock.ts";

describe("system clock", () => {
  test("a sleep longer than one timer can hold is taken in steps, not fired at once", async () => {
    // 3 steps of 2 ms instead of one timer: the stepping, without waiting 25 days.
    const clock = createSystemClock(2);
    const started = performance.now();
    await clock.sleep(6);
    expect(performance.now() - started).toBeGreaterThanOrEqual(5);
  });

  test("aborting ends a stepped sleep with the signal's reason", async () => {
    const clock = createSystemClock(1);
    const controller = new AbortController();
    const sleeping = clock.sleep(MAX_TIMER_MS * 2, controller.signal);
    controller.abort(new Error("stop"));
    await expect(sleeping).rejects.toThrow("stop");
  });

  test("an already aborted signal rejects before any timer", async () => {
    const controller = new AbortController();
    controller.abort(new Error("early"));
    await expect(createSystemClock().sleep(10, controller.signal)).rejects.toThrow("early");
  });
});
