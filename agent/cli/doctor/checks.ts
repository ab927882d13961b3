import { dirname } from "node:path";
import { GpioCdev } from "../../../display/bus/gpio-cdev.ts";
import { HEADER_CHIP_LABELS } from "../../../display/bus/sysfs-gpio.ts";
import type { DisplayConfig } from "../../../display/config.ts";
import { displayName } from "../../../display/config.ts";
import { readFramebufferGeometry } from "../../../display/drivers/framebuffer/driver.ts";
import { loadConfig } from "../../config/load.ts";
import type { AgentConfig } from "../../config/schema.ts";
import type { Clock } from "../../core/clock.ts";
import { errnoCode, toEntraToolError } from "../../core/errors.ts";
import type { ProfileStore } from "../../store/types.ts";
import {
  type Account,
  type Accounts,
  at,
  canReadWrite,
  exists,
  groupName,
  groupsOf,
  listDir,
  type Machine,
  modeString,
  type NodeInfo,
  nodeInfo,
  readAccounts,
  readDeviceTreeString,
  readText,
  userName,
} from "./machine.ts";
import { type Finding, type Report, redactSections, type Section, safeUrl, summarise } from "./report.ts";

/** What `display detect` and `display test` (the display module) found, for the report. */
export interface DisplayProbe {
  /** The lines `display detect` prints. */
  detect(): Promise<readonly string[]>;
  /** Every screen on the displays of `configFile`; each display ok or failed with its sentence. */
  draw(configFile: string): Promise<readonly DrawResult[]>;
}

export interface DrawResult {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
}

export interface DoctorOptions {
  readonly machine: Machine;
  readonly clock: Clock;
  readonly version: string;
  /** --config FILE, when given. */
  readonly configFile?: string | undefined;
  /** config.json in this user's configuration directory. */
  readonly defaultConfigFile: string;
  /** This user's profiles (those `entratool agent --config FILE` would sign in with). */
  readonly profiles: ProfileStore;
  /** The display module's detection and drawing; none: those sections say they were not run. */
  readonly displays?: DisplayProbe | undefined;
  /** Draw every screen on the configured displays (`--draw`). */
  readonly draw?: boolean;
}

/** The groups a board's devices belong to, and what each one is for. */
const DEVICE_GROUPS: ReadonlyArray<{ readonly group: string; readonly what: string }> = [
  { group: "gpio", what: "GPIO lines: LEDs, buzzer, button, e-ink control pins" },
  { group: "i2c", what: "I2C displays: HD44780 LCD, SSD1306 OLED" },
  { group: "spi", what: "SPI displays: SSD1680 e-ink" },
  { group: "video", what: "the HDMI framebuffer" },
];

const SERVICE = "entratool-agent.service";
const SERVICE_USER = "entratool";
/** Where a unit file may be, as systemd looks (admin's first). */
const UNIT_DIRS = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"];
const SERVICE_CONFIG = "/etc/entratool/config.json";
const CREDENTIAL = "/etc/credstore.encrypted/entratool.key";
const CREDENTIAL_DROP_IN = "/etc/systemd/system/entratool-agent.service.d/credential.conf";

/** What the checks learn on the way that later checks and the facts need. */
interface Context {
  readonly options: DoctorOptions;
  readonly machine: Machine;
  readonly accounts: Accounts;
  /** The person running the doctor, by name when the databases know the uid. */
  readonly user: string;
  readonly raspberryPi: boolean;
  readonly facts: Record<string, unknown>;
  /** The configuration that was read, when one was valid. */
  config?: AgentConfig;
  configFile?: string;
}

/** Runs every check and puts the report together. Never throws for what it finds on the machine. */
export async function runDoctor(options: DoctorOptions): Promise<Report> {
  const { machine } = options;
  const accounts = await readAccounts(machine);
  const board = await boardSection(machine, options.version);
  const ctx: Context = {
    options,
    machine,
    accounts,
    user: userName(accounts, machine.identity.uid),
    raspberryPi: board.raspberryPi,
    facts: { ...board.facts },
  };
  const sections: Section[] = [board.section];
  sections.push(userSection(ctx));
  sections.push(await serviceSection(ctx));
  sections.push(await configSection(ctx));
  sections.push(await devicesSection(ctx));
  sections.push(await detectSection(ctx));
  if (options.draw) sections.push(await drawSection(ctx));
  const clean = redactSections(sections);
  return {
    entratool: options.version,
    time: new Date(options.clock.now()).toISOString(),
    machine: board.machine,
    raspberryPi: board.raspberryPi,
    facts: ctx.facts,
    sections: clean,
    summary: summarise(clean),
  };
}

// --- Board ---------------------------------------------------------------------------------------

const BITS_64 = new Set(["aarch64", "arm64", "x86_64", "amd64", "x64", "riscv64", "ppc64le", "s390x"]);

async function boardSection(
  machine: Machine,
  version: string,
): Promise<{ section: Section; raspberryPi: boolean; machine: string; facts: Record<string, unknown> }> {
  const findings: Finding[] = [];
  const model =
    (await readDeviceTreeString(machine, "/proc/device-tree/model")) ??
    (await readDeviceTreeString(machine, "/sys/firmware/devicetree/base/model"));
  const dmi = [
    (await readText(machine, "/sys/class/dmi/id/sys_vendor"))?.trim(),
    (await readText(machine, "/sys/class/dmi/id/product_name"))?.trim(),
  ]
    .filter((part): part is string => part !== undefined && part !== "")
    .join(" ");
  const raspberryPi = model?.startsWith("Raspberry Pi") === true;
  let headline: string;
  if (raspberryPi) {
    headline = `Board: ${model}.`;
    findings.push({ id: "board.model", status: "ok", message: `board: ${model}` });
  } else if (model !== undefined) {
    headline = `Board: ${model}. This is not a Raspberry Pi.`;
    findings.push({
      id: "board.model",
      status: "warn",
      message: `board: ${model}: not a Raspberry Pi; entratool runs here, but the wiring and raspi-config advice are for a Pi's 40-pin header`,
    });
  } else {
    const what = dmi === "" ? "no device-tree model, no DMI product name" : dmi;
    headline = `This is not a Raspberry Pi (${what}).`;
    findings.push({
      id: "board.model",
      status: "warn",
      message: `board: not a Raspberry Pi (${what}): the GPIO, I2C and SPI findings below are about this machine, not a Pi`,
    });
  }
  const serial =
    (await readDeviceTreeString(machine, "/proc/device-tree/serial-number")) ??
    /^Serial\s*:\s*(\S+)/m.exec((await readText(machine, "/proc/cpuinfo")) ?? "")?.[1];
  findings.push({
    id: "board.serial",
    status: "ok",
    message:
      serial === undefined
        ? "serial: none (no device-tree serial number, no Serial in /proc/cpuinfo)"
        : `serial: ${serial}`,
  });

  const uname = async (flag: string): Promise<string | undefined> => {
    const result = await machine.run("uname", [flag]);
    const text = result?.code === 0 ? result.stdout.trim() : "";
    return text === "" ? undefined : text;
  };
  const release = (await uname("-r")) ?? (await readText(machine, "/proc/sys/kernel/osrelease"))?.trim();
  const kernelVersion = (await uname("-v")) ?? (await readText(machine, "/proc/sys/kernel/version"))?.trim();
  const kernelMachine = await uname("-m");
  findings.push({
    id: "board.kernel",
    status: release === undefined ? "warn" : "ok",
    message:
      release === undefined
        ? "kernel: unknown (uname gave no answer)"
        : `kernel: ${release}${kernelVersion === undefined ? "" : ` (${kernelVersion})`}`,
  });

  const osRelease =
    (await readText(machine, "/etc/os-release")) ?? (await readText(machine, "/usr/lib/os-release")) ?? "";
  const os = /^PRETTY_NAME=(["']?)(.*)\1\s*$/m.exec(osRelease)?.[2];
  findings.push({
    id: "board.os",
    status: os === undefined ? "warn" : "ok",
    message: os === undefined ? "OS: unknown (no PRETTY_NAME in /etc/os-release)" : `OS: ${os}`,
  });

  const dpkg = await machine.run("dpkg", ["--print-architecture"]);
  const packages = dpkg?.code === 0 ? dpkg.stdout.trim() || undefined : undefined;
  const userland64 = BITS_64.has(machine.arch);
  const kernel64 = kernelMachine === undefined ? undefined : BITS_64.has(kernelMachine);
  const packages64 = packages === undefined ? undefined : BITS_64.has(packages);
  const parts = [
    `userland ${machine.arch}`,
    `kernel ${kernelMachine ?? "unknown"}`,
    ...(packages === undefined ? [] : [`packages ${packages}`]),
  ].join(", ");
  if (!userland64 || kernel64 === false) {
    findings.push({
      id: "board.64bit",
      status: "fail",
      message: `64-bit: no (${parts})`,
      fix: "install Raspberry Pi OS (64-bit) or another arm64 OS: entratool is built for 64-bit only",
    });
  } else if (packages64 === false) {
    findings.push({
      id: "board.64bit",
      status: "warn",
      message: `64-bit: the kernel and entratool are, but the OS's packages are ${packages} (${parts})`,
      fix: "install Raspberry Pi OS (64-bit); a 32-bit OS with a 64-bit kernel is not supported",
    });
  } else {
    findings.push({ id: "board.64bit", status: "ok", message: `64-bit: yes (${parts})` });
  }
  findings.push({
    id: "board.runtime",
    status: "ok",
    message: `entratool ${version} on Bun ${machine.bunVersion}`,
  });
  return {
    section: { id: "board", title: "Board", findings },
    raspberryPi,
    machine: headline,
    facts: {
      board: { model: model ?? null, dmi: dmi || null, raspberryPi, serial: serial ?? null },
      kernel: { release: release ?? null, version: kernelVersion ?? null, machine: kernelMachine ?? null },
      os: os ?? null,
      arch: { userland: machine.arch, kernel: kernelMachine ?? null, packages: packages ?? null },
      bun: machine.bunVersion,
      entratool: version,
    },
  };
}

// --- User ----------------------------------------------------------------------------------------

function userSection(ctx: Context): Section {
  const { machine, accounts, user } = ctx;
  const { identity } = machine;
  const findings: Finding[] = [];
  const sessionGroups = [identity.gid, ...identity.groups];
  const names = [...new Set(sessionGroups)].map((gid) => groupName(accounts, gid));
  findings.push({
    id: "user",
    status: "ok",
    message: `user: ${user} (uid ${identity.uid}), groups: ${names.join(", ")}`,
  });
  ctx.facts.user = { name: user, uid: identity.uid, groups: names };
  if (identity.uid === 0) {
    findings.push({
      id: "user.root",
      status: "ok",
      message:
        "running as root: every device opens whatever its group; the service runs as entratool (see Service)",
    });
    return { id: "user", title: "User and groups", findings };
  }
  const account = accounts.users.find((candidate) => candidate.uid === identity.uid);
  for (const { group, what } of DEVICE_GROUPS) {
    const entry = accounts.groups.find((candidate) => candidate.name === group);
    if (entry === undefined) {
      findings.push({
        id: `group.${group}`,
        status: ctx.raspberryPi ? "warn" : "ok",
        message: `group ${group}: does not exist on this system (${what})${ctx.raspberryPi ? "" : "; Raspberry Pi OS has it"}`,
      });
      continue;
    }
    const inSession = sessionGroups.includes(entry.gid);
    const inDatabase = account !== undefined && groupsOf(accounts, account).some((g) => g.gid === entry.gid);
    if (inSession) {
      findings.push({ id: `group.${group}`, status: "ok", message: `group ${group}: ${user} is a member` });
    } else if (inDatabase) {
      findings.push({
        id: `group.${group}`,
        status: "warn",
        message: `group ${group}: ${user} was added after this login, so this session is not in it yet (${what})`,
        fix: "log out and in again (or reboot)",
      });
    } else {
      findings.push({
        id: `group.${group}`,
        status: "warn",
        message: `group ${group}: ${user} is not a member (${what})`,
        fix: `sudo usermod -aG ${group} ${user}, then log out and in again`,
      });
    }
  }
  return { id: "user", title: "User and groups", findings };
}

// --- Service -------------------------------------------------------------------------------------

async function serviceSection(ctx: Context): Promise<Section> {
  const { machine, accounts } = ctx;
  const findings: Finding[] = [];
  const systemd = await exists(machine, "/run/systemd/system");
  findings.push(
    systemd
      ? { id: "service.systemd", status: "ok", message: "systemd: running" }
      : {
          id: "service.systemd",
          status: "warn",
          message:
            "systemd: not running (a container, or another init): the entratool-agent service cannot run here; 'entratool agent' can be started by hand",
        },
  );
  let unitFile: string | undefined;
  for (const dir of UNIT_DIRS) {
    if (await exists(machine, `${dir}/${SERVICE}`)) {
      unitFile = `${dir}/${SERVICE}`;
      break;
    }
  }
  findings.push(
    unitFile === undefined
      ? {
          id: "service.unit",
          status: "warn",
          message: `unit ${SERVICE}: not installed`,
          fix: "install the .deb (sudo apt install ./entratool_<version>_arm64.deb) or run install.sh from the release tarball",
        }
      : { id: "service.unit", status: "ok", message: `unit ${SERVICE}: installed (${unitFile})` },
  );
  const facts: Record<string, unknown> = { systemd, unit: unitFile ?? null };

  if (systemd) {
    const enabled = await machine.run("systemctl", ["is-enabled", SERVICE]);
    const active = await machine.run("systemctl", ["is-active", SERVICE]);
    if (enabled === undefined || active === undefined) {
      findings.push({
        id: "service.state",
        status: "warn",
        message: "systemctl: not found or not answering, so the service's state is unknown",
      });
    } else {
      const isEnabled = enabled.stdout.trim() || "unknown";
      const isActive = active.stdout.trim() || "unknown";
      facts.enabled = isEnabled;
      facts.active = isActive;
      if (unitFile !== undefined || isEnabled !== "not-found") {
        findings.push(
          isEnabled === "enabled"
            ? { id: "service.enabled", status: "ok", message: `${SERVICE}: enabled (starts at boot)` }
            : {
                id: "service.enabled",
                status: "warn",
                message: `${SERVICE}: ${isEnabled} (does not start at boot)`,
                fix: "sudo systemctl enable --now entratool-agent",
              },
        );
        findings.push(
          isActive === "active"
            ? { id: "service.active", status: "ok", message: `${SERVICE}: active (running)` }
            : isActive === "failed"
              ? {
                  id: "service.active",
                  status: "fail",
                  message: `${SERVICE}: failed`,
                  fix: "see why with 'journalctl -u entratool-agent -b', then 'sudo systemctl restart entratool-agent'",
                }
              : {
                  id: "service.active",
                  status: isEnabled === "enabled" ? "warn" : "ok",
                  message: `${SERVICE}: ${isActive} (not running)`,
                  ...(isEnabled === "enabled" ? { fix: "sudo systemctl start entratool-agent" } : {}),
                },
        );
      }
    }
  }

  const serviceUser = accounts.users.find((candidate) => candidate.name === SERVICE_USER);
  if (serviceUser === undefined) {
    findings.push(
      unitFile === undefined
        ? { id: "service.user", status: "ok", message: `user ${SERVICE_USER}: absent (installing makes it)` }
        : {
            id: "service.user",
            status: "fail",
            message: `user ${SERVICE_USER}: absent, and the unit runs as it`,
            fix: "sudo systemd-sysusers (it reads /usr/lib/sysusers.d/entratool.conf)",
          },
    );
  } else {
    findings.push(...serviceUserFindings(accounts, serviceUser));
  }
  facts.user = serviceUser === undefined ? null : serviceUser.name;

  const config = await nodeInfo(machine, SERVICE_CONFIG);
  if (config !== undefined) {
    const owner = `${userName(accounts, config.uid)}:${groupName(accounts, config.gid)}`;
    const others = (config.mode & 0o007) !== 0;
    findings.push({
      id: "service.config",
      status: others ? "warn" : "ok",
      message: `${SERVICE_CONFIG}: ${modeString(config)} ${owner}${others ? ": every user can read it, and it may hold a broker's password" : ""}`,
      ...(others ? { fix: `sudo chmod 0640 ${SERVICE_CONFIG}` } : {}),
    });
  } else if (unitFile !== undefined) {
    findings.push({
      id: "service.config",
      status: "warn",
      message: `${SERVICE_CONFIG}: absent, so the agent has no configuration`,
      fix: "reinstall the package, or copy config.json from the release tarball there",
    });
  }
  if (unitFile !== undefined) {
    const key = await exists(machine, CREDENTIAL);
    const dropIn = await exists(machine, CREDENTIAL_DROP_IN);
    findings.push(
      key && !dropIn
        ? {
            id: "service.key",
            status: "warn",
            message: `${CREDENTIAL} exists but no drop-in passes it to the agent`,
            fix: `write ${CREDENTIAL_DROP_IN} (README "The store key"), then sudo systemctl daemon-reload`,
          }
        : !key && dropIn
          ? {
              id: "service.key",
              status: "fail",
              message: `${CREDENTIAL_DROP_IN} names ${CREDENTIAL}, which does not exist: the agent cannot start`,
              fix: "create the credential with systemd-creds, or remove the drop-in",
            }
          : {
              id: "service.key",
              status: "ok",
              message: key
                ? "token store's key: sealed to this machine with systemd-creds"
                : "token store's key: made by the agent in /var/lib/entratool (no systemd credential)",
            },
    );
  }
  ctx.facts.service = facts;
  return { id: "service", title: "Service", findings };
}

function serviceUserFindings(accounts: Accounts, serviceUser: Account): Finding[] {
  const groups = groupsOf(accounts, serviceUser);
  const findings: Finding[] = [
    {
      id: "service.user",
      status: "ok",
      message: `user ${SERVICE_USER}: uid ${serviceUser.uid}, groups: ${groups.map((g) => g.name).join(", ") || "none"}`,
    },
  ];
  for (const { group, what } of DEVICE_GROUPS) {
    const entry = accounts.groups.find((candidate) => candidate.name === group);
    if (entry === undefined || groups.some((g) => g.gid === entry.gid)) continue;
    findings.push({
      id: `service.group.${group}`,
      status: "warn",
      message: `user ${SERVICE_USER} is not in group ${group} (${what})`,
      fix: `sudo usermod -aG ${group} ${SERVICE_USER} && sudo systemctl restart entratool-agent`,
    });
  }
  return findings;
}

// --- Configuration -------------------------------------------------------------------------------

async function configSection(ctx: Context): Promise<Section> {
  const { options, machine } = ctx;
  const findings: Finding[] = [];
  const section = (): Section => ({ id: "config", title: "Configuration", findings });
  const serviceFile = at(machine, SERVICE_CONFIG);
  let file: string;
  let whose: string;
  if (options.configFile !== undefined) {
    file = options.configFile;
    whose = "named with --config";
  } else if ((await fileExists(options.defaultConfigFile)) || !(await exists(machine, SERVICE_CONFIG))) {
    file = options.defaultConfigFile;
    whose = `${ctx.user}'s`;
  } else {
    file = serviceFile;
    whose = "the service's";
  }
  ctx.facts.config = { file, valid: false };
  let config: AgentConfig;
  try {
    config = await loadConfig(file, { isDefault: options.configFile === undefined });
  } catch (thrown) {
    const error = toEntraToolError(thrown);
    const cause = errnoCode(error.cause);
    if (cause === "ENOENT" && options.configFile === undefined) {
      findings.push({
        id: "config.file",
        status: "warn",
        message: `configuration: none (neither ${options.defaultConfigFile} nor ${SERVICE_CONFIG})`,
        fix: "create one (README, The agent), or name one with --config FILE",
      });
    } else if (cause === "EACCES" || cause === "EPERM") {
      findings.push({
        id: "config.file",
        status: "warn",
        message: `configuration: ${file} (${whose}) cannot be read by ${ctx.user}`,
        fix: "run 'sudo entratool doctor' to check it",
      });
    } else {
      findings.push({ id: "config.file", status: "fail", message: error.message });
    }
    return section();
  }
  ctx.config = config;
  ctx.configFile = file;
  ctx.facts.config = { file, valid: true };
  const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`;
  findings.push({
    id: "config.file",
    status: "ok",
    message: `configuration: ${file} (${whose}) is valid: ${count(config.displays.length, "display")}, ${count(config.sources.length, "source")}, ${count(config.sinks.length, "sink")}`,
  });
  findings.push(await profileFinding(ctx, config, file === serviceFile));
  for (const [index, sink] of config.sinks.entries()) {
    findings.push({
      id: `config.sinks[${index}]`,
      status: "ok",
      message: `sinks[${index}] ${describeSink(sink)}`,
    });
  }
  return section();
}

async function fileExists(file: string): Promise<boolean> {
  return Bun.file(file).exists();
}

async function profileFinding(ctx: Context, config: AgentConfig, serviceConfig: boolean): Promise<Finding> {
  // A profile may be written into the configuration itself, or named (then it is in profiles.json).
  const profile: unknown = config.profile;
  if (typeof profile === "object" && profile !== null) {
    const inline = profile as { readonly name?: string; readonly tenantId?: string };
    return {
      id: "config.profile",
      status: "ok",
      message: `profile '${inline.name ?? "default"}': written in the configuration (tenant ${inline.tenantId ?? "?"})`,
    };
  }
  const name = String(profile);
  // The service reads profiles.json beside its configuration (its configuration directory).
  const where = serviceConfig ? `${dirname(SERVICE_CONFIG)}/profiles.json` : "this user's profiles";
  let found: boolean;
  try {
    found = serviceConfig
      ? await serviceHasProfile(ctx.machine, name)
      : (await ctx.options.profiles.get(name)) !== undefined;
  } catch (thrown) {
    return { id: "config.profile", status: "fail", message: toEntraToolError(thrown).message };
  }
  return found
    ? { id: "config.profile", status: "ok", message: `profile '${name}': found in ${where}` }
    : {
        id: "config.profile",
        status: "fail",
        message: `profile '${name}': not in ${where}`,
        fix: serviceConfig
          ? 'write the profile into the configuration ("profile": { "tenantId": …, "clientId": … })'
          : `entratool create-profile --name ${name} --tenant-id <tenant> --client-id <app id>`,
      };
}

async function serviceHasProfile(machine: Machine, name: string): Promise<boolean> {
  const text = await readText(machine, `${dirname(SERVICE_CONFIG)}/profiles.json`);
  if (text === undefined) return false;
  const parsed: unknown = JSON.parse(text);
  const profiles = (parsed as { profiles?: unknown }).profiles;
  return Array.isArray(profiles) && profiles.some((p) => (p as { name?: unknown }).name === name);
}

/** A sink by its type and where it sends, without credentials (no user info, no query, no headers). */
function describeSink(sink: AgentConfig["sinks"][number]): string {
  switch (sink.type) {
    case "mqtt":
    case "http":
      return `${sink.type} ${safeUrl(sink.url)}`;
    case "eventhubs":
      return `eventhubs ${sink.namespace}/${sink.hub}`;
    case "azure-monitor-logs":
      return `azure-monitor-logs ${safeUrl(sink.endpoint)} stream ${sink.stream}`;
    default:
      return (sink as { type: string }).type;
  }
}

// --- Devices -------------------------------------------------------------------------------------

interface DeviceNode {
  readonly path: string;
  readonly info: NodeInfo | undefined;
  /** What it is, when known: the adapter's name, the chip's label and lines, the screen's size. */
  readonly what?: string;
}

async function devicesSection(ctx: Context): Promise<Section> {
  const { machine, options } = ctx;
  const findings: Finding[] = [];
  const node = async (path: string, what?: string): Promise<DeviceNode> => ({
    path,
    info: await nodeInfo(machine, path),
    ...(what === undefined ? {} : { what }),
  });

  const i2c: DeviceNode[] = [];
  for (const name of await listDir(machine, "/dev", /^i2c-\d+$/)) {
    const adapter = (await readText(machine, `/sys/class/i2c-dev/${name}/name`))?.trim();
    i2c.push(await node(`/dev/${name}`, adapter));
  }
  const spi: DeviceNode[] = [];
  for (const name of await listDir(machine, "/dev", /^spidev\d+\.\d+$/)) spi.push(await node(`/dev/${name}`));

  const gpio: DeviceNode[] = [];
  const gpioNames = await listDir(machine, "/dev", /^gpiochip\d+$/);
  let gpioProblem: string | undefined;
  if (gpioNames.length > 0) {
    const cdev = new GpioCdev({
      clock: options.clock,
      devDir: at(machine, "/dev"),
      ...(machine.libc === undefined ? {} : { libc: machine.libc }),
    });
    const nodes = await Promise.all(gpioNames.map((name) => node(`/dev/${name}`)));
    if (nodes.every((n) => n.info !== undefined && canReadWrite(n.info, machine.identity))) {
      try {
        for (const chip of await cdev.chips()) {
          const path = `/dev/${chip.path.slice(chip.path.lastIndexOf("/") + 1)}`;
          const header = HEADER_CHIP_LABELS.includes(chip.label) ? ", the 40-pin header" : "";
          gpio.push(await node(path, `${chip.label}, ${chip.lines} lines${header}`));
        }
      } catch (thrown) {
        gpioProblem = toEntraToolError(thrown).message;
        gpio.push(...nodes);
      }
    } else {
      // The chips cannot be asked for their labels without opening them: the nodes alone.
      gpio.push(...nodes);
    }
  }

  const framebuffers: DeviceNode[] = [];
  for (const name of await listDir(machine, "/dev", /^fb\d+$/)) {
    const n = Number(name.slice(2));
    const driver = (await readText(machine, `/sys/class/graphics/${name}/name`))?.trim();
    let size: string;
    try {
      const geometry = await readFramebufferGeometry({
        device: n,
        sysfsRoot: at(machine, "/sys"),
        devRoot: at(machine, "/dev"),
      });
      size = `${geometry.width}x${geometry.height}, ${geometry.bitsPerPixel} bpp`;
    } catch (thrown) {
      size = `geometry unknown: ${thrown instanceof Error ? thrown.message : String(thrown)}`;
    }
    framebuffers.push(await node(`/dev/${name}`, driver === undefined ? size : `${driver}, ${size}`));
  }

  const kinds = [
    {
      id: "i2c",
      nodes: i2c,
      group: "i2c",
      none: "no I2C bus (/dev/i2c-*); for an I2C display: sudo raspi-config nonint do_i2c 0, then reboot",
    },
    {
      id: "spi",
      nodes: spi,
      group: "spi",
      none: "no SPI device (/dev/spidev*); for an SPI display: sudo raspi-config nonint do_spi 0, then reboot",
    },
    {
      id: "gpio",
      nodes: gpio,
      group: "gpio",
      none: "no GPIO chip (/dev/gpiochip*); LEDs, the buzzer and the button need the GPIO character device (Raspberry Pi OS has it)",
    },
    {
      id: "fb",
      nodes: framebuffers,
      group: "video",
      none: "no framebuffer (/dev/fb*); for HDMI: connect the screen before boot and keep dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt",
    },
  ];
  for (const kind of kinds) {
    if (kind.nodes.length === 0) {
      findings.push({ id: `device.${kind.id}`, status: "ok", message: kind.none });
      continue;
    }
    for (const device of kind.nodes) findings.push(deviceFinding(ctx, device, kind.group));
  }
  if (gpioProblem !== undefined)
    findings.push({ id: "device.gpio.labels", status: "warn", message: gpioProblem });
  if (
    ctx.raspberryPi &&
    gpio.length > 0 &&
    !gpio.some((g) => HEADER_CHIP_LABELS.some((l) => g.what?.startsWith(l)))
  ) {
    if (gpioProblem === undefined && gpio.every((g) => g.what !== undefined)) {
      findings.push({
        id: "device.gpio.header",
        status: "warn",
        message: `no GPIO chip is labelled ${HEADER_CHIP_LABELS.join(", ")}: the header's lines may not be found by name`,
      });
    }
  }
  findings.push(...neededDevices(ctx, { i2c, spi, gpio, framebuffers }));
  ctx.facts.devices = {
    i2c: i2c.map(deviceFact),
    spi: spi.map(deviceFact),
    gpio: gpio.map(deviceFact),
    framebuffers: framebuffers.map(deviceFact),
  };
  return { id: "devices", title: "Buses and devices", findings };
}

function deviceFact(device: DeviceNode): Record<string, unknown> {
  return {
    path: device.path,
    what: device.what ?? null,
    mode: device.info === undefined ? null : modeString(device.info),
    group: device.info?.gid ?? null,
  };
}

function deviceFinding(ctx: Context, device: DeviceNode, group: string): Finding {
  const { accounts, machine, user } = ctx;
  const what = device.what === undefined ? "" : ` (${device.what})`;
  if (device.info === undefined) {
    return { id: `device.${device.path}`, status: "warn", message: `${device.path}${what}: cannot be read` };
  }
  const owner = `${userName(accounts, device.info.uid)}:${groupName(accounts, device.info.gid)}`;
  const head = `${device.path}${what}: ${modeString(device.info)} ${owner}`;
  if (canReadWrite(device.info, machine.identity)) {
    return { id: `device.${device.path}`, status: "ok", message: `${head}, ${user} can open it` };
  }
  const nodeGroup = groupName(accounts, device.info.gid);
  const { identity } = machine;
  const member = identity.gid === device.info.gid || identity.groups.includes(device.info.gid);
  // The kernel looks at the owner's bits for the owner and the group's for its members, whatever
  // the other bits say: the fix depends on which of them applies.
  const fix =
    identity.uid === device.info.uid || member || (device.info.mode & 0o060) !== 0o060
      ? `sudo chmod 0660 ${device.path} (udev gives it root:${group} 0660 on Raspberry Pi OS)`
      : `sudo usermod -aG ${nodeGroup} ${user}, then log out and in again`;
  return { id: `device.${device.path}`, status: "warn", message: `${head}, ${user} cannot open it`, fix };
}

/** Whether what each configured display needs exists and can be opened. */
function neededDevices(
  ctx: Context,
  found: {
    readonly i2c: DeviceNode[];
    readonly spi: DeviceNode[];
    readonly gpio: DeviceNode[];
    readonly framebuffers: DeviceNode[];
  },
): Finding[] {
  const displays = ctx.config?.displays ?? [];
  const findings: Finding[] = [];
  for (const [index, display] of displays.entries()) {
    const needs = needsOf(display);
    if (needs === undefined) continue;
    const pool = found[needs.kind];
    const device = needs.path === undefined ? pool[0] : pool.find((d) => d.path === needs.path);
    const name = displayName(display, index);
    const wanted = needs.path ?? needs.any;
    if (device === undefined) {
      findings.push({
        id: `device.needed.displays[${index}]`,
        status: "fail",
        message: `${name} needs ${wanted}, which does not exist`,
        fix: needs.enable,
      });
    } else if (device.info !== undefined && !canReadWrite(device.info, ctx.machine.identity)) {
      findings.push({
        id: `device.needed.displays[${index}]`,
        status: "warn",
        message: `${name} needs ${device.path}, which ${ctx.user} cannot open (the service may: see Service)`,
      });
    } else {
      findings.push({
        id: `device.needed.displays[${index}]`,
        status: "ok",
        message: `${name}: ${device.path} is there`,
      });
    }
  }
  return findings;
}

interface Needs {
  readonly kind: "i2c" | "spi" | "gpio" | "framebuffers";
  /** One node; none: any of its kind. */
  readonly path?: string;
  readonly any: string;
  readonly enable: string;
}

function needsOf(display: DisplayConfig): Needs | undefined {
  const i2c = "sudo raspi-config nonint do_i2c 0, then reboot; check the bus number with 'ls /dev/i2c-*'";
  switch (display.type) {
    case "hd44780":
    case "ssd1306":
      return { kind: "i2c", path: `/dev/i2c-${display.bus}`, any: "an I2C bus", enable: i2c };
    case "ssd1680":
      return {
        kind: "spi",
        path: `/dev/spidev${display.spi.bus}.${display.spi.chipSelect}`,
        any: "an SPI device",
        enable: "sudo raspi-config nonint do_spi 0, then reboot",
      };
    case "framebuffer":
      return {
        kind: "framebuffers",
        path: display.device,
        any: "a framebuffer",
        enable: "connect the screen before boot; keep dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt",
      };
    case "leds":
      return {
        kind: "gpio",
        any: "a GPIO chip (/dev/gpiochip*)",
        enable: "a kernel with the GPIO character device",
      };
    default:
      return undefined;
  }
}

// --- Displays ------------------------------------------------------------------------------------

async function detectSection(ctx: Context): Promise<Section> {
  const findings: Finding[] = [];
  const probe = ctx.options.displays;
  if (probe === undefined) {
    findings.push({
      id: "detect",
      status: "warn",
      message: "display detect: not run (the display module is not available)",
    });
    return { id: "detect", title: "display detect", findings };
  }
  let lines: readonly string[];
  try {
    lines = await probe.detect();
  } catch (thrown) {
    findings.push({
      id: "detect",
      status: "warn",
      message: `display detect: ${toEntraToolError(thrown).message}`,
    });
    return { id: "detect", title: "display detect", findings };
  }
  for (const [index, line] of lines.entries()) {
    // Found, nothing found and no bus at all are findings; a bus that could not be opened is a warning.
    const plain =
      /^\/dev\/i2c-\d+ 0x[0-9a-f]+: /.test(line) ||
      /: no known display$/.test(line) ||
      /^No I2C bus/.test(line);
    findings.push({ id: `detect[${index}]`, status: plain ? "ok" : "warn", message: line });
  }
  if (lines.length === 0)
    findings.push({ id: "detect", status: "ok", message: "display detect: found nothing" });
  ctx.facts.detect = lines;
  return { id: "detect", title: "display detect", findings };
}

async function drawSection(ctx: Context): Promise<Section> {
  const findings: Finding[] = [];
  const section = (): Section => ({ id: "draw", title: "Drawing every screen (--draw)", findings });
  const probe = ctx.options.displays;
  if (ctx.config === undefined || ctx.configFile === undefined) {
    findings.push({
      id: "draw",
      status: "warn",
      message: "not drawn: there is no valid configuration (see Configuration)",
    });
    return section();
  }
  if (ctx.config.displays.length === 0) {
    findings.push({ id: "draw", status: "warn", message: "not drawn: the configuration lists no displays" });
    return section();
  }
  if (probe === undefined) {
    findings.push({ id: "draw", status: "warn", message: "not drawn: the display module is not available" });
    return section();
  }
  let results: readonly DrawResult[];
  try {
    results = await probe.draw(ctx.configFile);
  } catch (thrown) {
    findings.push({ id: "draw", status: "fail", message: toEntraToolError(thrown).message });
    return section();
  }
  for (const [index, result] of results.entries()) {
    findings.push(
      result.ok
        ? { id: `draw[${index}]`, status: "ok", message: `${result.name}: drew every screen` }
        : {
            id: `draw[${index}]`,
            status: "fail",
            message: `${result.name}: failed: ${result.error ?? "no reason given"}`,
          },
    );
  }
  ctx.facts.draw = results;
  return section();
}
