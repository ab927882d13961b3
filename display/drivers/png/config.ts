import * as v from "valibot";
import { integerIn, must, strict } from "../../../agent/core/schema.ts";

/** The displays a `png` display can picture: those whose picture is one still image. */
export const PNG_SOURCES = ["ssd1306", "ssd1680", "framebuffer", "hd44780"] as const;
export type PngSource = (typeof PNG_SOURCES)[number];

const FILE_RULE = 'an absolute path ending in .png, e.g. "/var/lib/entratool/screen.png"';

/**
 * `{ "type": "png", "file": … }`: not hardware. Writes what the display `as` would show to `file`,
 * for support, docs and remote screens.
 */
export const PngSchema = strict(
  {
    type: v.pipe(v.literal("png"), v.description("Writes what another display would show to a PNG file.")),
    file: v.pipe(v.string(must(FILE_RULE)), v.regex(/^\/.*[^/]\.[pP][nN][gG]$/, must(FILE_RULE))),
    as: v.optional(v.picklist(PNG_SOURCES, must(`one of ${PNG_SOURCES.join(", ")}`)), "ssd1680"),
    scale: v.optional(v.pipe(integerIn(1, 8), v.description("Pixel multiplier; default: as the preview."))),
  },
  { required: { file: FILE_RULE } },
);

export type PngConfig = v.InferOutput<typeof PngSchema>;
