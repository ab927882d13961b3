import type { QrMatrix } from "../../render/qr.ts";

/**
 * A QR code as text for a terminal, two modules per character cell with Unicode half blocks
 * (▀ ▄ █), so a 29-module code takes 33 columns and 17 rows with its quiet zone.
 *
 * Phone cameras want dark modules on a light ground. With `color`, ANSI black-on-white makes that
 * true on any terminal theme. Without colour (NO_COLOR, TERM=dumb) the blocks draw the LIGHT
 * modules and the terminal's own dark background shows through as the dark ones: right on the
 * usual light-on-dark terminal, inverted on a light one (most phone scanners read both).
 */
export function qrHalfBlocks(
  matrix: QrMatrix,
  options: { readonly color: boolean; readonly quietZone?: number },
): string[] {
  const quiet = options.quietZone ?? 2;
  const size = matrix.size + 2 * quiet;
  const dark = (x: number, y: number): boolean => {
    const mx = x - quiet;
    const my = y - quiet;
    return mx >= 0 && my >= 0 && mx < matrix.size && my < matrix.size && matrix.get(mx, my);
  };
  const lines: string[] = [];
  for (let y = 0; y < size; y += 2) {
    let line = "";
    for (let x = 0; x < size; x++) {
      // Below the last row is quiet zone (light).
      const top = dark(x, y);
      const bottom = y + 1 < size && dark(x, y + 1);
      // The character's ink: dark modules with colour, light modules without.
      const inkTop = options.color ? top : !top;
      const inkBottom = options.color ? bottom : !bottom && y + 1 < size;
      line += inkTop ? (inkBottom ? "█" : "▀") : inkBottom ? "▄" : " ";
    }
    lines.push(options.color ? `\x1b[30;47m${line}\x1b[0m` : line);
  }
  return lines;
}
