import type { Bitmap } from "../../../display/render/bitmap.ts";

/**
 * A bitmap as RGBA for jsQR: each pixel a `scale` x `scale` square, inside `border` pixels of
 * background (after scaling). `on` is the colour of an on pixel: "black" for ink (e-ink, paper),
 * "white" for a lit OLED pixel; the border gets the other colour unless `borderColour` says.
 */
export function toRgba(
  bitmap: Bitmap,
  options: { scale: number; border: number; on: "black" | "white"; borderColour?: "black" | "white" },
): { data: Uint8ClampedArray; width: number; height: number } {
  const { scale, border, on } = options;
  const onValue = on === "black" ? 0 : 255;
  const offValue = 255 - onValue;
  const borderValue =
    options.borderColour === undefined ? offValue : options.borderColour === "black" ? 0 : 255;
  const width = bitmap.width * scale + 2 * border;
  const height = bitmap.height * scale + 2 * border;
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bx = Math.floor((x - border) / scale);
      const by = Math.floor((y - border) / scale);
      const inside = x >= border && y >= border && bx < bitmap.width && by < bitmap.height;
      const value = inside ? (bitmap.get(bx, by) ? onValue : offValue) : borderValue;
      data.set([value, value, value, 255], (y * width + x) * 4);
    }
  }
  return { data, width, height };
}
