import { describe, expect, test } from "vitest";
import { validateConfig } from "../../../agent/config/load.ts";
import { deferredLogger } from "../../../agent/core/log.ts";
import { VirtualClock } from "../../../agent/core/virtual-clock.ts";
import { Ssd1680Display, Ssd1680Error } from "../../../display/drivers/ssd1680/driver.ts";
import { Ssd1680Simulator } from "../../../display/drivers/ssd1680/sim.ts";
import { createSimulatedDisplays } from "../../../display/simulated.ts";
import { displaysOf } from "../configs.ts";
import { codeScreen, T0 } from "../samples.ts";

/**
 * Waveshare's newer e-Paper HATs switch the panel's supply with a GPIO (PWR, GPIO18 there), which
 * their library raises at init and lowers at exit: without it the panel stays blank.
 */

function silent() {
  return deferredLogger({ level: "silent", destination: { write: () => undefined } }, () => {
    throw new Error("nothing is logged here");
  });
}

async function open(pins: Record<string, string>) {
  const clock = new VirtualClock(T0);
  const simulated = await createSimulatedDisplays(displaysOf([{ type: "ssd1680", pins }]), {
    clock,
    logger: silent(),
  });
  const [display] = simulated.set.displays;
  const [hardware] = simulated.hardware;
  if (display === undefined || hardware?.type !== "ssd1680") throw new Error("no e-ink display");
  return { clock, display, sim: hardware.sim, dispose: simulated.dispose };
}

describe("SSD1680 panel power (pwr)", () => {
  test("PWR is raised before the first SPI byte, held while the display is open, lowered at close", async () => {
    const { display, sim, dispose } = await open({ pwr: "GPIO18" });
    expect(sim.powered).toBe(false);
    await display.init();
    await display.show(codeScreen, T0);
    expect(sim.powered).toBe(true);
    expect(sim.counts.fullRefreshes).toBe(1);
    // The set takes the code off before closing (e-ink keeps its picture unpowered).
    await display.clear();
    await display.close();
    expect(sim.powered).toBe(false);
    const bytes = sim.counts.spiBytes;
    expect(bytes).toBeGreaterThan(4000);
    expect(sim.powerChanges.map(({ level, spiBytesBefore }) => [level, spiBytesBefore])).toEqual([
      [1, 0],
      [0, bytes],
    ]);
    expect(sim.panel().pixels.every((p) => p === 0)).toBe(true);
    await dispose();
  });

  test("BUSY is requested with a pull-up bias, so an absent panel reads busy, not ready", async () => {
    const { display, sim, dispose } = await open({ pwr: "GPIO18" });
    await display.init();
    expect(sim.busyBias).toBe("pull-up");
    await display.close();
    await dispose();
  });

  test("without pwr nothing is switched: the panel is powered throughout, as before", async () => {
    const { display, sim, dispose } = await open({});
    expect(sim.powered).toBe(true);
    await display.init();
    await display.show(codeScreen, T0);
    await display.close();
    expect(sim.powered).toBe(true);
    expect(sim.powerChanges).toEqual([]);
    expect(sim.busyBias).toBe("pull-up");
    await dispose();
  });

  test("a panel whose power is off (pwr not configured) fails with E_DISPLAY_BUSY naming power, not a blank success", async () => {
    const clock = new VirtualClock(T0);
    const sim = new Ssd1680Simulator({ clock, powerSwitch: true });
    sim.biasBusy("pull-up");
    // Unpowered, nothing drives BUSY: it reads the pull-up, busy.
    expect(await sim.busy.get()).toBe(1);
    const display = new Ssd1680Display({ spi: sim.spi, dc: sim.dc, rst: sim.rst, busy: sim.busy, clock });
    const failed = display.init().catch((e: unknown) => e);
    // The driver polls BUSY on the virtual clock until its timeout.
    await clock.advance(11_000);
    const error = await failed;
    expect(error).toBeInstanceOf(Ssd1680Error);
    expect((error as Ssd1680Error).code).toBe("E_DISPLAY_BUSY");
    expect((error as Error).message).toContain("check the BUSY wire and power");
  });

  test("pwr is a claimed line: it cannot be another display's pin too", () => {
    const checked = validateConfig({
      version: 1,
      displays: [
        { type: "ssd1680", pins: { pwr: "GPIO18" } },
        { type: "leds", buzzer: "GPIO18" },
      ],
    });
    expect(checked.ok).toBe(false);
    if (!checked.ok)
      expect(checked.errors.join("\n")).toContain("GPIO18 is already used by displays[0].pins.pwr");
  });
});
