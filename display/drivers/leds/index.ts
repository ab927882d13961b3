import type { GpioLine } from "../../bus/types.ts";
import { openWith } from "../../resources.ts";
import type { DisplayEntry } from "../../types.ts";
import { LedsSchema } from "./config.ts";

/** Status LEDs, an optional buzzer and the optional sign-in button, on GPIO lines. */
export const leds: DisplayEntry<typeof LedsSchema, import("./simulate.ts").SimulatedLines> = {
  type: "leds",
  schema: LedsSchema,
  where: (config) =>
    ` on ${[config.pins.status, config.pins.error, config.buzzer].filter((p) => p !== undefined).join(", ")}`,
  claims: (config) => [
    ...Object.entries(config.pins).map(([pin, name]) => ({ resource: name, field: ["pins", pin] })),
    ...(config.buzzer === undefined ? [] : [{ resource: config.buzzer, field: ["buzzer"] }]),
    ...(config.button === undefined ? [] : [{ resource: config.button, field: ["button"] }]),
  ],
  button: (config) => config.button,
  previewable: true,
  open: (config, { hardware, clock, fail }) =>
    openWith(async (resources) => {
      const { StatusLeds } = await import("./driver.ts");
      // Active-low is asked of the kernel (the line flag), so the driver writes what it means.
      const line = async (name: string): Promise<GpioLine> =>
        resources.add(await hardware.output(name, { initial: 0, activeLow: config.activeLow }));
      const status = await line(config.pins.status);
      const error = config.pins.error === undefined ? undefined : await line(config.pins.error);
      const buzzer = config.buzzer === undefined ? undefined : await line(config.buzzer);
      const driver = new StatusLeds({
        lines: { status, ...(error === undefined ? {} : { error }) },
        ...(buzzer === undefined ? {} : { buzzer }),
        clock,
        onError: fail,
      });
      return {
        driver: { show: (screen) => driver.show(screen), clear: () => driver.off() },
        // StatusLeds.close turns everything off and closes the lines itself.
        release: () => driver.close(),
      };
    }),
  simulation: async () => (await import("./simulate.ts")).simulation,
};
