import { type Rgb, RgbCanvas } from "../../render/canvas.ts";
import type { Picture } from "../../types.ts";
import type { Hd44780Simulator } from "./sim.ts";

/** LCD geometry in output pixels: a dot is 3 px with a 1 px gap; cells and rows one dot pitch apart, as on the glass. */
export const LCD_DOT = 3;
export const LCD_PITCH = 4;
export const LCD_MARGIN = 16;

/** Where the top left of cell (row, column)'s dot (dotRow, dotColumn) is drawn in the LCD picture. */
export function lcdDotOrigin(
  row: number,
  column: number,
  dotRow: number,
  dotColumn: number,
): [number, number] {
  return [
    LCD_MARGIN + column * 6 * LCD_PITCH + dotColumn * LCD_PITCH,
    LCD_MARGIN + row * 9 * LCD_PITCH + dotRow * LCD_PITCH,
  ];
}

/**
 * The character LCD as glass, from the dots the simulator decoded off the wire: a blue-green STN
 * panel, unlit dots faintly visible, lit dots light.
 */
export function lcdGlass(sim: Hd44780Simulator): Picture {
  const lit = sim.backlight;
  const background: Rgb = lit ? [18, 64, 78] : [8, 24, 28];
  const unlitDot: Rgb = lit ? [26, 80, 96] : [12, 30, 34];
  const litDot: Rgb = lit ? [214, 240, 250] : [72, 86, 90];
  const width = 2 * LCD_MARGIN + (sim.columns * 6 - 1) * LCD_PITCH;
  const height = 2 * LCD_MARGIN + (sim.rows * 9 - 1) * LCD_PITCH;
  const canvas = new RgbCanvas(width, height, background);
  const glass = sim.glass();
  for (let row = 0; row < sim.rows; row++) {
    for (let column = 0; column < sim.columns; column++) {
      for (let dotRow = 0; dotRow < 8; dotRow++) {
        for (let dotColumn = 0; dotColumn < 5; dotColumn++) {
          const on = glass[row * 8 + dotRow]?.[column * 5 + dotColumn] ?? false;
          const [x, y] = lcdDotOrigin(row, column, dotRow, dotColumn);
          canvas.fill(x, y, LCD_DOT, LCD_DOT, on ? litDot : unlitDot);
        }
      }
    }
  }
  return { kind: "rgb", width, height, rgb: canvas.rgb };
}
