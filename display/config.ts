import { readFile } from "node:fs/promises";
import { EntraToolError } from "../agent/core/errors.ts";
import { formatI2CAddress } from "./bus/errors.ts";

/**
 * The agent's JSON configuration file, starting with `displays` (the daemon's own settings come
 * in a later issue). `validateConfig` checks a parsed document and reports every problem at once,
 * each message starting with the JSON path of the field it is about (`displays[1].address: …`),
 * so that one edit fixes a whole file instead of one error per run. Unknown fields are errors:
 * in a hand-written file they are almost always typos (`adress`), which would otherwise be
 * silently ignored and leave a default in force.
 *
 * Example:
 * { "version": 1, "displays": [
 *   { "type": "hd44780", "bus": 1, "address": "0x27", "columns": 16, "rows": 2 },
 *   { "type": "leds", "pins": { "status": "GPIO23", "error": "GPIO22" }, "buzzer": "GPIO18" } ] }
 */

export const DISPLAY_TYPES = ["hd44780", "ssd1306", "ssd1680", "framebuffer", "leds", "terminal"] as const;
export type DisplayType = (typeof DISPLAY_TYPES)[number];

/** The pixel displays a `png` sink can picture (what `display preview` draws for them). */
export const PNG_SINK_SOURCES = ["ssd1306", "ssd1680", "framebuffer", "hd44780"] as const;
export type PngSinkSource = (typeof PNG_SINK_SOURCES)[number];

/** A header GPIO line name as the kernel reports it (`gpioinfo`): GPIO0 to GPIO27 on every Pi. */
export type GpioName = `GPIO${number}`;

export interface Hd44780Config {
  readonly type: "hd44780";
  /** N in /dev/i2c-N; 1 is the header's SDA/SCL. */
  readonly bus: number;
  readonly address: number;
  readonly columns: 16 | 20;
  readonly rows: 2 | 4;
  readonly backlight: boolean;
}

export interface Ssd1306Config {
  readonly type: "ssd1306";
  readonly bus: number;
  readonly address: 0x3c | 0x3d;
  readonly rotate180: boolean;
}

export interface Ssd1680Config {
  readonly type: "ssd1680";
  readonly spi: { readonly bus: number; readonly chipSelect: number; readonly speedHz: number };
  readonly pins: { readonly dc: GpioName; readonly rst: GpioName; readonly busy: GpioName };
  readonly rotate180: boolean;
}

export interface FramebufferConfig {
  readonly type: "framebuffer";
  /** "/dev/fbN". */
  readonly device: string;
  /** N of `device`, for sysfs (/sys/class/graphics/fbN). */
  readonly deviceNumber: number;
}

export interface LedsConfig {
  readonly type: "leds";
  readonly pins: { readonly status: GpioName; readonly error?: GpioName };
  readonly buzzer?: GpioName;
  /** LEDs wired from 3V3 to the pin: requested active-low, so "on" drives the pin low. */
  readonly activeLow: boolean;
  /** The sign-in button (to GND, pull-up): short press new code, long press sign out. */
  readonly button?: GpioName;
}

/**
 * Not hardware: writes what the display `as` would show to `file` as a PNG (for support, docs and
 * remote screens), atomically and only when the picture changed.
 */
export interface PngConfig {
  readonly type: "png";
  /** Absolute path ending in .png; its directory must exist. */
  readonly file: string;
  readonly as: PngSinkSource;
  /** Pixel multiplier 1-8; absent: the preview's default for `as`. */
  readonly scale?: number;
}

export interface TerminalConfig {
  readonly type: "terminal";
}

export type DisplayConfig =
  | Hd44780Config
  | Ssd1306Config
  | Ssd1680Config
  | FramebufferConfig
  | LedsConfig
  | PngConfig
  | TerminalConfig;

export interface AgentConfig {
  readonly version: 1;
  readonly displays: readonly DisplayConfig[];
}

export type ConfigValidation =
  | { readonly ok: true; readonly config: AgentConfig }
  | { readonly ok: false; readonly errors: readonly string[] };

/** The defaults: the common modules as shipped and the Waveshare HAT's wiring. */
export const DEFAULTS = {
  i2cBus: 1,
  hd44780: { address: 0x27, columns: 16, rows: 2, backlight: true },
  ssd1306: { address: 0x3c, rotate180: false },
  ssd1680: {
    spi: { bus: 0, chipSelect: 0, speedHz: 4_000_000 },
    pins: { dc: "GPIO25", rst: "GPIO17", busy: "GPIO24" },
    rotate180: false,
  },
  framebuffer: { device: "/dev/fb0" },
  leds: { status: "GPIO23", activeLow: false },
} as const;

type Json = Readonly<Record<string, unknown>>;

/**
 * Collects errors for one object: every read names its path, and `done()` reports the fields
 * nobody read as unknown, so adding a setting cannot forget the typo check.
 */
class Fields {
  readonly #object: Json;
  readonly #path: string;
  readonly #errors: string[];
  readonly #read = new Set<string>();

  constructor(object: Json, path: string, errors: string[]) {
    this.#object = object;
    this.#path = path;
    this.#errors = errors;
  }

  at(key: string): string {
    return this.#path === "" ? key : `${this.#path}.${key}`;
  }

  error(key: string, message: string): void {
    this.#errors.push(`${this.at(key)}: ${message}`);
  }

  get(key: string): unknown {
    this.#read.add(key);
    return this.#object[key];
  }

  has(key: string): boolean {
    return this.#object[key] !== undefined;
  }

  /** Whole number in [min, max]; `fallback` when absent; undefined (and an error) when wrong. */
  integer(
    key: string,
    min: number,
    max: number,
    fallback: number | undefined,
    rule?: string,
  ): number | undefined {
    const value = this.get(key);
    if (value === undefined) {
      if (fallback === undefined) this.error(key, `is required (${rule ?? `a whole number ${min}-${max}`})`);
      return fallback;
    }
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.error(key, `must be ${rule ?? `a whole number ${min}-${max}`} (found ${show(value)})`);
      return undefined;
    }
    return value;
  }

  boolean(key: string, fallback: boolean): boolean | undefined {
    const value = this.get(key);
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") {
      this.error(key, `must be true or false (found ${show(value)})`);
      return undefined;
    }
    return value;
  }

  /** A nested object, or undefined (with an error when present but not an object). */
  object(key: string): Fields | undefined {
    const value = this.get(key);
    if (value === undefined) return new Fields({}, this.at(key), this.#errors);
    if (!isObject(value)) {
      this.error(key, `must be an object (found ${show(value)})`);
      return undefined;
    }
    return new Fields(value, this.at(key), this.#errors);
  }

  gpio(key: string, fallback: GpioName | undefined, required: boolean): GpioName | undefined {
    const value = this.get(key);
    if (value === undefined) {
      if (required && fallback === undefined) this.error(key, `is required (${GPIO_RULE})`);
      return fallback;
    }
    if (typeof value !== "string" || !GPIO_NAME.test(value)) {
      this.error(key, `must be ${GPIO_RULE} (found ${show(value)})`);
      return undefined;
    }
    return value as GpioName;
  }

  done(): void {
    for (const key of Object.keys(this.#object)) {
      if (!this.#read.has(key)) this.error(key, "unknown field");
    }
  }
}

const GPIO_NAME = /^GPIO([0-9]|1[0-9]|2[0-7])$/;
const GPIO_RULE = 'a header GPIO line name GPIO0-GPIO27, e.g. "GPIO17" (the BCM number, not the pin number)';
const I2C_RULE = 'an I2C address 0x03-0x77, e.g. "0x27" or 39';

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** "0x27" or 39 → 39; undefined when neither a hex string nor a whole number. */
function parseI2CAddress(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) ? value : undefined;
  if (typeof value === "string" && /^0x[0-9a-f]{1,2}$/i.test(value))
    return Number.parseInt(value.slice(2), 16);
  return undefined;
}

function i2cAddress(fields: Fields, fallback: number): number | undefined {
  const value = fields.get("address");
  if (value === undefined) return fallback;
  const address = parseI2CAddress(value);
  // 0x00-0x02 and 0x78-0x7F are reserved by the I2C specification (general call, 10-bit…).
  if (address === undefined || address < 0x03 || address > 0x77) {
    fields.error("address", `must be ${I2C_RULE} (found ${show(value)})`);
    return undefined;
  }
  return address;
}

function hd44780(fields: Fields): Hd44780Config | undefined {
  const d = DEFAULTS.hd44780;
  const bus = fields.integer("bus", 0, 255, DEFAULTS.i2cBus);
  const address = i2cAddress(fields, d.address);
  const columns = fields.integer("columns", 16, 20, d.columns, "16 or 20");
  const rows = fields.integer("rows", 2, 4, d.rows, "2 or 4");
  if (columns !== undefined && columns !== 16 && columns !== 20) {
    fields.error("columns", `must be 16 or 20 (found ${columns})`);
  }
  if (rows !== undefined && rows !== 2 && rows !== 4) fields.error("rows", `must be 2 or 4 (found ${rows})`);
  const backlight = fields.boolean("backlight", d.backlight);
  if (bus === undefined || address === undefined || backlight === undefined) return undefined;
  if ((columns !== 16 && columns !== 20) || (rows !== 2 && rows !== 4)) return undefined;
  return { type: "hd44780", bus, address, columns, rows, backlight };
}

function ssd1306(fields: Fields): Ssd1306Config | undefined {
  const bus = fields.integer("bus", 0, 255, DEFAULTS.i2cBus);
  const value = fields.get("address");
  const parsed = value === undefined ? DEFAULTS.ssd1306.address : parseI2CAddress(value);
  // The module's address jumper selects one of two (SA0): anything else is not an SSD1306 on I2C.
  const address = parsed === 0x3c || parsed === 0x3d ? parsed : undefined;
  if (address === undefined) fields.error("address", `must be "0x3c" or "0x3d" (found ${show(value)})`);
  const rotate180 = fields.boolean("rotate180", DEFAULTS.ssd1306.rotate180);
  if (bus === undefined || address === undefined || rotate180 === undefined) return undefined;
  return { type: "ssd1306", bus, address, rotate180 };
}

function ssd1680(fields: Fields): Ssd1680Config | undefined {
  const d = DEFAULTS.ssd1680;
  const spiFields = fields.object("spi");
  const spi =
    spiFields === undefined
      ? undefined
      : {
          bus: spiFields.integer("bus", 0, 6, d.spi.bus),
          chipSelect: spiFields.integer("chipSelect", 0, 3, d.spi.chipSelect),
          // The SSD1680 takes writes up to 20 MHz (datasheet §13); below 100 kHz a refresh crawls.
          speedHz: spiFields.integer(
            "speedHz",
            100_000,
            20_000_000,
            d.spi.speedHz,
            "a clock in Hz, 100000-20000000",
          ),
        };
  spiFields?.done();
  const pinFields = fields.object("pins");
  const pins =
    pinFields === undefined
      ? undefined
      : {
          dc: pinFields.gpio("dc", d.pins.dc, true),
          rst: pinFields.gpio("rst", d.pins.rst, true),
          busy: pinFields.gpio("busy", d.pins.busy, true),
        };
  pinFields?.done();
  const rotate180 = fields.boolean("rotate180", d.rotate180);
  if (spi === undefined || pins === undefined || rotate180 === undefined) return undefined;
  const { bus, chipSelect, speedHz } = spi;
  const { dc, rst, busy } = pins;
  if (bus === undefined || chipSelect === undefined || speedHz === undefined) return undefined;
  if (dc === undefined || rst === undefined || busy === undefined) return undefined;
  return { type: "ssd1680", spi: { bus, chipSelect, speedHz }, pins: { dc, rst, busy }, rotate180 };
}

function framebuffer(fields: Fields): FramebufferConfig | undefined {
  const value = fields.get("device") ?? DEFAULTS.framebuffer.device;
  const match = typeof value === "string" ? /^\/dev\/fb(\d{1,2})$/.exec(value) : null;
  if (match === null || typeof value !== "string") {
    fields.error("device", `must be a framebuffer device such as "/dev/fb0" (found ${show(value)})`);
    return undefined;
  }
  return { type: "framebuffer", device: value, deviceNumber: Number(match[1]) };
}

function leds(fields: Fields): LedsConfig | undefined {
  const pinFields = fields.object("pins");
  const status = pinFields?.gpio("status", DEFAULTS.leds.status, true);
  const error = pinFields?.gpio("error", undefined, false);
  const errorGiven = pinFields?.has("error") ?? false;
  pinFields?.done();
  const buzzerGiven = fields.has("buzzer");
  const buzzer = fields.gpio("buzzer", undefined, false);
  const activeLow = fields.boolean("activeLow", DEFAULTS.leds.activeLow);
  const buttonGiven = fields.has("button");
  const button = fields.gpio("button", undefined, false);
  if (status === undefined || activeLow === undefined) return undefined;
  if ((errorGiven && error === undefined) || (buzzerGiven && buzzer === undefined)) return undefined;
  if (buttonGiven && button === undefined) return undefined;
  return {
    type: "leds",
    pins: { status, ...(error === undefined ? {} : { error }) },
    ...(buzzer === undefined ? {} : { buzzer }),
    activeLow,
    ...(button === undefined ? {} : { button }),
  };
}

function png(fields: Fields): PngConfig | undefined {
  const file = fields.get("file");
  const fileOk = typeof file === "string" && file.startsWith("/") && /[^/]\.png$/i.test(file);
  if (!fileOk) {
    fields.error(
      "file",
      file === undefined
        ? 'is required (an absolute path ending in .png, e.g. "/var/lib/entratool/screen.png")'
        : `must be an absolute path ending in .png, e.g. "/var/lib/entratool/screen.png" (found ${show(file)})`,
    );
  }
  const as = fields.get("as") ?? "ssd1680";
  const asOk = (PNG_SINK_SOURCES as readonly unknown[]).includes(as);
  if (!asOk) fields.error("as", `must be one of ${PNG_SINK_SOURCES.join(", ")} (found ${show(as)})`);
  const scaleGiven = fields.get("scale") !== undefined;
  const scale = scaleGiven ? fields.integer("scale", 1, 8, undefined) : undefined;
  if (!fileOk || !asOk || (scaleGiven && scale === undefined)) return undefined;
  return {
    type: "png",
    file: file as string,
    as: as as PngSinkSource,
    ...(scale === undefined ? {} : { scale }),
  };
}

function display(value: unknown, path: string, errors: string[]): DisplayConfig | undefined {
  if (!isObject(value)) {
    errors.push(`${path}: must be an object with a "type" (found ${show(value)})`);
    return undefined;
  }
  const fields = new Fields(value, path, errors);
  const type = fields.get("type");
  let config: DisplayConfig | undefined;
  switch (type) {
    case "hd44780":
      config = hd44780(fields);
      break;
    case "ssd1306":
      config = ssd1306(fields);
      break;
    case "ssd1680":
      config = ssd1680(fields);
      break;
    case "framebuffer":
      config = framebuffer(fields);
      break;
    case "leds":
      config = leds(fields);
      break;
    case "png":
      config = png(fields);
      break;
    case "terminal":
      config = { type: "terminal" };
      break;
    default:
      // Without a known type the other fields mean nothing: report only the type.
      fields.error("type", `must be one of ${[...DISPLAY_TYPES, "png"].join(", ")} (found ${show(type)})`);
      return undefined;
  }
  fields.done();
  return config;
}

/** Resources two displays cannot share: a GPIO line, an I2C address on a bus, an SPI device, a framebuffer. */
function claims(config: DisplayConfig, path: string): Array<[resource: string, field: string]> {
  switch (config.type) {
    case "hd44780":
    case "ssd1306":
      return [[`I2C bus ${config.bus} address ${formatI2CAddress(config.address)}`, `${path}.address`]];
    case "ssd1680":
      return [
        [`SPI ${config.spi.bus}.${config.spi.chipSelect}`, `${path}.spi`],
        ...Object.entries(config.pins).map(([pin, name]): [string, string] => [name, `${path}.pins.${pin}`]),
      ];
    case "leds":
      return [
        ...Object.entries(config.pins).map(([pin, name]): [string, string] => [name, `${path}.pins.${pin}`]),
        ...(config.buzzer === undefined ? [] : [[config.buzzer, `${path}.buzzer`] as [string, string]]),
        ...(config.button === undefined ? [] : [[config.button, `${path}.button`] as [string, string]]),
      ];
    case "framebuffer":
      return [[config.device, `${path}.device`]];
    case "png":
      return [[`file ${config.file}`, `${path}.file`]];
    case "terminal":
      return [["terminal", path]];
  }
}

/** Checks a parsed configuration document; every problem at once, each prefixed with its JSON path. */
export function validateConfig(input: unknown): ConfigValidation {
  if (!isObject(input)) {
    return { ok: false, errors: ['configuration: must be an object { "version": 1, "displays": [...] }'] };
  }
  const errors: string[] = [];
  const top = new Fields(input, "", errors);
  const version = top.get("version");
  if (version !== undefined && version !== 1) top.error("version", `must be 1 (found ${show(version)})`);
  const list = top.get("displays") ?? [];
  const displays: DisplayConfig[] = [];
  if (!Array.isArray(list)) {
    top.error("displays", `must be a list of displays (found ${show(list)})`);
  } else {
    const owners = new Map<string, string>();
    list.forEach((entry: unknown, index) => {
      const path = `displays[${index}]`;
      const config = display(entry, path, errors);
      if (config === undefined) return;
      displays.push(config);
      for (const [resource, field] of claims(config, path)) {
        const owner = owners.get(resource);
        if (owner === undefined) owners.set(resource, field);
        else errors.push(`${field}: ${resource} is already used by ${owner}`);
      }
    });
  }
  top.done();
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: { version: 1, displays } };
}

/**
 * Reads and validates the configuration file. Every failure is an E_CONFIG error whose sentence
 * names the file, with all schema problems listed (and in `details.errors`).
 */
export async function loadConfig(file: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "does not exist"
        : code === "EACCES"
          ? "cannot be read (permission denied)"
          : `cannot be read (${(error as Error).message})`;
    throw new EntraToolError("E_CONFIG", {
      message: `The configuration file ${file} ${why}: check the --config path.`,
      cause: error,
      details: { file },
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new EntraToolError("E_CONFIG", {
      message: `The configuration file ${file} is not valid JSON (${(error as Error).message}): fix it and try again.`,
      cause: error,
      details: { file },
    });
  }
  const checked = validateConfig(parsed);
  if (!checked.ok) {
    const count = checked.errors.length;
    throw new EntraToolError("E_CONFIG", {
      message: `The configuration file ${file} has ${count} ${count === 1 ? "error" : "errors"}: ${checked.errors.join("; ")}.`,
      details: { file, errors: checked.errors },
    });
  }
  return checked.config;
}
