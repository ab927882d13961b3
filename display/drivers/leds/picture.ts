import { Bitmap } from "../../render/bitmap.ts";
import { type Rgb, RgbCanvas } from "../../render/canvas.ts";
import { drawText } from "../../render/font.ts";
import { font6x10 } from "../../render/fonts/6x10.ts";
import type { GpioLineSimulator } from "../../sim/gpio.ts";
import type { Picture, PictureContext } from "../../types.ts";

/** LED strip geometry: one row per line, one circle per step. */
export const LED_LABEL_WIDTH = 56;
export const LED_PITCH = 16;
export const LED_RADIUS = 6;
export const LED_TOP = 20;
export const LED_ROWS: ReadonlyArray<{
  readonly name: string;
  readonly label: string;
  readonly colour: Rgb;
}> = [
  { name: "GPIO23", label: "status", colour: [60, 220, 90] },
  { name: "GPIO22", label: "error", colour: [240, 60, 50] },
  { name: "GPIO18", label: "buzzer", colour: [250, 200, 40] },
];
const LED_DARK: Rgb = [48, 48, 52];

/** The centre of step `step`'s circle on row `row` of the LED timeline. */
export function ledCircleCentre(row: number, step: number): [number, number] {
  return [LED_LABEL_WIDTH + step * LED_PITCH + LED_PITCH / 2, LED_TOP + row * LED_PITCH + LED_PITCH / 2];
}

/**
 * The LEDs over time, as a person watching them would describe it: for every step (100 ms) a
 * circle per line, lit when the line was on for at least half the step. The pattern is run on the
 * virtual clock for the whole duration and read back from the GPIO simulators' timelines.
 */
export async function ledTimeline(
  lines: { get(name: string): GpioLineSimulator | undefined },
  context: PictureContext,
): Promise<Picture> {
  const { clock, start, options } = context;
  const durationMs = options.durationMs ?? 4000;
  const stepMs = options.stepMs ?? 100;
  const steps = Math.ceil(durationMs / stepMs);
  // Patterns change level on multiples of 50 ms; advancing in such steps wakes the loop at each edge.
  for (let t = 0; t < durationMs; t += 50) {
    clock.advance(50);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const canvas = new RgbCanvas(
    LED_LABEL_WIDTH + steps * LED_PITCH + 8,
    LED_TOP + LED_ROWS.length * LED_PITCH + 8,
    [16, 16, 18],
  );
  const labels = new Bitmap(canvas.width, canvas.height);
  for (let second = 0; second * 1000 < durationMs; second++) {
    const [x] = ledCircleCentre(0, (second * 1000) / stepMs);
    drawText(labels, font6x10, `${second}s`, x - LED_PITCH / 2, 4);
  }
  LED_ROWS.forEach(({ name, label, colour }, row) => {
    const [, y] = ledCircleCentre(row, 0);
    drawText(labels, font6x10, label, 4, y - 5);
    const line = lines.get(name);
    for (let step = 0; step < steps; step++) {
      const from = start + step * stepMs;
      const on = line !== undefined && onTime(line, from, from + stepMs) * 2 >= stepMs;
      const [cx, cy] = ledCircleCentre(row, step);
      canvas.disc(cx, cy, LED_RADIUS, on ? colour : LED_DARK);
    }
  });
  canvas.stamp(labels, 0, 0, [200, 200, 200]);
  return { kind: "rgb", width: canvas.width, height: canvas.height, rgb: canvas.rgb };
}

/** How long `line` was on (logical level 1) within [from, to). */
export function onTime(line: GpioLineSimulator, from: number, to: number): number {
  let on = 0;
  let level = line.levelAt(from);
  let at = from;
  for (const change of line.timeline()) {
    if (change.at <= from) continue;
    if (change.at >= to) break;
    if (level === 1) on += change.at - at;
    level = change.level;
    at = change.at;
  }
  if (level === 1) on += to - at;
  return on;
}
