import type { Simulation } from "../../types.ts";
import { type FramebufferConfig, framebufferNumber } from "./config.ts";
import { FramebufferSimulator } from "./sim.ts";

export type FramebufferSim = FramebufferSimulator;

/** A framebuffer device file and its sysfs in a temp dir (1280x720 at 32 bpp unless told). */
export const simulation: Simulation<FramebufferConfig, FramebufferSim> = {
  async attach(config, context) {
    const size = context.framebuffer ?? { width: 1280, height: 720, bitsPerPixel: 32 };
    const sim = await FramebufferSimulator.create({ ...size, device: framebufferNumber(config) });
    return {
      sim,
      hardware: { framebuffer: () => ({ devRoot: sim.devRoot, sysfsRoot: sim.sysfsRoot, ioctl: sim.ioctl }) },
      dispose: () => sim.dispose(),
    };
  },
  previewConfig: (options) => (options.rotate === undefined ? {} : { rotate: options.rotate }),
  picture: async (sim) => ({ kind: "rgb", width: sim.width, height: sim.height, rgb: await sim.rgb() }),
};
