import { readFileCapped } from "../../core/files.ts";
import type { Logger } from "../../core/log.ts";
import { join } from "../../core/path.ts";
import type { JsonValue, NewMessage } from "../types.ts";
import type { SystemSourceConfig } from "./schema.ts";

/**
 * The `system` source's collector: one message per collection, read from the kernel's files:
 *
 *   { cpu: { temperatureC, load1, load5, load15, usage },
 *     memory: { totalBytes, availableBytes },
 *     disk: { path: "/", totalBytes, freeBytes },
 *     uptimeSeconds,
 *     network: { eth0: { rxBytes, txBytes }, … },
 *     throttled: { underVoltage, frequencyCapped, throttled, softTempLimit,
 *                  underVoltageOccurred, frequencyCappedOccurred, throttledOccurred,
 *                  softTempLimitOccurred, raw: "0x50005" } }
 *
 * - temperatureC: /sys/class/thermal/thermal_zoneN/temp (millidegrees), from the zone whose `type`
 *   is cpu-thermal (the Raspberry Pi's name; cpu_thermal on some other boards), else thermal_zone0.
 * - load1/5/15: /proc/loadavg. usage: percent of all CPUs busy (0-100) since the previous
 *   collection, from /proc/stat (absent from the first message).
 * - memory: /proc/meminfo MemTotal and MemAvailable. disk: statfs(2) of "/"; freeBytes is what an
 *   unprivileged user may still write (df's "Avail").
 * - uptimeSeconds: /proc/uptime. network: /proc/net/dev, every interface but lo, byte counters
 *   since boot (they wrap at 2^32 on some 32-bit kernels).
 * - throttled: the Raspberry Pi firmware's flags, /sys/devices/platform/soc/soc:firmware/get_throttled
 *   (what `vcgencmd get_throttled` prints, in hex): bits 0-3 are the conditions now (under-voltage,
 *   ARM frequency capped, throttled, soft temperature limit), bits 16-19 the same conditions since
 *   boot.
 *
 * Whatever a board does not have (no thermal zone, not a Pi, an old kernel without MemAvailable)
 * is left out, with one debug line the first time; it is not an error. Reads are capped (64 KiB a
 * file, 1 MiB for the interface list).
 */

export const GET_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled";

/** Disk figures of the file system holding `path`, bytes. */
export type StatFs = (path: string) => Promise<{ readonly totalBytes: number; readonly freeBytes: number }>;

const SMALL_FILE_BYTES = 64 * 1024;
const NET_DEV_BYTES = 1024 * 1024;
const CPU_ZONE_TYPES = new Set(["cpu-thermal", "cpu_thermal"]);

/** The get_throttled bits, by the name they get in the message. */
const THROTTLED_BITS = [
  ["underVoltage", 0],
  ["frequencyCapped", 1],
  ["throttled", 2],
  ["softTempLimit", 3],
  ["underVoltageOccurred", 16],
  ["frequencyCappedOccurred", 17],
  ["throttledOccurred", 18],
  ["softTempLimitOccurred", 19],
] as const;

/** statfs(2) through node:fs, loaded on first use (the agent's start loads no node:fs). */
export const realStatfs: StatFs = async (path) => {
  const { statfs } = await import("node:fs/promises");
  const stats = await statfs(path);
  // Block counts are in fragment units (f_frsize); Node's typings only name bsize, equal on Linux.
  const unit = (stats as { frsize?: number }).frsize ?? stats.bsize;
  return { totalBytes: stats.blocks * unit, freeBytes: stats.bavail * unit };
};

export interface SystemCollectorOptions {
  readonly logger: Logger;
  /** Where /proc and /sys are looked for (default "/"). */
  readonly root?: string;
  readonly statfs?: StatFs;
}

interface CpuTimes {
  readonly busy: number;
  readonly total: number;
}

export class SystemCollector {
  readonly #topic: string;
  readonly #root: string;
  readonly #statfs: StatFs;
  readonly #logger: Logger;
  /** What was found missing, so that each is logged once. */
  readonly #missing = new Set<string>();
  #previousCpu: CpuTimes | undefined;
  /** The chosen thermal zone's temp file; null: none; undefined: not looked for yet. */
  #zone: string | null | undefined;

  constructor(config: Pick<SystemSourceConfig, "topic">, options: SystemCollectorOptions) {
    this.#topic = config.topic;
    this.#root = options.root ?? "/";
    this.#statfs = options.statfs ?? realStatfs;
    this.#logger = options.logger;
  }

  async collect(_signal: AbortSignal, at: number): Promise<readonly NewMessage[]> {
    const [temperatureC, load, usage, memory, disk, uptimeSeconds, network, throttled] = await Promise.all([
      this.#temperature(),
      this.#load(),
      this.#usage(),
      this.#memory(),
      this.#disk(),
      this.#uptime(),
      this.#network(),
      this.#throttled(),
    ]);
    const data: Record<string, JsonValue> = {};
    const cpu = defined({ temperatureC, ...load, usage });
    if (Object.keys(cpu).length > 0) data.cpu = cpu;
    if (memory !== undefined) data.memory = memory;
    if (disk !== undefined) data.disk = disk;
    if (uptimeSeconds !== undefined) data.uptimeSeconds = uptimeSeconds;
    if (network !== undefined) data.network = network;
    if (throttled !== undefined) data.throttled = throttled;
    return [{ topic: this.#topic, data, at }];
  }

  /** Logs once that `what` is left out, and why. */
  #absent(what: string, reason: unknown): undefined {
    if (this.#missing.has(what)) return undefined;
    this.#missing.add(what);
    const why = reason instanceof Error ? reason.message : String(reason);
    this.#logger.debug({ what, reason: why }, "left out of the system message: not on this board");
    return undefined;
  }

  async #read(what: string, relative: string, maxBytes = SMALL_FILE_BYTES): Promise<string | undefined> {
    try {
      return (await readFileCapped(join(this.#root, relative), maxBytes)).toString("utf8");
    } catch (error) {
      return this.#absent(what, error);
    }
  }

  async #temperature(): Promise<number | undefined> {
    if (this.#zone === undefined) this.#zone = await this.#findZone();
    if (this.#zone === null) return this.#absent("cpu.temperatureC", "no thermal zone");
    const text = await this.#read("cpu.temperatureC", this.#zone);
    if (text === undefined) {
      this.#zone = undefined; // Looked for again next time (a zone that went away).
      return undefined;
    }
    const milli = Number.parseInt(text.trim(), 10);
    if (!Number.isFinite(milli))
      return this.#absent("cpu.temperatureC", `unreadable: ${JSON.stringify(text)}`);
    return milli / 1000;
  }

  /** The temp file of the zone whose type is cpu-thermal, else thermal_zone0's, else null. */
  async #findZone(): Promise<string | null> {
    const base = "sys/class/thermal";
    let names: string[];
    try {
      const { readdir } = await import("node:fs/promises");
      names = (await readdir(join(this.#root, base))).filter((name) => /^thermal_zone[0-9]+$/.test(name));
    } catch {
      return null;
    }
    names.sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
    for (const name of names) {
      try {
        const type = (
          await readFileCapped(join(this.#root, base, name, "type"), SMALL_FILE_BYTES)
        ).toString();
        if (CPU_ZONE_TYPES.has(type.trim())) return `${base}/${name}/temp`;
      } catch {
        // A zone without a readable type is not the CPU's.
      }
    }
    return names.includes("thermal_zone0") ? `${base}/thermal_zone0/temp` : null;
  }

  async #load(): Promise<{ load1?: number; load5?: number; load15?: number }> {
    const text = await this.#read("cpu.load", "proc/loadavg");
    if (text === undefined) return {};
    const [load1, load5, load15] = text.trim().split(/\s+/).slice(0, 3).map(Number);
    if (![load1, load5, load15].every((value) => value !== undefined && Number.isFinite(value))) {
      return this.#absent("cpu.load", `unreadable: ${JSON.stringify(text)}`) ?? {};
    }
    return { load1: load1 as number, load5: load5 as number, load15: load15 as number };
  }

  async #usage(): Promise<number | undefined> {
    const text = await this.#read("cpu.usage", "proc/stat");
    if (text === undefined) return undefined;
    const line = text.split("\n").find((row) => row.startsWith("cpu "));
    if (line === undefined) return this.#absent("cpu.usage", "no cpu line in /proc/stat");
    // user nice system idle iowait irq softirq steal (guest and guest_nice are inside user and nice).
    const times = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (times.length < 4 || times.some((value) => !Number.isFinite(value))) {
      return this.#absent("cpu.usage", `unreadable: ${JSON.stringify(line)}`);
    }
    const total = times.reduce((sum, value) => sum + value, 0);
    const idle = (times[3] as number) + (times[4] ?? 0);
    const current = { busy: total - idle, total };
    const previous = this.#previousCpu;
    this.#previousCpu = current;
    if (previous === undefined || current.total <= previous.total) return undefined;
    const share = (current.busy - previous.busy) / (current.total - previous.total);
    return Math.round(Math.min(1, Math.max(0, share)) * 1000) / 10;
  }

  async #memory(): Promise<JsonValue | undefined> {
    const text = await this.#read("memory", "proc/meminfo");
    if (text === undefined) return undefined;
    const kib = (name: string): number | undefined => {
      const match = new RegExp(`^${name}:\\s+([0-9]+) kB$`, "m").exec(text);
      return match === null ? undefined : Number(match[1]) * 1024;
    };
    const totalBytes = kib("MemTotal");
    const availableBytes = kib("MemAvailable");
    if (totalBytes === undefined) return this.#absent("memory", "no MemTotal in /proc/meminfo");
    if (availableBytes === undefined)
      this.#absent("memory.availableBytes", "no MemAvailable in /proc/meminfo");
    return defined({ totalBytes, availableBytes });
  }

  async #disk(): Promise<JsonValue | undefined> {
    try {
      const { totalBytes, freeBytes } = await this.#statfs(this.#root);
      return { path: "/", totalBytes, freeBytes };
    } catch (error) {
      return this.#absent("disk", error);
    }
  }

  async #uptime(): Promise<number | undefined> {
    const text = await this.#read("uptimeSeconds", "proc/uptime");
    if (text === undefined) return undefined;
    const seconds = Number(text.trim().split(/\s+/)[0]);
    return Number.isFinite(seconds)
      ? seconds
      : this.#absent("uptimeSeconds", `unreadable: ${JSON.stringify(text)}`);
  }

  async #network(): Promise<JsonValue | undefined> {
    const text = await this.#read("network", "proc/net/dev", NET_DEV_BYTES);
    if (text === undefined) return undefined;
    const interfaces: [string, JsonValue][] = [];
    // Two header lines, then "  eth0: rxBytes rxPackets … (8 receive columns) txBytes …".
    for (const row of text.split("\n").slice(2)) {
      const colon = row.indexOf(":");
      if (colon === -1) continue;
      const name = row.slice(0, colon).trim();
      const columns = row
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .map(Number);
      const rxBytes = columns[0];
      const txBytes = columns[8];
      if (name === "" || name === "lo" || rxBytes === undefined || txBytes === undefined) continue;
      if (!Number.isFinite(rxBytes) || !Number.isFinite(txBytes)) continue;
      interfaces.push([name, { rxBytes, txBytes }]);
    }
    // fromEntries: an interface name is data, never a prototype key.
    return Object.fromEntries(interfaces);
  }

  async #throttled(): Promise<JsonValue | undefined> {
    const text = await this.#read("throttled", GET_THROTTLED);
    if (text === undefined) return undefined;
    // The kernel writes the bare hex ("50005\n"); vcgencmd's "throttled=0x50005" is taken too.
    const hex = text
      .trim()
      .replace(/^throttled=/, "")
      .replace(/^0[xX]/, "");
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex))
      return this.#absent("throttled", `unreadable: ${JSON.stringify(text)}`);
    const value = Number.parseInt(hex, 16);
    const flags: Record<string, JsonValue> = {};
    for (const [name, bit] of THROTTLED_BITS) flags[name] = (value & (1 << bit)) !== 0;
    flags.raw = `0x${value.toString(16)}`;
    return flags;
  }
}

/** The entries whose value is not undefined. */
function defined(entries: Record<string, JsonValue | undefined>): Record<string, JsonValue> {
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== undefined)) as Record<
    string,
    JsonValue
  >;
}
