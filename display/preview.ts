import * as v from "valibot";
import { deferredLogger, type Logger } from "../agent/core/log.ts";
import { formatIssues } from "../agent/core/schema.ts";
import { VirtualClock } from "../agent/core/virtual-clock.ts";
import { DisplaySchema } from "./config.ts";
import { PreviewError } from "./errors.ts";
import { type AnyEntry, type DisplayConfig, entryFor, PREVIEW_TYPES } from "./registry.ts";
import { RgbCanvas } from "./render/canvas.ts";
import { encodeBitmapPng, encodeRgbPng } from "./render/png.ts";
import type { Screen } from "./screens.ts";
import { createSimulatedDisplays } from "./simulated.ts";
import type { Picture, PreviewOptions, PreviewRequest, Simulation } from "./types.ts";

/**
 * `entratool display preview` and the PNG display: a PNG of what a person would see, rendered
 * THROUGH THE SIMULATOR. The real driver is driven into its chip's simulator (the same path as on
 * a Pi, opened by the same code), and the picture is drawn from what the simulator decoded off the
 * wire, not from the driver's own idea of its frame. A preview therefore shows driver bugs instead
 * of hiding them.
 *
 * The same request always gives the same picture: the time is the request's, and a paged display
 * (the OLED's QR and code pages, the LCD's URL pages) shows the page asked for, counted from when
 * the screen came up (`since`, or `options.page`), not from the wall clock.
 */

export { PreviewError } from "./errors.ts";
export type { PreviewOptions, PreviewRequest } from "./types.ts";

/** Pixels between the pages of a sheet, before scaling, and their colour. */
const SHEET_GAP = 8;
const SHEET_GAP_RGB = [128, 128, 128] as const;

/** A PNG of the request's screen on its type of display. */
export async function renderPreview(request: PreviewRequest): Promise<Uint8Array> {
  const { type, screen, now, options = {} } = request;
  const entry = entryFor(type);
  if (entry === undefined || !entry.previewable) {
    throw new PreviewError(`There is no preview of ${type}; previews exist of ${PREVIEW_TYPES.join(", ")}.`);
  }
  const simulation = await entry.simulation();
  const config = previewConfig(type, simulation, options);
  const pages = simulation.pages?.(screen, config) ?? [0];
  const scale = options.scale ?? simulation.scale ?? 1;
  if (options.sheet) {
    const pictures: Picture[] = [];
    for (const offset of pages)
      pictures.push(await draw(entry, simulation, config, screen, now, now - offset, options));
    return encode(sheet(pictures), scale);
  }
  let since = request.since ?? now;
  if (options.page !== undefined) {
    const offset = pages[options.page - 1];
    if (!Number.isInteger(options.page) || offset === undefined) {
      throw new PreviewError(
        `The '${screen.kind}' screen of ${type} has ${pages.length === 1 ? "1 page" : `pages 1-${pages.length}`}, not ${options.page}.`,
      );
    }
    since = now - offset;
  }
  return encode(await draw(entry, simulation, config, screen, now, since, options), scale);
}

/** The configuration a preview draws: the type's defaults, and what the options change. */
function previewConfig(
  type: string,
  simulation: Simulation<DisplayConfig, unknown>,
  options: PreviewOptions,
): DisplayConfig {
  const result = v.safeParse(DisplaySchema, { ...simulation.previewConfig?.(options), type });
  if (!result.success) {
    throw new PreviewError(`Invalid preview options: ${formatIssues(result.issues).join("; ")}.`);
  }
  return result.output;
}

/** The preview talks to the display directly and has nothing to log. */
function silentLogger(): Logger {
  return deferredLogger({ level: "silent", destination: { write: () => undefined } }, () => {
    throw new Error("the preview logger writes nothing");
  });
}

/**
 * Shows `screen` on a fresh simulated display: at `since` (its first page), then at `now`; and
 * draws what the simulator shows.
 */
async function draw(
  entry: AnyEntry,
  simulation: Simulation<DisplayConfig, unknown>,
  config: DisplayConfig,
  screen: Screen,
  now: number,
  since: number,
  options: PreviewOptions,
): Promise<Picture> {
  const clock = new VirtualClock(Math.min(since, now), { auto: !simulation.manualClock });
  const simulated = await createSimulatedDisplays([config], {
    clock,
    logger: silentLogger(),
    ...(options.framebuffer === undefined ? {} : { framebuffer: options.framebuffer }),
    preview: renderPreview,
  });
  try {
    const [display] = simulated.set.displays;
    const [hardware] = simulated.hardware;
    if (display === undefined || hardware === undefined || simulation.picture === undefined) {
      throw new PreviewError(`There is no preview of ${entry.type}.`);
    }
    // Straight to the display, not through the set: a preview must fail loudly, not log and carry on.
    await display.init();
    if (since < now) {
      await display.show(screen, since);
      clock.advance(now - since);
    }
    await display.show(screen, now);
    const picture = await simulation.picture(hardware.sim, { clock, start: now, options });
    await display.close();
    return picture;
  } finally {
    await simulated.dispose();
  }
}

function encode(picture: Picture, scale: number): Uint8Array {
  return picture.kind === "bitmap"
    ? encodeBitmapPng(picture.bitmap, { scale, on: picture.on })
    : encodeRgbPng(picture.width, picture.height, picture.rgb, { scale });
}

/** Pictures side by side, a grey gap between them. */
function sheet(pictures: readonly Picture[]): Picture {
  const rgbs = pictures.map(toRgb);
  const width = rgbs.reduce((sum, p) => sum + p.width, 0) + SHEET_GAP * (rgbs.length - 1);
  const height = Math.max(...rgbs.map((p) => p.height));
  const canvas = new RgbCanvas(width, height, SHEET_GAP_RGB);
  let x = 0;
  for (const picture of rgbs) {
    for (let y = 0; y < picture.height; y++) {
      canvas.rgb.set(
        picture.rgb.subarray(y * picture.width * 3, (y + 1) * picture.width * 3),
        (y * width + x) * 3,
      );
    }
    x += picture.width + SHEET_GAP;
  }
  return { kind: "rgb", width, height, rgb: canvas.rgb };
}

function toRgb(picture: Picture): Extract<Picture, { kind: "rgb" }> {
  if (picture.kind === "rgb") return picture;
  const { bitmap, on } = picture;
  const canvas = new RgbCanvas(bitmap.width, bitmap.height, on === "white" ? [0, 0, 0] : [255, 255, 255]);
  canvas.stamp(bitmap, 0, 0, on === "white" ? [255, 255, 255] : [0, 0, 0]);
  return { kind: "rgb", width: canvas.width, height: canvas.height, rgb: canvas.rgb };
}
