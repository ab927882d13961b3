import type { DisplayEntry } from "../../types.ts";
import { FramebufferSchema, framebufferNumber } from "./config.ts";

/** An HDMI screen through the kernel's framebuffer device (/dev/fbN). */
export const framebuffer: DisplayEntry<typeof FramebufferSchema, import("./simulate.ts").FramebufferSim> = {
  type: "framebuffer",
  schema: FramebufferSchema,
  where: (config) => ` on ${config.device}`,
  claims: (config) => [{ resource: config.device, field: ["device"] }],
  previewable: true,
  // The countdown moves every second.
  tickMs: 1000,
  async open(config, { hardware }) {
    const { FramebufferDisplay } = await import("./driver.ts");
    const driver = await FramebufferDisplay.open({
      device: framebufferNumber(config),
      rotate: config.rotate,
      ...hardware.framebuffer(),
    });
    return { driver, release: () => driver.close() };
  },
  simulation: async () => (await import("./simulate.ts")).simulation,
};
