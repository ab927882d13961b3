import type { DisplayEntry } from "../../types.ts";
import { PngSchema } from "./config.ts";

/** Not hardware: a PNG file of what another display would show. */
export const png: DisplayEntry<typeof PngSchema, import("./simulate.ts").PngFile> = {
  type: "png",
  schema: PngSchema,
  where: (config) => ` as ${config.as} to ${config.file}`,
  claims: (config) => [{ resource: `file ${config.file}`, field: ["file"] }],
  previewable: false,
  // The picture holds the countdown; the file is written only when it changes.
  tickMs: 1000,
  async open(config, { hardware, clock }) {
    const { PngSink } = await import("./driver.ts");
    const preview = hardware.preview;
    if (preview === undefined) throw new Error("PNG displays need the preview renderer, which was not given");
    const { file, as, scale } = config;
    const options = scale === undefined ? {} : { scale };
    const driver = new PngSink({
      file,
      render: (screen, now, since) => preview({ type: as, screen, now, since, options }),
      now: () => clock.now(),
    });
    return { driver, release: async () => undefined };
  },
  simulation: async () => (await import("./simulate.ts")).simulation,
};
