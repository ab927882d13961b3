import type { Simulation } from "../../types.ts";
import type { TerminalConfig } from "./config.ts";
import { terminalPicture } from "./picture.ts";
import { TerminalSimulator } from "./sim.ts";

export type TerminalSim = TerminalSimulator;

/** The prompt on a simulated terminal: not a TTY, 80 columns, unless the context says otherwise. */
export const simulation: Simulation<TerminalConfig, TerminalSim> = {
  async attach(_config, context) {
    const { isTTY, columns, rows } = context.terminal ?? { isTTY: false, columns: 80, rows: 24 };
    const terminal = new TerminalSimulator({ isTTY, columns, rows });
    return { sim: terminal, hardware: { terminals: () => [{ out: terminal, color: false }] } };
  },
  scale: 2,
  previewConfig: () => ({}),
  picture: async (terminal) => terminalPicture(terminal),
};
