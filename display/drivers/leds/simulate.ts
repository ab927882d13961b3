import { GpioLineSimulator } from "../../sim/gpio.ts";
import type { Simulation } from "../../types.ts";
import type { LedsConfig } from "./config.ts";
import { ledTimeline } from "./picture.ts";

/**
 * The GPIO lines of simulated LEDs (and the button) by name ("GPIO23"). A line is requested anew
 * on every `init()` (as the kernel would hand out a new request), so read them after the display
 * was initialised.
 */
export class SimulatedLines {
  readonly #lines = new Map<string, GpioLineSimulator>();

  get(name: string): GpioLineSimulator | undefined {
    return this.#lines.get(name);
  }

  set(name: string, line: GpioLineSimulator): void {
    this.#lines.set(name, line);
  }
}

/** LEDs, buzzer and button on simulated GPIO lines; the picture is a timeline of the lines. */
export const simulation: Simulation<LedsConfig, SimulatedLines> = {
  async attach(_config, { clock }) {
    const lines = new SimulatedLines();
    return {
      sim: lines,
      hardware: {
        output: async (name, { initial, activeLow }) => {
          const line = new GpioLineSimulator({ name, direction: "output", clock, initial, activeLow });
          lines.set(name, line);
          return line;
        },
        input: async (name, { activeLow }) => {
          const line = new GpioLineSimulator({
            name,
            direction: "input",
            clock,
            activeLow: activeLow ?? false,
          });
          lines.set(name, line);
          return line;
        },
      },
    };
  },
  scale: 2,
  manualClock: true,
  // Every line, so that each pattern (fast blink goes to the error LED) and the beeps show.
  previewConfig: () => ({ pins: { status: "GPIO23", error: "GPIO22" }, buzzer: "GPIO18" }),
  picture: (lines, context) => ledTimeline(lines, context),
};
