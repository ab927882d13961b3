/**
 * Regenerates the golden PNGs of the display tests and the README's previews, deterministically
 * (a fixed time, code, URL and options), by rendering each screen through the driver's simulator
 * (`renderPreview`, as `entratool display preview` does):
 *
 *   bun scripts/golden.ts            writes test/display/golden/<config>-<screen>.png and
 *                                    display/previews/<driver>.png
 *   bun scripts/golden.ts --check    writes nothing; exits 1 listing every image whose decoded
 *                                    pixels differ from the committed file (or that is missing)
 *
 * Look at every image that changed before committing it: the goldens are what a person
 * should see, and `test/display/golden/golden.test.ts` holds the drivers to them pixel for pixel.
 * Pixels are compared after decoding, never as bytes: zlib's output may differ between builds.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import type { DisplayType } from "../display/config.ts";
import { type PreviewOptions, renderPreview } from "../display/preview.ts";
import { sampleScreen } from "../display/samples.ts";
import type { ScreenKind } from "../display/screens.ts";

/** 2026-11-27 12:00:00 UTC: a whole minute, so the countdowns read 15:00 and 13:59. */
export const GOLDEN_NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
export const GOLDEN_CODE = "FZ2X8LQ3N";
export const GOLDEN_URL = "https://microsoft.com/devicelogin";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const GOLDEN_DIR = join(ROOT, "test", "display", "golden");
export const PREVIEW_DIR = join(ROOT, "display", "previews");

/** The screens pinned by golden images: the code, its countdown, and the three ways it goes away. */
export const GOLDEN_SCREENS: readonly ScreenKind[] = ["code", "waiting", "signed-in", "error", "expired"];

/** A half-size HDMI screen keeps each framebuffer golden small; the layout scales with the geometry. */
const FRAMEBUFFER = { width: 640, height: 360, bitsPerPixel: 32 } as const;

interface Config {
  /** The file name prefix: the driver, plus the glass size for the LCD. */
  readonly name: string;
  readonly driver: DisplayType;
  readonly options: PreviewOptions;
  /** The page the code screens are pinned at (the OLED's code page is its second, after the QR page). */
  readonly codePage?: number;
}

/** The pixel displays and both LCD glasses, each at a fixed scale. */
const GOLDEN_CONFIGS: readonly Config[] = [
  { name: "ssd1306", driver: "ssd1306", options: { scale: 4 }, codePage: 2 },
  { name: "ssd1680", driver: "ssd1680", options: { scale: 3 } },
  { name: "framebuffer", driver: "framebuffer", options: { scale: 1, framebuffer: FRAMEBUFFER } },
  { name: "hd44780-16x2", driver: "hd44780", options: { scale: 1, columns: 16, rows: 2 } },
  { name: "hd44780-20x4", driver: "hd44780", options: { scale: 1, columns: 20, rows: 4 } },
];

/** The README's previews of the code screen, one per driver, scaled to be readable on a web page. */
const PREVIEW_CONFIGS: readonly Config[] = [
  { name: "terminal", driver: "terminal", options: { scale: 2 } },
  { name: "hd44780", driver: "hd44780", options: { scale: 2, columns: 16, rows: 2 } },
  // Both pages, as a person watching it sees them in turn: the QR code first, then the code.
  { name: "ssd1306", driver: "ssd1306", options: { scale: 4, sheet: true } },
  { name: "ssd1680", driver: "ssd1680", options: { scale: 3 } },
  { name: "framebuffer", driver: "framebuffer", options: { scale: 1, framebuffer: FRAMEBUFFER } },
  { name: "leds", driver: "leds", options: { scale: 2 } },
];

export interface ImageCase {
  /** Absolute path of the committed PNG. */
  readonly file: string;
  readonly driver: DisplayType;
  readonly screen: ScreenKind;
  readonly options: PreviewOptions;
  /** Drawn this long after the code was issued (default 0): the countdown has moved on. */
  readonly afterMs?: number;
}

export const GOLDEN_CASES: readonly ImageCase[] = [
  ...GOLDEN_CONFIGS.flatMap((config) =>
    GOLDEN_SCREENS.map((screen) => ({
      file: join(GOLDEN_DIR, `${config.name}-${screen}.png`),
      driver: config.driver,
      screen,
      options:
        config.codePage !== undefined && (screen === "code" || screen === "waiting")
          ? { ...config.options, page: config.codePage }
          : config.options,
    })),
  ),
  // The OLED shows a QR page (4 s) first, then the large code (6 s): pin the QR page too, with
  // the countdown 7 s on.
  {
    file: join(GOLDEN_DIR, "ssd1306-code-qr.png"),
    driver: "ssd1306",
    screen: "code",
    options: { scale: 4, page: 1 },
    afterMs: 7000,
  },
];

export const PREVIEW_CASES: readonly ImageCase[] = PREVIEW_CONFIGS.map((config) => ({
  file: join(PREVIEW_DIR, `${config.name}.png`),
  driver: config.driver,
  screen: "code",
  options: config.options,
}));

/** The PNG of `image` as the drivers draw it now. */
export function render(image: ImageCase): Promise<Uint8Array> {
  return renderPreview({
    type: image.driver,
    screen: sampleScreen(image.screen, GOLDEN_CODE, GOLDEN_URL, GOLDEN_NOW),
    now: GOLDEN_NOW + (image.afterMs ?? 0),
    options: image.options,
  });
}

/** Why two PNGs differ once decoded to RGBA, or undefined if every pixel is the same. */
export function pixelDifference(expected: Uint8Array, actual: Uint8Array): string | undefined {
  const a = PNG.sync.read(Buffer.from(expected));
  const b = PNG.sync.read(Buffer.from(actual));
  if (a.width !== b.width || a.height !== b.height) {
    return `size ${b.width}x${b.height}, golden ${a.width}x${a.height}`;
  }
  let differing = 0;
  for (let at = 0; at < a.data.length; at += 4) {
    if (
      a.data[at] !== b.data[at] ||
      a.data[at + 1] !== b.data[at + 1] ||
      a.data[at + 2] !== b.data[at + 2] ||
      a.data[at + 3] !== b.data[at + 3]
    )
      differing++;
  }
  return differing === 0 ? undefined : `${differing} of ${a.width * a.height} pixels differ`;
}

function readIfPresent(file: string): Uint8Array | undefined {
  try {
    return readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const unknown = argv.filter((arg) => arg !== "--check");
  if (unknown.length > 0) {
    process.stderr.write(`Unknown argument ${unknown.join(" ")}.\nUsage: bun scripts/golden.ts [--check]\n`);
    return 2;
  }
  const check = argv.includes("--check");
  const differences: string[] = [];
  for (const image of [...GOLDEN_CASES, ...PREVIEW_CASES]) {
    const png = await render(image);
    const name = image.file.slice(ROOT.length);
    if (check) {
      const committed = readIfPresent(image.file);
      const why = committed === undefined ? "missing" : pixelDifference(committed, png);
      if (why !== undefined) differences.push(`${name}: ${why}`);
    } else {
      mkdirSync(join(image.file, ".."), { recursive: true });
      writeFileSync(image.file, png);
      process.stdout.write(`wrote ${name} (${png.length} bytes)\n`);
    }
  }
  if (!check) {
    process.stdout.write("Look at every image that changed (git status) before committing it.\n");
    return 0;
  }
  if (differences.length === 0) {
    process.stdout.write(`All ${GOLDEN_CASES.length + PREVIEW_CASES.length} images match.\n`);
    return 0;
  }
  process.stdout.write(
    `${differences.map((line) => `  ${line}\n`).join("")}${differences.length} image(s) differ. ` +
      "Run `bun scripts/golden.ts`, look at the new images, and commit them if they are right.\n",
  );
  return 1;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
