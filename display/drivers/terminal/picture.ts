import { PreviewError } from "../../errors.ts";
import { Bitmap } from "../../render/bitmap.ts";
import { RgbCanvas } from "../../render/canvas.ts";
import { drawText } from "../../render/font.ts";
import { font6x10 } from "../../render/fonts/6x10.ts";
import type { Picture } from "../../types.ts";
import type { TerminalSimulator } from "./sim.ts";

/** The bundled font has printable ASCII only: box drawing as on a console without it. */
const BOX_ASCII: Readonly<Record<string, string>> = {
  "┌": "+",
  "┐": "+",
  "└": "+",
  "┘": "+",
  "├": "+",
  "┤": "+",
  "─": "-",
  "│": "|",
};

/**
 * What the simulated terminal shows, in the bundled 6x10 font, light grey on near-black as most
 * terminal themes: the prompt as an 80-column terminal without colour shows it.
 */
export function terminalPicture(terminal: TerminalSimulator): Picture {
  const lines = terminal.lines().map((line) => [...line].map((char) => BOX_ASCII[char] ?? char).join(""));
  if (lines.length === 0) {
    throw new PreviewError(
      "The terminal prints nothing of its own on this screen; it only takes the code off.",
    );
  }
  const margin = 6;
  const bitmap = new Bitmap(terminal.columns * 6 + 2 * margin, lines.length * font6x10.height + 2 * margin);
  lines.forEach((line, row) => {
    drawText(bitmap, font6x10, line, margin, margin + row * font6x10.height);
  });
  const canvas = new RgbCanvas(bitmap.width, bitmap.height, [18, 18, 20]);
  canvas.stamp(bitmap, 0, 0, [220, 220, 220]);
  return { kind: "rgb", width: canvas.width, height: canvas.height, rgb: canvas.rgb };
}
