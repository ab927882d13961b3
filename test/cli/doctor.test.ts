import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import type { CliContext } from "../../agent/cli/context.ts";
import type { CommandResult, Identity, Machine } from "../../agent/cli/doctor/machine.ts";
import { type Report, redact } from "../../agent/cli/doctor/report.ts";
import { doctorCommand } from "../../agent/cli/doctor.ts";
import { type Clock, systemClock } from "../../agent/core/clock.ts";
import { resolvePaths } from "../../agent/core/paths.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { openLibc } from "../../agent/linux/libc.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { JsonProfileStore } from "../../agent/store/profiles.ts";
import type { TokenStore } from "../../agent/store/types.ts";
import { type FakeChip, FakeGpioKernel, PI4_EXPANDER } from "../display/bus/fake-gpio-kernel.ts";
import { type KernelFds, kernelFds } from "../linux/kernel-fds.ts";
import { Capture } from "./cli-world.ts";

/**
 * `entratool doctor` against scratch trees laid out like a Raspberry Pi 4 and a Pi 5 (/proc, /sys,
 * /dev, /etc, /run, /lib as the doctor reads them, device nodes owned by their groups), the GPIO
 * chips answered by the fake GPIO character device, and the real display module drawing on the
 * displays of a real configuration file.
 */

const PI = { uid: 1000, gid: 1000 };
const GID = { gpio: 997, i2c: 998, spi: 999, video: 44, entratool: 995 };

const created: string[] = [];
let real: { libc: Awaited<ReturnType<typeof openLibc>>; fds: KernelFds };
beforeAll(async () => {
  real = { libc: await openLibc(), fds: await kernelFds() };
});
const kernels: FakeGpioKernel[] = [];
afterEach(() => {
  for (const kernel of kernels.splice(0)) kernel.dispose();
});
afterAll(async () => {
  for (const dir of created.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function put(root: string, path: string, content: string, mode?: number): Promise<void> {
  const file = join(root, path);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, content);
  if (mode !== undefined) await chmod(file, mode);
}

/** A device node stand-in: a file owned by root and the node's group, mode 0660 as udev makes it. */
async function node(root: string, path: string, gid: number): Promise<void> {
  await put(root, path, "", 0o660);
  await chown(join(root, path), 0, gid);
}

const PASSWD = `root:x:0:0:root:/root:/bin/bash
pi:x:1000:1000:,,,:/home/pi:/bin/bash
entratool:x:995:995:entratool:/var/lib/entratool:/usr/sbin/nologin
`;

/** pi is in gpio and video, was added to i2c after logging in (see IDENTITY), and is not in spi. */
const GROUP = `root:x:0:
video:x:44:pi
pi:x:1000:
gpio:x:997:pi,entratool
i2c:x:998:pi,entratool
spi:x:999:entratool
entratool:x:995:
`;

/** pi's login session: the groups of /etc/group at login, before `usermod -aG i2c pi`. */
const IDENTITY: Identity = { uid: PI.uid, gid: PI.gid, groups: [PI.gid, GID.gpio, GID.video] };

interface Board {
  readonly root: string;
  readonly home: string;
}

async function commonTree(root: string, model: string, serial: string): Promise<void> {
  await put(root, "proc/device-tree/model", `${model}\0`);
  await put(root, "proc/device-tree/serial-number", `${serial}\0`);
  await put(
    root,
    "proc/cpuinfo",
    `processor\t: 0\nBogoMIPS\t: 108.00\n\nSerial\t\t: ${serial}\nModel\t\t: ${model}\n`,
  );
  await put(
    root,
    "etc/os-release",
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
  );
  await put(root, "etc/passwd", PASSWD);
  await put(root, "etc/group", GROUP);
}

/** A Pi 4 with I2C and SPI on, an HDMI screen, the service installed and enabled, and its configuration. */
async function pi4(): Promise<Board> {
  const base = await mkdtemp(join(tmpdir(), "entratool-doctor-"));
  created.push(base);
  const root = join(base, "root");
  await commonTree(root, "Raspberry Pi 4 Model B Rev 1.4", "10000000abcdef01");
  for (const bus of [1, 20, 21]) await node(root, `dev/i2c-${bus}`, GID.i2c);
  await put(root, "sys/class/i2c-dev/i2c-1/name", "bcm2835 (i2c@7e804000)\n");
  await put(root, "sys/class/i2c-dev/i2c-20/name", "fef04500.i2c\n");
  await node(root, "dev/spidev0.0", GID.spi);
  await node(root, "dev/spidev0.1", GID.spi);
  await node(root, "dev/gpiochip0", GID.gpio);
  await node(root, "dev/gpiochip1", GID.gpio);
  await node(root, "dev/fb0", GID.video);
  await put(root, "sys/class/graphics/fb0/name", "vc4drmfb\n");
  await put(root, "sys/class/graphics/fb0/virtual_size", "1920,1080\n");
  await put(root, "sys/class/graphics/fb0/bits_per_pixel", "32\n");
  await put(root, "sys/class/graphics/fb0/stride", "7680\n");
  await mkdir(join(root, "run/systemd/system"), { recursive: true });
  await put(
    root,
    "lib/systemd/system/entratool-agent.service",
    "[Service]\nExecStart=/usr/bin/entratool agent\n",
  );
  // The service's configuration, 0640 root:entratool, holding what must never reach a report.
  await put(
    root,
    "etc/entratool/config.json",
    `{
      // the board in the kitchen
      "version": 1,
      "profile": "kitchen",
      "device": "pi-kitchen",
      "displays": [{ "type": "hd44780", "bus": 1, "address": "0x27" }, { "type": "ssd1680", "spi": { "bus": 0, "chipSelect": 0 } }],
      "sinks": [
        { "type": "mqtt", "url": "mqtts://broker.example.com:8883", "auth": "token", "scopes": ["api://broker/.default"] },
        { "type": "http", "url": "https://ingest.example.com/telemetry?code=s3cretcode", "headers": { "x-api-key": "s3cretheader" } }
      ]
    }`,
    0o640,
  );
  await chown(join(root, "etc/entratool/config.json"), 0, GID.entratool);
  await put(
    root,
    "etc/entratool/profiles.json",
    JSON.stringify({
      version: 1,
      profiles: [
        {
          name: "kitchen",
          tenantId: "contoso.onmicrosoft.com",
          clientId: "11111111-2222-3333-4444-555555555555",
          scopes: [],
          authorityHost: "https://login.microsoftonline.com",
          defaultFlow: "device-code",
        },
      ],
    }),
  );
  return { root, home: join(base, "home") };
}

/** A Pi 5 (the RP1's header chip, and the gpiochip4 link to it), in a container: no systemd, nothing installed. */
async function pi5(): Promise<Board> {
  const base = await mkdtemp(join(tmpdir(), "entratool-doctor-"));
  created.push(base);
  const root = join(base, "root");
  await commonTree(root, "Raspberry Pi 5 Model B Rev 1.0", "a1b2c3d4e5f60718");
  await node(root, "dev/i2c-1", GID.i2c);
  await node(root, "dev/gpiochip0", GID.gpio);
  await symlink("gpiochip0", join(root, "dev/gpiochip4"));
  return { root, home: join(base, "home") };
}

const PI4_CHIPS: FakeChip[] = [
  {
    node: "gpiochip0",
    name: "gpiochip0",
    label: "pinctrl-bcm2711",
    lineNames: Array.from({ length: 58 }, (_, i) => `GPIO${i}`),
  },
  { node: "gpiochip1", ...PI4_EXPANDER },
];

const RP1_CHIP: Omit<FakeChip, "node"> = {
  name: "gpiochip0",
  label: "pinctrl-rp1",
  lineNames: Array.from({ length: 54 }, (_, i) => (i < 28 ? `GPIO${i}` : `PIN${i}`)),
};
const PI5_CHIPS: FakeChip[] = [
  { node: "gpiochip0", ...RP1_CHIP },
  { node: "gpiochip4", ...RP1_CHIP },
];

type Answers = Readonly<Record<string, CommandResult>>;

const PI_COMMANDS: Answers = {
  "uname -r": { code: 0, stdout: "6.6.51+rpt-rpi-v8\n" },
  "uname -v": { code: 0, stdout: "#1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08)\n" },
  "uname -m": { code: 0, stdout: "aarch64\n" },
  "dpkg --print-architecture": { code: 0, stdout: "arm64\n" },
};

/** The commands of the board: what uname, dpkg and systemctl answer there (absent: no such command). */
function machine(board: Board, chips: FakeChip[], answers: Answers, identity = IDENTITY): Machine {
  const kernel = new FakeGpioKernel(join(board.root, "dev"), chips, real);
  kernels.push(kernel);
  return {
    root: board.root,
    run: async (command, args) => answers[[command, ...args].join(" ")],
    identity,
    arch: "arm64",
    bunVersion: "1.4.5",
    libc: kernel.libc,
  };
}

function context(
  board: Board,
  clock: Clock = new VirtualClock(),
): { ctx: CliContext; stdout: Capture; stderr: Capture } {
  const logger = pino({ level: "silent" });
  const paths = resolvePaths({ ENTRATOOL_HOME: board.home }, board.home);
  const locks = new FlockLockManager({ locksDir: paths.locksDir, clock, logger });
  const stdout = new Capture();
  const stderr = new Capture();
  const unused = (): never => {
    throw new Error("entratool doctor does not sign in");
  };
  const ctx: CliContext = {
    io: { stdout, stderr, interactive: false, ask: async () => undefined },
    env: {},
    paths,
    logger,
    clock,
    profiles: new JsonProfileStore({ file: paths.profilesFile, logger, locks }),
    // The doctor never reads tokens: a store that holds none.
    tokens: {} as TokenStore,
    locks,
    openSession: unused,
    signIn: { getToken: unused },
    loadAgent: () => import("../../agent/agent-cli.ts"),
    loadDisplays: () => import("../../agent/display-cli.ts"),
    signal: new AbortController().signal,
    version: "9.8.7",
  };
  return { ctx, stdout, stderr };
}

/** The report's lines of one section, from its title to the blank line after it. */
function sectionOf(text: string, title: string): string[] {
  const lines = text.split("\n");
  const start = lines.indexOf(title);
  expect(start, `section ${title}`).toBeGreaterThan(-1);
  const end = lines.indexOf("", start);
  return lines.slice(start + 1, end);
}

describe("entratool doctor on a Raspberry Pi 4", () => {
  test("reports the board, 64-bit, the groups with the fix for each, the service, the configuration and the buses", async () => {
    const board = await pi4();
    const { ctx, stdout } = context(board);
    const code = await doctorCommand(
      ctx,
      [],
      machine(board, PI4_CHIPS, {
        ...PI_COMMANDS,
        "systemctl is-enabled entratool-agent.service": { code: 0, stdout: "enabled\n" },
        "systemctl is-active entratool-agent.service": { code: 3, stdout: "failed\n" },
      }),
    );
    const text = stdout.text;
    const lines = text.split("\n");
    expect(lines[1]).toBe("Board: Raspberry Pi 4 Model B Rev 1.4.");
    expect(sectionOf(text, "Board")).toEqual([
      "  ok    board: Raspberry Pi 4 Model B Rev 1.4",
      "  ok    serial: 10000000abcdef01",
      "  ok    kernel: 6.6.51+rpt-rpi-v8 (#1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08))",
      "  ok    OS: Debian GNU/Linux 12 (bookworm)",
      "  ok    64-bit: yes (userland arm64, kernel aarch64, packages arm64)",
      "  ok    entratool 9.8.7 on Bun 1.4.5",
    ]);
    expect(sectionOf(text, "User and groups")).toEqual([
      "  ok    user: pi (uid 1000), groups: pi, gpio, video",
      "  ok    group gpio: pi is a member",
      "  warn  group i2c: pi was added after this login, so this session is not in it yet (I2C displays: HD44780 LCD, SSD1306 OLED); fix: log out and in again (or reboot)",
      "  warn  group spi: pi is not a member (SPI displays: SSD1680 e-ink); fix: sudo usermod -aG spi pi, then log out and in again",
      "  ok    group video: pi is a member",
    ]);
    const service = sectionOf(text, "Service");
    expect(service).toContain("  ok    systemd: running");
    expect(service).toContain(
      "  ok    unit entratool-agent.service: installed (/lib/systemd/system/entratool-agent.service)",
    );
    expect(service).toContain("  ok    entratool-agent.service: enabled (starts at boot)");
    expect(service).toContain(
      "  fail  entratool-agent.service: failed; fix: see why with 'journalctl -u entratool-agent -b', then 'sudo systemctl restart entratool-agent'",
    );
    expect(service).toContain("  ok    user entratool: uid 995, groups: gpio, i2c, spi, entratool");
    expect(service).toContain(
      "  warn  user entratool is not in group video (the HDMI framebuffer); fix: sudo usermod -aG video entratool && sudo systemctl restart entratool-agent",
    );
    expect(service).toContain("  ok    /etc/entratool/config.json: -rw-r----- root:entratool");
    // pi has no configuration of its own: the service's is checked, with its profiles.json.
    const config = sectionOf(text, "Configuration");
    expect(config[0]).toBe(
      `  ok    configuration: ${join(board.root, "etc/entratool/config.json")} (the service's) is valid: 2 displays, 0 sources, 2 sinks`,
    );
    expect(config).toContain("  ok    profile 'kitchen': found in /etc/entratool/profiles.json");
    expect(config).toContain("  ok    sinks[0] mqtt mqtts://broker.example.com:8883");
    expect(config).toContain("  ok    sinks[1] http https://ingest.example.com/telemetry");
    const devices = sectionOf(text, "Buses and devices");
    expect(devices).toEqual([
      "  warn  /dev/i2c-1 (bcm2835 (i2c@7e804000)): -rw-rw---- root:i2c, pi cannot open it; fix: sudo usermod -aG i2c pi, then log out and in again",
      "  warn  /dev/i2c-20 (fef04500.i2c): -rw-rw---- root:i2c, pi cannot open it; fix: sudo usermod -aG i2c pi, then log out and in again",
      "  warn  /dev/i2c-21: -rw-rw---- root:i2c, pi cannot open it; fix: sudo usermod -aG i2c pi, then log out and in again",
      "  warn  /dev/spidev0.0: -rw-rw---- root:spi, pi cannot open it; fix: sudo usermod -aG spi pi, then log out and in again",
      "  warn  /dev/spidev0.1: -rw-rw---- root:spi, pi cannot open it; fix: sudo usermod -aG spi pi, then log out and in again",
      "  ok    /dev/gpiochip0 (pinctrl-bcm2711, 58 lines, the 40-pin header): -rw-rw---- root:gpio, pi can open it",
      "  ok    /dev/gpiochip1 (raspberrypi-exp-gpio, 8 lines): -rw-rw---- root:gpio, pi can open it",
      "  ok    /dev/fb0 (vc4drmfb, 1920x1080, 32 bpp): -rw-rw---- root:video, pi can open it",
      "  warn  displays[0] hd44780 on I2C bus 1 at 0x27 needs /dev/i2c-1, which pi cannot open (the service may: see Service)",
      "  warn  displays[1] ssd1680 on SPI 0.0 needs /dev/spidev0.0, which pi cannot open (the service may: see Service)",
    ]);
    expect(sectionOf(text, "display detect").length).toBeGreaterThan(0);
    // A failed service is a failed check: exit 1, and the summary says so last.
    expect(code).toBe(1);
    expect(lines.at(-2)).toMatch(/^Summary: fail: 1 failed, \d+ warnings, \d+ ok\.$/);
    // Nothing of the sinks' credentials.
    expect(text).not.toMatch(/s3cret/);
  });

  test("a missing group on the board is said, and the GPIO chips' labels come from the character device", async () => {
    const board = await pi4();
    await put(board.root, "etc/group", GROUP.replace(/^spi:.*\n/m, ""));
    const { ctx, stdout } = context(board);
    await doctorCommand(ctx, ["--output", "json"], machine(board, PI4_CHIPS, PI_COMMANDS));
    const report = JSON.parse(stdout.text) as Report;
    // The JSON holds no more than the text: nothing of the sinks' credentials.
    expect(stdout.text).not.toMatch(/s3cret/);
    const findings = report.sections.flatMap((section) => section.findings);
    expect(findings.find((finding) => finding.id === "group.spi")).toEqual({
      id: "group.spi",
      status: "warn",
      message: "group spi: does not exist on this system (SPI displays: SSD1680 e-ink)",
    });
    expect(report.facts.devices).toMatchObject({
      gpio: [
        { path: "/dev/gpiochip0", what: "pinctrl-bcm2711, 58 lines, the 40-pin header" },
        { path: "/dev/gpiochip1", what: "raspberrypi-exp-gpio, 8 lines" },
      ],
    });
  });
});

describe("entratool doctor on a Raspberry Pi 5", () => {
  test("--output json: the same report as one object, the summary's counts matching the findings", async () => {
    const board = await pi5();
    const { ctx, stdout } = context(board);
    const code = await doctorCommand(ctx, ["--output", "json"], machine(board, PI5_CHIPS, PI_COMMANDS));
    const report = JSON.parse(stdout.text) as Report;
    expect(Object.keys(report)).toEqual([
      "entratool",
      "time",
      "machine",
      "raspberryPi",
      "facts",
      "sections",
      "summary",
    ]);
    expect(report).toMatchObject({
      entratool: "9.8.7",
      time: "2026-11-27T12:00:00.000Z",
      machine: "Board: Raspberry Pi 5 Model B Rev 1.0.",
      raspberryPi: true,
      facts: {
        board: { model: "Raspberry Pi 5 Model B Rev 1.0", raspberryPi: true, serial: "a1b2c3d4e5f60718" },
        kernel: { release: "6.6.51+rpt-rpi-v8", machine: "aarch64" },
        arch: { userland: "arm64", kernel: "aarch64", packages: "arm64" },
        os: "Debian GNU/Linux 12 (bookworm)",
        user: { name: "pi", uid: 1000, groups: ["pi", "gpio", "video"] },
        // The link gpiochip4 → gpiochip0 is one chip.
        devices: { gpio: [{ path: "/dev/gpiochip0", what: "pinctrl-rp1, 54 lines, the 40-pin header" }] },
      },
    });
    expect(report.sections.map((section) => section.id)).toEqual([
      "board",
      "user",
      "service",
      "config",
      "devices",
      "detect",
    ]);
    const findings = report.sections.flatMap((section) => section.findings);
    for (const finding of findings) {
      expect(["ok", "warn", "fail"]).toContain(finding.status);
      expect(finding.message.length).toBeGreaterThan(0);
    }
    const count = (status: string): number => findings.filter((finding) => finding.status === status).length;
    expect(report.summary).toEqual({ ok: count("ok"), warn: count("warn"), fail: 0, result: "warn" });
    // In a container: no systemd, nothing installed. Warnings, not failures: exit 0.
    expect(findings.find((finding) => finding.id === "service.systemd")?.status).toBe("warn");
    expect(findings.find((finding) => finding.id === "service.unit")).toMatchObject({ status: "warn" });
    expect(findings.find((finding) => finding.id === "config.file")).toMatchObject({ status: "warn" });
    expect(code).toBe(0);
  });

  test("--draw draws every screen on the configured displays and reports each, the one that cannot open with its sentence", async () => {
    const board = await pi5();
    const picture = join(board.home, "screen.png");
    await mkdir(board.home, { recursive: true });
    const configFile = join(board.home, "kitchen.json");
    await writeFile(
      configFile,
      JSON.stringify({
        version: 1,
        profile: { tenantId: "contoso.onmicrosoft.com", clientId: "11111111-2222-3333-4444-555555555555" },
        device: "pi-kitchen",
        displays: [
          { type: "png", file: picture, as: "ssd1306" },
          { type: "terminal" },
          { type: "hd44780", bus: 99, address: "0x27" },
        ],
      }),
    );
    // The displays' own timers (a retry's back-off, the terminal's ticker) run on the real clock,
    // as under `display test`; with --step 0 nothing waits for it.
    const { ctx, stdout } = context(board, systemClock);
    const code = await doctorCommand(
      ctx,
      ["--config", configFile, "--draw", "--step", "0"],
      machine(board, PI5_CHIPS, PI_COMMANDS),
    );
    const draw = sectionOf(stdout.text, "Drawing every screen (--draw)");
    expect(draw[0]).toBe(`  ok    displays[0] png as ssd1306 to ${picture}: drew every screen`);
    expect(draw[1]).toBe("  ok    displays[1] terminal: drew every screen");
    expect(draw[2]).toMatch(
      /^ {2}fail {2}displays\[2\] hd44780 on I2C bus 99 at 0x27: failed: \/dev\/i2c-99 does not exist: /,
    );
    expect(draw).toHaveLength(3);
    // The picture is the last screen shown, a real PNG.
    expect((await readFile(picture)).subarray(1, 4).toString()).toBe("PNG");
    expect(sectionOf(stdout.text, "Buses and devices")).toContain(
      "  fail  displays[2] hd44780 on I2C bus 99 at 0x27 needs /dev/i2c-99, which does not exist; fix: sudo raspi-config nonint do_i2c 0, then reboot; check the bus number with 'ls /dev/i2c-*'",
    );
    expect(sectionOf(stdout.text, "Configuration")).toContain(
      "  ok    profile 'default': written in the configuration (tenant contoso.onmicrosoft.com)",
    );
    expect(code).toBe(1);
  });

  test("--step without --draw, and an unknown --output, are usage errors", async () => {
    const board = await pi5();
    const { ctx } = context(board);
    await expect(
      doctorCommand(ctx, ["--step", "1"], machine(board, PI5_CHIPS, PI_COMMANDS)),
    ).rejects.toMatchObject({
      code: "E_USAGE",
    });
    await expect(
      doctorCommand(ctx, ["--output", "yaml"], machine(board, PI5_CHIPS, PI_COMMANDS)),
    ).rejects.toMatchObject({ code: "E_USAGE" });
  });
});

describe("what a report may show", () => {
  test("an invalid configuration's sentence loses the password it quotes", async () => {
    const board = await pi5();
    await mkdir(board.home, { recursive: true });
    const configFile = join(board.home, "bad.json");
    await writeFile(
      configFile,
      JSON.stringify({
        version: 1,
        sinks: [{ type: "mqtt", url: "mqtts://kitchenuser:hunter2@broker.example.com:8883/t?sig=abc123" }],
      }),
    );
    const { ctx, stdout } = context(board);
    const code = await doctorCommand(ctx, ["--config", configFile], machine(board, PI5_CHIPS, PI_COMMANDS));
    const config = sectionOf(stdout.text, "Configuration");
    expect(config).toHaveLength(1);
    expect(config[0]).toMatch(/^ {2}fail {2}The configuration file .* has 1 error: sinks\[0\]\.url: /);
    expect(config[0]).toContain("mqtts://broker.example.com:8883/t");
    expect(stdout.text).not.toMatch(/hunter2|abc123|kitchenuser/);
    expect(code).toBe(1);
  });

  test("redact: URLs keep scheme, host and path; tokens and key=value secrets go", () => {
    expect(redact('found "https://user:pw@example.com/path?code=1#x".')).toBe(
      'found "https://example.com/path".',
    );
    expect(redact("Authorization: Bearer abc.def-ghi")).toBe("Authorization: Bearer [removed]");
    expect(redact("SharedAccessSignature sr=x&sig=Zm9vYmFy&se=1")).toBe(
      "SharedAccessSignature sr=x&sig=[removed]&se=1",
    );
    expect(redact("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMifQ.c2lnbmF0dXJl here")).toBe(
      "token [token removed] here",
    );
    expect(redact('{"password": "hunter2"}')).toBe('{"password": "[removed]"}');
  });

  test("the nodes are checked as the kernel would: owner bits for the owner, group bits for members", async () => {
    const board = await pi5();
    // pi owns a node the group may not write: the owner's bits decide.
    await put(board.root, "dev/spidev0.0", "", 0o460);
    await chown(join(board.root, "dev/spidev0.0"), PI.uid, GID.spi);
    expect((await stat(join(board.root, "dev/spidev0.0"))).uid).toBe(PI.uid);
    const { ctx, stdout } = context(board);
    await doctorCommand(
      ctx,
      [],
      machine(board, PI5_CHIPS, PI_COMMANDS, { uid: PI.uid, gid: PI.gid, groups: [GID.spi, GID.gpio] }),
    );
    expect(sectionOf(stdout.text, "Buses and devices")).toContain(
      "  warn  /dev/spidev0.0: -r--rw---- pi:spi, pi cannot open it; fix: sudo chmod 0660 /dev/spidev0.0 (udev gives it root:spi 0660 on Raspberry Pi OS)",
    );
  });
});
