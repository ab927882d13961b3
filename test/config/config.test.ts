import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { loadConfig, validateConfig } from "../../agent/config/load.ts";
import { EntraToolError } from "../../agent/core/errors.ts";

/** What a file without the agent's parts gets: profile "default", no sources or sinks, the outbox's bounds. */
const AGENT_DEFAULTS = {
  profile: "default",
  sources: [],
  sinks: [],
  outbox: { maxBytes: 64 * 1024 * 1024, maxAgeSeconds: 7 * 24 * 60 * 60 },
};

const full = {
  version: 1,
  displays: [
    { type: "hd44780", bus: 1, address: "0x3F", columns: 20, rows: 4, backlight: false },
    { type: "ssd1306", bus: 3, address: "0x3d", rotate: 180 },
    {
      type: "ssd1680",
      spi: { bus: 0, chipSelect: 1, speedHz: 8_000_000 },
      pins: { dc: "GPIO5", rst: "GPIO6", busy: "GPIO13" },
      rotate: 180,
    },
    { type: "framebuffer", device: "/dev/fb1" },
    {
      type: "leds",
      pins: { status: "GPIO23", error: "GPIO22" },
      buzzer: "GPIO18",
      activeLow: true,
      button: "GPIO27",
    },
    { type: "terminal" },
  ],
};

describe("validateConfig", () => {
  test("a full configuration: every setting taken, addresses parsed from hex or numbers", () => {
    const checked = validateConfig(full);
    expect(checked).toEqual({
      ok: true,
      config: {
        ...AGENT_DEFAULTS,
        version: 1,
        displays: [
          { type: "hd44780", bus: 1, address: 0x3f, columns: 20, rows: 4, backlight: false },
          { type: "ssd1306", bus: 3, address: 0x3d, rotate: 180 },
          {
            type: "ssd1680",
            spi: { bus: 0, chipSelect: 1, speedHz: 8_000_000 },
            pins: { dc: "GPIO5", rst: "GPIO6", busy: "GPIO13" },
            rotate: 180,
          },
          { type: "framebuffer", device: "/dev/fb1", rotate: 0 },
          {
            type: "leds",
            pins: { status: "GPIO23", error: "GPIO22" },
            buzzer: "GPIO18",
            activeLow: true,
            button: "GPIO27",
          },
          { type: "terminal" },
        ],
      },
    });
    expect(validateConfig({ displays: [{ type: "hd44780", address: 39 }] })).toMatchObject({
      ok: true,
      config: { displays: [{ address: 0x27 }] },
    });
  });

  test("defaults: the common modules as shipped and the Waveshare HAT's wiring", () => {
    const checked = validateConfig({
      displays: [
        { type: "hd44780" },
        { type: "ssd1306" },
        { type: "ssd1680" },
        { type: "framebuffer" },
        { type: "leds" },
      ],
    });
    expect(checked).toEqual({
      ok: true,
      config: {
        ...AGENT_DEFAULTS,
        version: 1,
        displays: [
          { type: "hd44780", bus: 1, address: 0x27, columns: 16, rows: 2, backlight: true },
          { type: "ssd1306", bus: 1, address: 0x3c, rotate: 0 },
          {
            type: "ssd1680",
            spi: { bus: 0, chipSelect: 0, speedHz: 4_000_000 },
            pins: { dc: "GPIO25", rst: "GPIO17", busy: "GPIO24" },
            rotate: 0,
          },
          { type: "framebuffer", device: "/dev/fb0", rotate: 0 },
          { type: "leds", pins: { status: "GPIO23" }, activeLow: false },
        ],
      },
    });
    expect(validateConfig({})).toEqual({ ok: true, config: { ...AGENT_DEFAULTS, version: 1, displays: [] } });
  });

  test("every error at once, each starting with the JSON path of the bad field", () => {
    const checked = validateConfig({
      version: 2,
      displays: [
        { type: "hd44780", address: "0x80", columns: 17, rows: 3, backlight: "yes" },
        { type: "ssd1306", address: "0x27", bus: -1 },
        { type: "ssd1680", spi: { speedHz: 50_000_000 }, pins: { dc: "17", busy: "gpio24" } },
        { type: "framebuffer", device: "/dev/sda" },
        { type: "leds", pins: { status: "GPIO40" }, buzzer: 18, activeLow: 1 },
        { type: "oled" },
        "lcd",
      ],
    });
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    expect(checked.errors).toEqual([
      "version: must be 1 (found 2)",
      'displays[0].address: must be an I2C address 0x03-0x77, e.g. "0x27" or 39 (found "0x80")',
      "displays[0].columns: must be 16 or 20 (found 17)",
      "displays[0].rows: must be 2 or 4 (found 3)",
      'displays[0].backlight: must be true or false (found "yes")',
      "displays[1].bus: must be a whole number 0-255 (found -1)",
      'displays[1].address: must be "0x3c" or "0x3d" (found "0x27")',
      "displays[2].spi.speedHz: must be a clock in Hz, 100000-20000000 (found 50000000)",
      'displays[2].pins.dc: must be a header GPIO line name GPIO0-GPIO27, e.g. "GPIO17" (the BCM number, not the pin number) (found "17")',
      'displays[2].pins.busy: must be a header GPIO line name GPIO0-GPIO27, e.g. "GPIO17" (the BCM number, not the pin number) (found "gpio24")',
      'displays[3].device: must be a framebuffer device such as "/dev/fb0" (found "/dev/sda")',
      'displays[4].pins.status: must be a header GPIO line name GPIO0-GPIO27, e.g. "GPIO17" (the BCM number, not the pin number) (found "GPIO40")',
      'displays[4].buzzer: must be a header GPIO line name GPIO0-GPIO27, e.g. "GPIO17" (the BCM number, not the pin number) (found 18)',
      "displays[4].activeLow: must be true or false (found 1)",
      'displays[5].type: must be one of hd44780, ssd1306, ssd1680, framebuffer, leds, terminal, png (found "oled")',
      'displays[6]: must be an object with a "type" (found "lcd")',
    ]);
  });

  test("unknown fields are errors at every level (typos must not leave a default in force)", () => {
    const checked = validateConfig({
      displays: [
        { type: "hd44780", adress: "0x3f" },
        { type: "ssd1680", spi: { chipselect: 1 }, pins: { reset: "GPIO17" } },
        { type: "terminal", colour: true },
      ],
      display: [],
    });
    expect(checked).toEqual({
      ok: false,
      errors: [
        "displays[0].adress: unknown field",
        "displays[1].spi.chipselect: unknown field",
        "displays[1].pins.reset: unknown field",
        "displays[2].colour: unknown field",
        "display: unknown field",
      ],
    });
  });

  test("two displays cannot share a GPIO line, an I2C address or an SPI device", () => {
    const checked = validateConfig({
      displays: [
        { type: "ssd1680" },
        { type: "leds", pins: { status: "GPIO17" }, button: "GPIO24" },
        { type: "hd44780", address: "0x3c" },
        { type: "ssd1306" },
      ],
    });
    expect(checked).toEqual({
      ok: false,
      errors: [
        "displays[1].pins.status: GPIO17 is already used by displays[0].pins.rst",
        "displays[1].button: GPIO24 is already used by displays[0].pins.busy",
        "displays[3].address: I2C bus 1 address 0x3C is already used by displays[2].address",
      ],
    });
  });

  test("every unknown field of an object, not only the first; a `$schema` key is allowed at the root", () => {
    expect(
      validateConfig({
        $schema: "./config.schema.json",
        displays: [{ type: "ssd1306", adress: "0x3d", flip: true, bus: 1, buss: 2 }],
      }),
    ).toEqual({
      ok: false,
      errors: [
        "displays[0].adress: unknown field",
        "displays[0].flip: unknown field",
        "displays[0].buss: unknown field",
      ],
    });
    expect(validateConfig({ $schema: "./config.schema.json", version: 1 })).toEqual({
      ok: true,
      config: { ...AGENT_DEFAULTS, $schema: "./config.schema.json", version: 1, displays: [] },
    });
  });

  test("a resource claimed twice is reported with the display that claims it, in list order", () => {
    const checked = validateConfig({
      displays: [{ type: "leds" }, { type: "leds", pins: { status: "GPIO23" } }, { type: "oled" }],
    });
    expect(checked).toEqual({
      ok: false,
      errors: [
        "displays[1].pins.status: GPIO23 is already used by displays[0].pins.status",
        'displays[2].type: must be one of hd44780, ssd1306, ssd1680, framebuffer, leds, terminal, png (found "oled")',
      ],
    });
  });

  test("not an object, or displays not a list", () => {
    expect(validateConfig([])).toEqual({
      ok: false,
      errors: [
        'configuration: must be an object { "version": 1, "profile": …, "displays": [...], "sources": [...], "sinks": [...] } (found [])',
      ],
    });
    expect(validateConfig({ displays: {} })).toEqual({
      ok: false,
      errors: ["displays: must be a list of displays (found {})"],
    });
  });
});

describe("loadConfig", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "entratool-config-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function failure(file: string): Promise<EntraToolError> {
    const error = await loadConfig(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(EntraToolError);
    return error as EntraToolError;
  }

  test("a valid file", async () => {
    const file = join(dir, "config.json");
    await writeFile(file, JSON.stringify(full));
    expect((await loadConfig(file)).displays).toHaveLength(6);
  });

  test("bad JSON: E_CONFIG naming the file", async () => {
    const file = join(dir, "config.json");
    await writeFile(file, '{ "displays": [ }');
    const error = await failure(file);
    expect(error.code).toBe("E_CONFIG");
    expect(error.message).toMatch(
      new RegExp(`^The configuration file ${file} is not valid JSON \\(.+\\): fix it`),
    );
  });

  test("schema errors: E_CONFIG naming the file with every error, also in details", async () => {
    const file = join(dir, "config.json");
    await writeFile(file, JSON.stringify({ displays: [{ type: "hd44780", rows: 3, colour: 1 }] }));
    const error = await failure(file);
    expect(error.code).toBe("E_CONFIG");
    expect(error.message).toBe(
      `The configuration file ${file} has 2 errors: displays[0].rows: must be 2 or 4 (found 3); displays[0].colour: unknown field.`,
    );
    expect(error.details).toEqual({
      file,
      errors: ["displays[0].rows: must be 2 or 4 (found 3)", "displays[0].colour: unknown field"],
    });
  });

  test("an endless or huge file fails at once, in one sentence (at most 1 MiB is read)", async () => {
    const started = Date.now();
    const error = await failure("/dev/zero");
    expect(error.code).toBe("E_CONFIG");
    expect(error.message).toBe(
      "The configuration file /dev/zero is larger than 1 MiB: name the configuration file itself.",
    );
    // Bounded by the cap, not by the file: well under the test's timeout even on a busy machine.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test("comments are allowed, and nothing else is forgiven", async () => {
    const file = join(dir, "config.json");
    await writeFile(
      file,
      [
        "// The agent's configuration.",
        "{",
        '  /* the prompt */ "displays": [{ "type": "terminal" }], // where the code shows',
        '  "device": "a//b-not-a-comment"',
        "}",
      ].join("\n"),
    );
    const error = await failure(file);
    // The slashes inside a string are kept: the device id is checked as written.
    expect(error.message).toContain("device: must be 1 to 128 letters");
    await writeFile(file, '// head\n{ "displays": [{ "type": "terminal" }], "device": "pi-1" }\n// tail');
    expect((await loadConfig(file)).device).toBe("pi-1");
    await writeFile(file, '// one\n// two\n{ "displays": [ }');
    expect((await failure(file)).message).toMatch(/is not valid JSON \(.+\): fix it/);
  });

  test("the profile written into the file, with its defaults; a bad one says what is wrong", async () => {
    const file = join(dir, "config.json");
    const tenantId = "11111111-2222-3333-4444-555555555555";
    const clientId = "66666666-7777-8888-9999-000000000000";
    await writeFile(file, JSON.stringify({ profile: { tenantId, clientId, scopes: ["User.Read"] } }));
    expect((await loadConfig(file)).profile).toEqual({
      name: "default",
      tenantId,
      clientId,
      scopes: ["User.Read"],
      authorityHost: "https://login.microsoftonline.com",
      defaultFlow: "device-code",
    });
    await writeFile(file, JSON.stringify({ profile: { tenantId: "not a tenant", scope: [] } }));
    const error = await failure(file);
    expect(error.details?.errors).toEqual([
      expect.stringMatching(/^profile\.tenantId: must be a GUID/),
      expect.stringMatching(/^profile\.clientId: is required/),
      "profile.scope: unknown field",
    ]);
    await writeFile(file, JSON.stringify({ profile: 7 }));
    expect((await failure(file)).message).toContain(
      'profile: must be a profile name, or an object { "tenantId"',
    );
  });

  test("a directory, and a byte order mark before the JSON", async () => {
    expect((await failure(dir)).message).toBe(
      `The configuration file ${dir} is a directory: name the file itself.`,
    );
    const file = join(dir, "config.json");
    await writeFile(file, `\uFEFF${JSON.stringify({ displays: [{ type: "terminal" }] })}`);
    expect((await loadConfig(file)).displays).toEqual([{ type: "terminal" }]);
  });

  test("the default file, missing: the sentence says it is the default and how to name another", async () => {
    const file = join(dir, "config.json");
    const error = await loadConfig(file, { isDefault: true }).then(
      () => undefined,
      (e: unknown) => e as EntraToolError,
    );
    expect(error?.message).toBe(
      `The configuration file ${file} does not exist: create it (README, Displays), or name another with --config FILE.`,
    );
  });

  test("a missing file: E_CONFIG naming it", async () => {
    const file = join(dir, "nope.json");
    const error = await failure(file);
    expect(error.message).toBe(`The configuration file ${file} does not exist: check the --config path.`);
  });
});
