import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LinuxI2CBus } from "../../display/bus/linux-i2c.ts";
import { type DisplayConfig, displayName } from "../../display/config.ts";
import { createDisplays, kernelHardware, openDisplay } from "../../display/hardware.ts";
import type * as PreviewModule from "../../display/preview.ts";
import { PREVIEW_TYPES } from "../../display/registry.ts";
import { sampleScreen } from "../../display/samples.ts";
import { SCREEN_KINDS, type ScreenKind } from "../../display/screens.ts";
import { DisplaySet, type DisplayStatus } from "../../display/set.ts";
import {
  openButtons,
  type SignInDisplayOptions,
  type SignInDisplays,
  startSignInDisplays,
  terminalOutputs,
} from "../../display/sign-in.ts";
import type { PreviewOptions, PreviewRequest } from "../../display/types.ts";
import { loadConfig } from "../config/load.ts";
import { EntraToolError, ExitCode } from "../core/errors.ts";
import { flag, parse, stringOption } from "./args.ts";
import type { CliContext } from "./context.ts";

/**
 * The one display path of the CLI and the agent (`openSignInDisplays`), and the `display` commands.
 * Loaded through agent/display-cli.ts, an entrypoint of its own: drivers, fonts and the schema stay
 * out of every other start.
 */

export const DISPLAY_HELP = `Usage: entratool display <test|preview|detect> [options]

  display test [--config FILE] [--step SECONDS]
      shows every screen in turn on the configured displays (each for 3 s), to check the wiring
  display preview --driver D --screen S [--code C] [--url U] [--page N | --sheet] [--size WxH] --out FILE.png
      renders a screen through the driver's simulator (no hardware needed); the same arguments
      give the same picture. --page N: that page of a paged display (the OLED: 1 QR code, 2 the
      code; the LCD: its URL pages); --sheet: every page side by side; --size: an LCD's 20x4, or
      the HDMI screen's pixels (default 1280x720)
      drivers: ${PREVIEW_TYPES.join(", ")}; screens: ${SCREEN_KINDS.join(", ")}
  display detect
      probes the I2C buses for known displays (HD44780 backpacks, SSD1306 OLEDs)

The configuration file (default: config.json in the configuration directory) has a top-level
"displays" array; see README "Displays".
`;

const SAMPLE_CODE = "ABCD-EFGH";
const SAMPLE_URL = "https://microsoft.com/devicelogin";
/** Time on each screen in `display test`: long enough to read, and for an e-ink refresh. */
const TEST_STEP_SECONDS = 3;

/** The preview renderer, loaded when a PNG display or a preview first draws. */
async function renderPreview(request: PreviewRequest): Promise<Uint8Array> {
  const preview: typeof PreviewModule = await import("../../display/preview.ts");
  return preview.renderPreview(request);
}

/**
 * The displays of one sign-in: ONE set with the terminal (unless `terminal` is false; once when the
 * file lists it too) and the displays of `configFile`, initialised, and the file's sign-in button.
 */
export async function openSignInDisplays(options: SignInDisplayOptions): Promise<SignInDisplays> {
  const { clock, logger } = options;
  const configured =
    options.displays ??
    (options.configFile === undefined ? [] : (await loadConfig(options.configFile)).displays);
  const addTerminal = options.terminal !== false && !configured.some((config) => config.type === "terminal");
  const displays: DisplayConfig[] = addTerminal ? [{ type: "terminal" }, ...configured] : [...configured];
  const hardware = kernelHardware({
    clock,
    terminals: terminalOutputs(options.io, options.env),
    qr: options.qr,
    preview: renderPreview,
  });
  const name = (config: DisplayConfig, index: number): string => {
    if (!addTerminal) return displayName(config, index);
    return index === 0 ? "terminal" : displayName(config, index - 1);
  };
  const set = new DisplaySet({
    displays: displays.map((config, index) => openDisplay(config, name(config, index), hardware, clock)),
    logger,
    clock,
  });
  const buttons = await openButtons(configured, (line, how) => hardware.input(line, how), clock, logger);
  return startSignInDisplays(set, buttons, clock);
}

function configFile(ctx: CliContext, given: string | undefined): { file: string; isDefault: boolean } {
  return given === undefined
    ? { file: join(ctx.paths.configDir, "config.json"), isDefault: true }
    : { file: given, isDefault: false };
}

export async function displayCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "preview":
      return preview(ctx, rest);
    case "test":
      return test(ctx, rest);
    case "detect":
      return detect(ctx, rest);
    case undefined:
    case "--help":
    case "-h":
      ctx.io.stdout.write(DISPLAY_HELP);
      return sub === undefined ? 2 : 0;
    default:
      throw new EntraToolError("E_USAGE", {
        message: `Unknown display command '${sub}'. Run 'entratool display --help'.`,
      });
  }
}

/** `--size`: an LCD's columns x rows, or the HDMI screen's pixels. */
function sizeOption(driver: string, size: string | undefined): PreviewOptions {
  if (size === undefined) return {};
  const match = /^(\d{1,4})x(\d{1,4})$/.exec(size);
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  if (driver === "hd44780" && ((width === 16 && height === 2) || (width === 20 && height === 4))) {
    return { columns: width, rows: height };
  }
  if (driver === "framebuffer" && match !== null && width >= 64 && height >= 64) {
    return { framebuffer: { width, height, bitsPerPixel: 32 } };
  }
  throw new EntraToolError("E_USAGE", {
    message:
      driver === "hd44780"
        ? `--size for hd44780 is 16x2 or 20x4 (got '${size}').`
        : driver === "framebuffer"
          ? `--size for framebuffer is WIDTHxHEIGHT in pixels, each 64 or more (got '${size}').`
          : `--size applies to hd44780 and framebuffer only, not ${driver}.`,
  });
}

async function preview(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("display preview", argv, {
    driver: { type: "string" },
    screen: { type: "string" },
    code: { type: "string" },
    url: { type: "string" },
    page: { type: "string" },
    sheet: { type: "boolean" },
    size: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(DISPLAY_HELP);
    return 0;
  }
  const driver = stringOption(parsed, "driver");
  const kind = stringOption(parsed, "screen") ?? "code";
  const out = stringOption(parsed, "out");
  if (!driver || !(PREVIEW_TYPES as readonly string[]).includes(driver)) {
    throw new EntraToolError("E_USAGE", {
      message: `--driver must be one of ${PREVIEW_TYPES.join(", ")}${driver ? ` (got '${driver}')` : ""}.`,
    });
  }
  if (!(SCREEN_KINDS as readonly string[]).includes(kind)) {
    throw new EntraToolError("E_USAGE", {
      message: `--screen must be one of ${SCREEN_KINDS.join(", ")} (got '${kind}').`,
    });
  }
  const pageText = stringOption(parsed, "page");
  const page = pageText === undefined ? undefined : Number(pageText);
  if (page !== undefined && (!Number.isInteger(page) || page < 1)) {
    throw new EntraToolError("E_USAGE", {
      message: `--page takes a page number, 1 or more (got '${pageText}').`,
    });
  }
  const sheet = flag(parsed, "sheet");
  if (sheet && page !== undefined) {
    throw new EntraToolError("E_USAGE", { message: "--page and --sheet do not go together: choose one." });
  }
  const options: PreviewOptions = {
    ...sizeOption(driver, stringOption(parsed, "size")),
    ...(page === undefined ? {} : { page }),
    ...(sheet ? { sheet } : {}),
  };
  if (!out) throw new EntraToolError("E_USAGE", { message: "Missing --out FILE.png for the preview." });
  const now = ctx.clock.now();
  const screen = sampleScreen(
    kind as ScreenKind,
    stringOption(parsed, "code") ?? SAMPLE_CODE,
    stringOption(parsed, "url") ?? SAMPLE_URL,
    now,
  );
  let png: Uint8Array;
  try {
    png = await renderPreview({ type: driver, screen, now, options });
  } catch (error) {
    throw new EntraToolError("E_USAGE", {
      message: `Cannot preview '${kind}' on ${driver}: ${error instanceof Error ? error.message : String(error)}`,
      cause: error,
    });
  }
  try {
    await writeFile(out, png);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new EntraToolError("E_USAGE", {
      message: `Cannot write ${out} (${code}): check that its directory exists and is writable.`,
      cause: error,
    });
  }
  ctx.io.stdout.write(`Wrote ${out} (${driver}, ${kind}).\n`);
  return 0;
}

async function test(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("display test", argv, {
    config: { type: "string" },
    step: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(DISPLAY_HELP);
    return 0;
  }
  const step = Number(stringOption(parsed, "step") ?? TEST_STEP_SECONDS);
  if (!Number.isFinite(step) || step < 0) {
    throw new EntraToolError("E_USAGE", { message: "--step takes a number of seconds, 0 or more." });
  }
  const { file, isDefault } = configFile(ctx, stringOption(parsed, "config"));
  const config = await loadConfig(file, { isDefault });
  const set = createDisplays(config.displays, {
    clock: ctx.clock,
    logger: ctx.logger,
    terminals: terminalOutputs(ctx.io, ctx.env),
    preview: renderPreview,
  });
  await set.init();
  let statuses: DisplayStatus[];
  try {
    for (const kind of SCREEN_KINDS) {
      if (ctx.signal.aborted) break;
      ctx.io.stdout.write(`Showing: ${kind}\n`);
      await set.show(sampleScreen(kind, SAMPLE_CODE, SAMPLE_URL, ctx.clock.now()), ctx.clock.now());
      await ctx.clock.sleep(step * 1000, ctx.signal).catch(() => undefined);
    }
  } finally {
    // Read before closing: closing ends every display's failure streak.
    statuses = set.status();
    await set.close();
  }
  let failed = 0;
  for (const status of statuses) {
    ctx.io.stdout.write(`${status.name}: ${status.health === "failed" ? `FAILED: ${status.error}` : "ok"}\n`);
    if (status.health === "failed") failed += 1;
  }
  // Exit 12 (README "Exit codes"): a display, LED or bus could not be used.
  return failed === 0 ? 0 : ExitCode.display;
}

/** Addresses of the displays we drive: PCF8574 (A0-A2 low/high) and PCF8574A backpacks, SSD1306. */
const KNOWN_ADDRESSES: ReadonlyArray<{ address: number; what: string }> = [
  { address: 0x27, what: "HD44780 LCD on a PCF8574 backpack" },
  { address: 0x3f, what: "HD44780 LCD on a PCF8574A backpack" },
  { address: 0x3c, what: "SSD1306 OLED" },
  { address: 0x3d, what: "SSD1306 OLED (address jumper set)" },
];

async function detect(ctx: CliContext, argv: readonly string[]): Promise<number> {
  parse("display detect", argv, {});
  const buses = (await readdir("/dev").catch(() => [] as string[]))
    .map((name) => /^i2c-(\d+)$/.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  if (buses.length === 0) {
    ctx.io.stdout.write(
      "No I2C bus (/dev/i2c-*): enable I2C with 'sudo raspi-config nonint do_i2c 0' and reboot.\n",
    );
    return 0;
  }
  for (const bus of buses) {
    let i2c: LinuxI2CBus;
    try {
      i2c = await LinuxI2CBus.open(bus);
    } catch (error) {
      ctx.io.stdout.write(`/dev/i2c-${bus}: ${error instanceof Error ? error.message : String(error)}\n`);
      continue;
    }
    try {
      let found = 0;
      for (const { address, what } of KNOWN_ADDRESSES) {
        if (await i2c.probe(address)) {
          found += 1;
          ctx.io.stdout.write(`/dev/i2c-${bus} 0x${address.toString(16)}: ${what}\n`);
        }
      }
      if (found === 0) ctx.io.stdout.write(`/dev/i2c-${bus}: no known display\n`);
    } finally {
      await i2c.close();
    }
  }
  return 0;
}
