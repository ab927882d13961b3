/**
 * `entratool display …` and the displays behind `get-token --config`. An entrypoint of its own in
 * the compiled binary (scripts/build.ts), loaded only by these commands: drivers, fonts and the QR
 * encoder would otherwise be part of every start.
 */
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GpioCdev } from "../display/bus/gpio-cdev.ts";
import { LinuxI2CBus } from "../display/bus/linux-i2c.ts";
import {
  type AgentConfig,
  DISPLAY_TYPES,
  type DisplayType,
  type LedsConfig,
  loadConfig,
} from "../display/config.ts";
import { type ButtonAction, SignInButton } from "../display/drivers/leds/button.ts";
import { renderPreview } from "../display/preview.ts";
import { SCREEN_KINDS, type Screen, type ScreenKind, screenFor } from "../display/screens.ts";
import { createDisplays, type DisplaySet } from "../display/set.ts";
import type { SignInState } from "./auth/signin.ts";
import { flag, parse, stringOption } from "./cli/args.ts";
import type { CliContext } from "./cli/context.ts";
import { EntraToolError } from "./core/errors.ts";

export const DISPLAY_HELP = `Usage: entratool display <test|preview|detect> [options]

  display test [--config FILE] [--step SECONDS]
      shows every screen in turn on the configured displays (each for 3 s), to check the wiring
  display preview --driver D --screen S [--code C] [--url U] --out FILE.png
      renders a screen through the driver's simulator (no hardware needed)
      drivers: ${DISPLAY_TYPES.join(", ")}; screens: ${SCREEN_KINDS.join(", ")}
  display detect
      probes the I2C buses for known displays (HD44780 backpacks, SSD1306 OLEDs)

The configuration file (default: config.json in the configuration directory) has a top-level
"displays" array; see README "Displays".
`;

const SAMPLE_CODE = "ABCD-EFGH";
const SAMPLE_URL = "https://microsoft.com/devicelogin";
/** Time on each screen in `display test`: long enough to read, and for an e-ink refresh. */
const TEST_STEP_SECONDS = 3;

/** A sample of each screen kind, for previews and `display test`. */
export function sampleScreen(kind: ScreenKind, code: string, url: string, now: number): Screen {
  const expiresAt = now + 15 * 60_000;
  switch (kind) {
    case "code":
      return { kind, userCode: code, verificationUri: url, expiresAt, qrPayload: url };
    case "waiting":
      return { kind, userCode: code, verificationUri: url, expiresAt: expiresAt - 61_000, qrPayload: url };
    case "signed-in":
      return { kind, username: "pi@contoso.com", expiresAt: now + 3_600_000 };
    case "sign-in-needed":
      return { kind, reason: "The saved sign-in expired after 90 days without use." };
    case "wrong-account":
      return { kind, username: "guest@fabrikam.com", expected: "@contoso.com" };
    case "blocked":
      return { kind, message: "Sign-in is blocked by your organisation's policy (AADSTS53003)." };
    case "offline":
      return { kind, message: "Cannot reach Microsoft Entra ID." };
    case "error":
      return { kind, code: "E_IDP", message: "Microsoft Entra ID returned an unexpected error." };
    default:
      return { kind };
  }
}

function configFile(ctx: CliContext, given: string | undefined): string {
  return given ?? join(ctx.paths.configDir, "config.json");
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

async function preview(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("display preview", argv, {
    driver: { type: "string" },
    screen: { type: "string" },
    code: { type: "string" },
    url: { type: "string" },
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
  if (!driver || !(DISPLAY_TYPES as readonly string[]).includes(driver)) {
    throw new EntraToolError("E_USAGE", {
      message: `--driver must be one of ${DISPLAY_TYPES.join(", ")}${driver ? ` (got '${driver}')` : ""}.`,
    });
  }
  if (!(SCREEN_KINDS as readonly string[]).includes(kind)) {
    throw new EntraToolError("E_USAGE", {
      message: `--screen must be one of ${SCREEN_KINDS.join(", ")} (got '${kind}').`,
    });
  }
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
    png = await renderPreview({ driver: driver as DisplayType, screen, now });
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
  const config = await loadConfig(configFile(ctx, stringOption(parsed, "config")));
  const { set } = createDisplays(config, { clock: ctx.clock, logger: ctx.logger });
  await set.init();
  let statuses: ReturnType<DisplaySet["status"]>;
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
  return failed === 0 ? 0 : 1;
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

/**
 * The configured displays for `get-token --config`: each sign-in state goes to every display as a
 * screen, and the code is taken off them when the command ends.
 */
export interface SignInDisplays {
  readonly onState: (state: SignInState) => void;
  /** Calls `listener` on each press of the configured button (none configured: never). */
  readonly onButton: (listener: (action: ButtonAction) => void) => void;
  readonly close: () => Promise<void>;
}

export async function displaysForSignIn(ctx: CliContext, file: string | undefined): Promise<SignInDisplays> {
  const config = await loadConfig(configFile(ctx, file));
  const { set }: { set: DisplaySet } = createDisplays(config, { clock: ctx.clock, logger: ctx.logger });
  await set.init();
  const button = await openButton(ctx, config);
  let last: Screen | undefined;
  const ticker = setInterval(() => {
    // The countdown moves even when no state changes; drivers send only what changed.
    if (last) void set.show(last, ctx.clock.now());
  }, 1000);
  return {
    onState: (state) => {
      const screen = screenFor(state);
      if (!screen) return;
      last = screen;
      void set.show(screen, ctx.clock.now());
    },
    onButton: (listener) => {
      button?.on((event) => listener(event.action));
    },
    close: async () => {
      clearInterval(ticker);
      button?.close();
      await set.close(last && last.kind !== "code" && last.kind !== "waiting" ? last : { kind: "cancelled" });
    },
  };
}

/**
 * The sign-in button of the `leds` display, if one is configured: a push button from the pin to
 * ground, so the line is requested active-low with the pull-up (pressed = logical 1). A button that
 * cannot be opened is reported once and the sign-in goes on without it.
 */
async function openButton(ctx: CliContext, config: AgentConfig): Promise<SignInButton | undefined> {
  const pin = config.displays.find((d): d is LedsConfig => d.type === "leds")?.button;
  if (pin === undefined) return undefined;
  try {
    const line = await new GpioCdev({ clock: ctx.clock }).requestLine(
      { name: pin },
      { direction: "input", bias: "pull-up", activeLow: true, edges: "both" },
    );
    return new SignInButton({ line, clock: ctx.clock });
  } catch (error) {
    ctx.logger.warn({ err: error, pin }, "the sign-in button is not available; signing in without it");
    return undefined;
  }
}
