import type { DisplayEntry } from "../../types.ts";
import { TerminalSchema } from "./config.ts";

/** The device code prompt on stderr, and on the controlling terminal when a script captures stderr. */
export const terminal: DisplayEntry<typeof TerminalSchema, import("./simulate.ts").TerminalSim> = {
  type: "terminal",
  schema: TerminalSchema,
  where: () => "",
  claims: () => [{ resource: "terminal", field: [] }],
  previewable: true,
  // Off a terminal, a reminder each minute; on one, its spinner keeps the countdown going.
  tickMs: 60_000,
  async open(_config, { hardware, clock }) {
    const { DeviceCodePrompt } = await import("./driver.ts");
    const outputs = hardware.terminals();
    if (outputs.length === 0) throw new Error("There is no terminal to show the code on.");
    const prompts = outputs.map(
      ({ out, color }) => new DeviceCodePrompt(out, clock, { color, qr: hardware.qr }),
    );
    return {
      driver: {
        show: async (screen, now) => {
          await Promise.all(prompts.map((prompt) => prompt.show(screen, now)));
        },
        clear: async () => {
          await Promise.all(prompts.map((prompt) => prompt.clear()));
        },
      },
      release: async () => {
        for (const prompt of prompts) prompt.close();
      },
    };
  },
  simulation: async () => (await import("./simulate.ts")).simulation,
};
