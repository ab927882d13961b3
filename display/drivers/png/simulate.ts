import type { Simulation } from "../../types.ts";
import type { PngConfig } from "./config.ts";

export interface PngFile {
  readonly file: string;
}

/** A file is the same in simulation: the PNG display writes it there too (tests read it back). */
export const simulation: Simulation<PngConfig, PngFile> = {
  attach: async (config) => ({ sim: { file: config.file }, hardware: {} }),
};
