import { readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { Clock } from "../../agent/core/clock.ts";
import { formatIssues } from "../../agent/core/schema.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { execTopic, parseOutput } from "../../agent/telemetry/sources/exec.ts";
import {
  createSource,
  ScheduledSource as Scheduled,
  type ScheduledSource,
  type SourceDeps,
} from "../../agent/telemetry/sources/index.ts";
import { SourceSchema, SourcesSchema } from "../../agent/telemetry/sources/schema.ts";
import { GET_THROTTLED, realStatfs } from "../../agent/telemetry/sources/system.ts";
import type { NewMessage } from "../../agent/telemetry/types.ts";
import { captureLogger, type LogRecord } from "../store/helpers.ts";

const START = Date.UTC(2026, 10, 27, 12, 0, 0);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "entratool-sources-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Waits for something a real child process or the source's loop brings about, polling every few
 * ms, at most `ms` (then fails with `what`). Time in the tests is the virtual clock's; this only
 * waits for real events.
 */
async function until(what: string, predicate: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface World {
  readonly clock: VirtualClock;
  readonly appended: NewMessage[][];
  readonly records: LogRecord[];
  readonly deps: SourceDeps;
  /** Log records with a `code` (the problems), as code list. */
  codes(): string[];
}

function world(overrides: Partial<SourceDeps> = {}, clock = new VirtualClock(START, { auto: false })): World {
  const appended: NewMessage[][] = [];
  const { logger, records } = captureLogger();
  const deps: SourceDeps = {
    clock,
    logger,
    append: async (messages) => {
      appended.push([...messages]);
      return messages;
    },
    ...overrides,
  };
  return {
    clock,
    appended,
    records,
    deps,
    codes: () =>
      records.filter((record) => typeof record.code === "string").map((record) => record.code as string),
  };
}

/** Whether a process runs (a zombie, dead but not yet reaped by its parent, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX] /s.test(stat);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// system

async function put(root: string, relative: string, text: string): Promise<void> {
  const path = join(root, relative);
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
}

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 98765432   54321    0    0    0     0          0        12 12345678   23456    0    0    0     0       0          0
 wlan0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
`;

/** A tree shaped like a Raspberry Pi's /proc and /sys. */
async function piRoot(root: string, options: { throttled?: string; cpuZone?: boolean } = {}): Promise<void> {
  await put(root, "proc/loadavg", "0.52 0.58 0.59 1/234 5678\n");
  await put(root, "proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\nintr 1\n");
  await put(
    root,
    "proc/meminfo",
    "MemTotal:        3882924 kB\nMemFree:          123456 kB\nMemAvailable:    2912345 kB\nBuffers: 1 kB\n",
  );
  await put(root, "proc/uptime", "12345.67 45678.90\n");
  await put(root, "proc/net/dev", NET_DEV);
  await put(root, "sys/class/thermal/thermal_zone0/type", "acpitz\n");
  await put(root, "sys/class/thermal/thermal_zone0/temp", "30000\n");
  if (options.cpuZone !== false) {
    await put(root, "sys/class/thermal/thermal_zone1/type", "cpu-thermal\n");
    await put(root, "sys/class/thermal/thermal_zone1/temp", "48312\n");
  }
  if (options.throttled !== undefined) await put(root, GET_THROTTLED, options.throttled);
}

const fakeStatfs = async () => ({ totalBytes: 31_000_000_000, freeBytes: 20_000_000_000 });

describe("system source", () => {
  test("reads a Raspberry Pi's files: temperature of the cpu-thermal zone, load, memory, disk, uptime, network, throttling", async () => {
    await piRoot(dir, { throttled: "50005\n" });
    const w = world({ root: dir, statfs: fakeStatfs });
    const source = createSource({ type: "system", intervalSeconds: 60, topic: "system" }, w.deps);
    await source.start();
    await until("the first message", () => w.appended.length === 1);
    expect(w.appended[0]).toEqual([
      {
        topic: "system",
        at: START,
        data: {
          cpu: { temperatureC: 48.312, load1: 0.52, load5: 0.58, load15: 0.59 },
          memory: { totalBytes: 3882924 * 1024, availableBytes: 2912345 * 1024 },
          disk: { path: "/", totalBytes: 31_000_000_000, freeBytes: 20_000_000_000 },
          uptimeSeconds: 12345.67,
          network: { eth0: { rxBytes: 98765432, txBytes: 12345678 }, wlan0: { rxBytes: 0, txBytes: 0 } },
          throttled: {
            underVoltage: true,
            frequencyCapped: false,
            throttled: true,
            softTempLimit: false,
            underVoltageOccurred: true,
            frequencyCappedOccurred: false,
            throttledOccurred: true,
            softTempLimitOccurred: false,
            raw: "0x50005",
          },
        },
      },
    ]);

    // A minute later: 300 of 400 new jiffies busy (user 200, system 100, idle 100) is 75 %.
    await put(dir, "proc/stat", "cpu  300 0 200 900 0 0 0 0 0 0\n");
    w.clock.advance(60_000);
    await until("the second message", () => w.appended.length === 2);
    const second = w.appended[1]?.[0];
    expect(second?.at).toBe(START + 60_000);
    expect(second?.data).toMatchObject({ cpu: { usage: 75 } });
    await source.stop();
    expect(w.codes()).toEqual([]);
  });

  test("what a board lacks is left out, with one debug line each, not an error", async () => {
    await put(dir, "proc/loadavg", "1.00 2.00 3.00 1/1 1\n");
    await put(dir, "proc/meminfo", "MemTotal: 1024 kB\n");
    const w = world({ root: dir, statfs: fakeStatfs });
    const source = createSource({ type: "system", intervalSeconds: 10, topic: "health" }, w.deps);
    await source.start();
    await until("the first message", () => w.appended.length === 1);
    w.clock.advance(10_000);
    await until("the second message", () => w.appended.length === 2);
    await source.stop();
    for (const batch of w.appended) {
      expect(batch).toEqual([
        {
          topic: "health",
          at: expect.any(Number),
          data: {
            cpu: { load1: 1, load5: 2, load15: 3 },
            memory: { totalBytes: 1024 * 1024 },
            disk: { path: "/", totalBytes: 31_000_000_000, freeBytes: 20_000_000_000 },
          },
        },
      ]);
    }
    const absent = w.records.filter((record) => record.level === "debug" && record.what !== undefined);
    const what = absent.map((record) => record.what);
    expect(new Set(what).size).toBe(what.length);
    expect(what).toEqual(
      expect.arrayContaining([
        "cpu.temperatureC",
        "cpu.usage",
        "memory.availableBytes",
        "uptimeSeconds",
        "network",
        "throttled",
      ]),
    );
    expect(w.records.filter((record) => record.level === "warn" || record.level === "error")).toEqual([]);
  });
});

describe("system source: details", () => {
  test("without a cpu-thermal zone, thermal_zone0; the flags in the forms the firmware and vcgencmd write", async () => {
    const cases: Array<[string, Record<string, boolean | string>]> = [
      ["0\n", { underVoltage: false, softTempLimit: false, softTempLimitOccurred: false, raw: "0x0" }],
      [
        "throttled=0x80008\n",
        { softTempLimit: true, softTempLimitOccurred: true, throttled: false, raw: "0x80008" },
      ],
      [
        "0x20002",
        { frequencyCapped: true, frequencyCappedOccurred: true, underVoltage: false, raw: "0x20002" },
      ],
    ];
    for (const [index, [written, expected]] of cases.entries()) {
      const root = join(dir, String(index));
      await piRoot(root, { throttled: written, cpuZone: false });
      const w = world({ root, statfs: fakeStatfs });
      const source = createSource({ type: "system", intervalSeconds: 60, topic: "system" }, w.deps);
      await source.start();
      await until("a message", () => w.appended.length === 1);
      await source.stop();
      const data = w.appended[0]?.[0]?.data as { cpu: { temperatureC: number }; throttled: object };
      expect(data.cpu.temperatureC).toBe(30);
      expect(data.throttled).toMatchObject(expected);
    }
  });

  test("a get_throttled that is not hex is left out, and so is a disk that cannot be measured", async () => {
    await piRoot(dir, { throttled: "garbage\n" });
    const w = world({
      root: dir,
      statfs: async () => {
        throw Object.assign(new Error("no such file system"), { code: "ENOSYS" });
      },
    });
    const source = createSource({ type: "system", intervalSeconds: 60, topic: "system" }, w.deps);
    await source.start();
    await until("a message", () => w.appended.length === 1);
    await source.stop();
    const data = w.appended[0]?.[0]?.data as Record<string, unknown>;
    expect(data.throttled).toBeUndefined();
    expect(data.disk).toBeUndefined();
    expect(data.memory).toBeDefined();
    expect(w.codes()).toEqual([]);
  });

  test("on this machine: every figure it has is a sane number", async () => {
    const w = world();
    const source = createSource({ type: "system", intervalSeconds: 1, topic: "system" }, w.deps);
    await source.start();
    await until("the first message", () => w.appended.length === 1);
    // usage compares two readings of the kernel's CPU counters: let them move (they tick at 100 Hz).
    const counters = () => readFileSync("/proc/stat", "utf8").split("\n")[0];
    const before = counters();
    await until("the CPU counters to move", () => counters() !== before);
    w.clock.advance(1000);
    await until("the second message", () => w.appended.length === 2);
    await source.stop();
    const data = w.appended[1]?.[0]?.data as {
      cpu: { load1: number; load5: number; load15: number; usage: number; temperatureC?: number };
      memory: { totalBytes: number; availableBytes: number };
      disk: { path: string; totalBytes: number; freeBytes: number };
      uptimeSeconds: number;
      network: Record<string, { rxBytes: number; txBytes: number }>;
    };
    for (const load of [data.cpu.load1, data.cpu.load5, data.cpu.load15])
      expect(load).toBeGreaterThanOrEqual(0);
    expect(data.cpu.usage).toBeGreaterThanOrEqual(0);
    expect(data.cpu.usage).toBeLessThanOrEqual(100);
    if (data.cpu.temperatureC !== undefined) expect(data.cpu.temperatureC).toBeGreaterThan(-50);
    expect(data.memory.totalBytes).toBeGreaterThan(64 * 1024 * 1024);
    expect(data.memory.availableBytes).toBeGreaterThan(0);
    expect(data.memory.availableBytes).toBeLessThanOrEqual(data.memory.totalBytes);
    expect(data.disk.path).toBe("/");
    expect(data.disk.totalBytes).toBeGreaterThan(0);
    expect(data.disk.freeBytes).toBeLessThanOrEqual(data.disk.totalBytes);
    expect(data.uptimeSeconds).toBeGreaterThan(0);
    expect(data.network.lo).toBeUndefined();
    for (const counters of Object.values(data.network)) {
      expect(Number.isInteger(counters.rxBytes) && counters.rxBytes >= 0).toBe(true);
      expect(Number.isInteger(counters.txBytes) && counters.txBytes >= 0).toBe(true);
    }
    expect(w.codes()).toEqual([]);
  });

  test("the real statfs measures the file system of a path", async () => {
    const { totalBytes, freeBytes } = await realStatfs(dir);
    expect(totalBytes).toBeGreaterThan(0);
    expect(freeBytes).toBeGreaterThan(0);
    expect(freeBytes).toBeLessThanOrEqual(totalBytes);
  });
});

// ---------------------------------------------------------------------------------------------
// exec

/** Writes an executable shell script into the temp dir and returns its path. */
async function script(name: string, body: string, mode = 0o755): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, mode);
  return path;
}

function execSource(
  w: World,
  command: string[],
  options: {
    intervalSeconds?: number;
    timeoutSeconds?: number;
    format?: "auto" | "json" | "ndjson" | "influx";
    topic?: string;
  } = {},
): ScheduledSource {
  return createSource(
    {
      type: "exec",
      command,
      intervalSeconds: options.intervalSeconds ?? 60,
      format: options.format ?? "auto",
      ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
      ...(options.topic === undefined ? {} : { topic: options.topic }),
    },
    w.deps,
  );
}

/** Runs the source until its first collection ended (a message, or a problem logged), then stops it. */
async function firstRun(source: ScheduledSource): Promise<void> {
  await source.start();
  await until("the first run", () => source.stats().runs === 1);
  await source.stop();
}

describe("exec source: output formats", () => {
  test("JSON: one value, one message, on the program's name as topic, at the run's start", async () => {
    const path = await script("soil-sensor", `echo '{"soil": 0.41,'; echo ' "ok": true}'`);
    const w = world();
    const source = execSource(w, [path]);
    expect(source.name).toBe("exec:soil-sensor");
    await firstRun(source);
    expect(w.appended).toEqual([[{ topic: "soil-sensor", data: { soil: 0.41, ok: true }, at: START }]]);
    expect(source.stats()).toMatchObject({ runs: 1, messages: 1, errors: 0 });
  });

  test("arguments reach the program as they are: no shell", async () => {
    // Each argument as a JSON string on a line of its own (these arguments need no JSON escapes).
    const path = await script("args", `for a in "$@"; do printf '"%s"\\n' "$a"; done`);
    const w = world();
    await firstRun(execSource(w, [path, "a b", "$HOME", "*", "x;y", "`id`"], { topic: "args" }));
    expect(w.appended[0]?.map((message) => message.data)).toEqual(["a b", "$HOME", "*", "x;y", "`id`"]);
  });

  test("NDJSON: one message per line, blank lines skipped", async () => {
    const path = await script("nd", `printf '{"sensor":"a","value":1}\\n\\n{"sensor":"b","value":2}\\n3\\n'`);
    const w = world();
    await firstRun(execSource(w, [path], { topic: "readings" }));
    expect(w.appended[0]).toEqual([
      { topic: "readings", data: { sensor: "a", value: 1 }, at: START },
      { topic: "readings", data: { sensor: "b", value: 2 }, at: START },
      { topic: "readings", data: 3, at: START },
    ]);
  });

  test("line protocol: one message per line, at its timestamp", async () => {
    const path = await script(
      "weather",
      `echo '# weather station'
echo 'weather,station=roof temperature=18.5,humidity=61i,ok=t,note="dry, calm" 1700000000123456789'
echo 'weather,station=garden temperature=17'`,
    );
    const w = world();
    await firstRun(execSource(w, [path]));
    expect(w.appended[0]).toEqual([
      {
        topic: "weather",
        at: 1700000000123,
        data: {
          measurement: "weather",
          tags: { station: "roof" },
          fields: { temperature: 18.5, humidity: 61, ok: true, note: "dry, calm" },
          timestamp: "1700000000123456789",
        },
      },
      {
        topic: "weather",
        at: START,
        data: { measurement: "weather", tags: { station: "garden" }, fields: { temperature: 17 } },
      },
    ]);
  });

  test("auto: output that is none of the formats is a warning and nothing is sent", async () => {
    const path = await script("prose", "echo 'temperature is 18 degrees'");
    const w = world();
    const source = execSource(w, [path]);
    await firstRun(source);
    expect(w.appended).toEqual([]);
    expect(w.codes()).toEqual(["exec-unparsable"]);
    const record = w.records.find((entry) => entry.code === "exec-unparsable");
    expect(record?.level).toBe("warn");
    expect(record?.msg).toMatch(
      /neither JSON, NDJSON nor InfluxDB line protocol \(as line protocol: line 1: /,
    );
    expect(source.stats()).toMatchObject({ runs: 1, errors: 1, lastError: { code: "exec-unparsable" } });
  });

  test("an explicit format sends the good lines and names the bad ones", async () => {
    const path = await script("mixed", `printf '{"a":1}\\nnot json\\n{"b":2}\\n'`);
    const w = world();
    await firstRun(execSource(w, [path], { format: "ndjson" }));
    expect(w.appended[0]?.map((message) => message.data)).toEqual([{ a: 1 }, { b: 2 }]);
    expect(w.codes()).toEqual(["exec-unparsable"]);
    expect(w.records.find((entry) => entry.code)?.msg).toMatch(
      /^lines that are not JSON were left out: line 2: /,
    );
  });

  test("an empty output sends nothing and is not an error", async () => {
    const path = await script("quiet", "true");
    const w = world();
    await firstRun(execSource(w, [path]));
    expect(w.appended).toEqual([]);
    expect(w.codes()).toEqual([]);
  });

  test("parseOutput: each format, and auto's order", () => {
    expect(parseOutput('{"a":1}', "json", "t", 5).messages).toEqual([{ topic: "t", data: { a: 1 }, at: 5 }]);
    expect(parseOutput("1\n2\n", "json", "t", 5).problem).toMatch(/not one JSON value/);
    // One number on one line is JSON, not NDJSON and not line protocol.
    expect(parseOutput("42\n", "auto", "t", 5).messages).toEqual([{ topic: "t", data: 42, at: 5 }]);
    expect(parseOutput("m v=1\n", "ndjson", "t", 5).problem).toMatch(/line 1/);
    expect(parseOutput('{"a":1}\n{"a":2}', "influx", "t", 5).messages).toEqual([]);
    expect(parseOutput("[1,\n2]", "auto", "t", 5).messages).toHaveLength(1);
    expect(parseOutput('{"a":\n', "auto", "t", 5).problem).toMatch(/\(as JSON: line 1: /);
  });

  test("the default topic is the program's file name, made safe for a topic", () => {
    expect(execTopic({ command: ["/usr/local/bin/soil-sensor", "-v"] })).toBe("soil-sensor");
    expect(execTopic({ command: ["my sensor+1#"] })).toBe("my_sensor_1_");
    expect(execTopic({ command: ["/"] })).toBe("exec");
    expect(execTopic({ command: ["x"], topic: "given/topic" })).toBe("given/topic");
  });
});

describe("exec source: failures are logged, counted and survived", () => {
  test("a non-zero exit: its stderr and status in the log, nothing sent; the next interval runs again", async () => {
    const counter = join(dir, "count");
    const path = await script(
      "flaky",
      `n=$(cat "${counter}" 2>/dev/null || echo 0); echo $((n + 1)) > "${counter}"
if [ "$n" = 0 ]; then echo '{"partial": true}'; echo 'sensor not ready' >&2; exit 3; fi
echo '{"ok": true}'`,
    );
    const w = world();
    const source = execSource(w, [path], { intervalSeconds: 30 });
    await source.start();
    await until("the first run", () => source.stats().runs === 1);
    expect(w.appended).toEqual([]);
    const failure = w.records.find((record) => record.code === "exec-exit");
    expect(failure).toMatchObject({
      level: "warn",
      exitCode: 3,
      stderr: "sensor not ready",
      command: [path],
      source: "exec:flaky",
    });
    expect(failure?.msg).toBe("the command exited with status 3; its output was not sent");
    w.clock.advance(30_000);
    await until("the second run", () => source.stats().runs === 2);
    await source.stop();
    expect(w.appended).toEqual([[{ topic: "flaky", data: { ok: true }, at: START + 30_000 }]]);
    expect(source.stats()).toMatchObject({ runs: 2, messages: 1, errors: 1 });
  });

  test("a program that does not exist, or is not on PATH", async () => {
    for (const command of [join(dir, "missing"), "entratool-no-such-program"]) {
      const w = world();
      const source = execSource(w, [command], { topic: "missing" });
      await firstRun(source);
      expect(w.codes()).toEqual(["exec-not-found"]);
      expect(w.records.find((record) => record.code)?.msg).toContain(JSON.stringify(command));
    }
  });

  test("a program that may not be executed", async () => {
    const path = await script("not-executable", "echo 1", 0o644);
    const w = world();
    await firstRun(execSource(w, [path]));
    expect(w.codes()).toEqual(["exec-not-permitted"]);
  });

  test("a hang: SIGTERM at the timeout, SIGKILL 2 s later, the whole process group; then the next interval", async () => {
    const pids = join(dir, "pids");
    // Ignores SIGTERM, and has a child of its own (started before the trap, so SIGTERM ends it).
    const path = await script(
      "hang",
      `sleep 1000 &
trap '' TERM
echo "$$ $!" > "${pids}.tmp" && mv "${pids}.tmp" "${pids}"
while :; do sleep 1; done`,
    );
    const w = world();
    const source = execSource(w, [path], { intervalSeconds: 60, timeoutSeconds: 5 });
    await source.start();
    await until("the script's pids", async () =>
      (await readFile(pids, "utf8").catch(() => "")).includes(" "),
    );
    const [shell, child] = (await readFile(pids, "utf8")).trim().split(" ").map(Number) as [number, number];

    w.clock.advance(4_999);
    expect(alive(shell)).toBe(true);
    w.clock.advance(1); // the timeout: SIGTERM, which the script ignores (its sleeping child does not)
    await until("the child's end", () => !alive(child));
    expect(alive(shell)).toBe(true);
    expect(source.stats().runs).toBe(0);
    w.clock.advance(2_000); // SIGKILL
    await until("the end of the run", () => source.stats().runs === 1);
    expect(alive(shell)).toBe(false);
    expect(w.codes()).toEqual(["exec-timeout"]);
    expect(w.records.find((record) => record.code)?.msg).toMatch(/did not finish within 5 s/);

    // The next run is at the next tick of the cadence (60 s after the start).
    await rm(pids);
    w.clock.advance(60_000 - 7_000 - 1);
    expect(source.stats().runs).toBe(1);
    w.clock.advance(1);
    await until("the second run's pids", async () =>
      (await readFile(pids, "utf8").catch(() => "")).includes(" "),
    );
    const [secondShell, secondChild] = (await readFile(pids, "utf8")).trim().split(" ").map(Number) as [
      number,
      number,
    ];
    // stop() too sends SIGTERM first, and SIGKILL after the same 2 s.
    const stopping = source.stop();
    await until("the second child's end", () => !alive(secondChild));
    expect(alive(secondShell)).toBe(true);
    w.clock.advance(2_000);
    await stopping;
    expect(alive(secondShell)).toBe(false);
  });

  test("endless output is stopped past 1 MiB and nothing of it is sent", async () => {
    const w = world();
    const source = execSource(w, ["yes", '{"a":1}'], { format: "ndjson" });
    await firstRun(source);
    expect(w.appended).toEqual([]);
    expect(w.codes()).toEqual(["exec-output-too-large"]);
  });

  test("stop() stops a running command at once and sends nothing", async () => {
    const pidFile = join(dir, "pid");
    const path = await script(
      "slow",
      `echo $$ > "${pidFile}.tmp" && mv "${pidFile}.tmp" "${pidFile}"\nsleep 1000\necho '{}'`,
    );
    const w = world();
    const source = execSource(w, [path], { timeoutSeconds: 600, intervalSeconds: 600 });
    await source.start();
    await until(
      "the script's pid",
      async () => (await readFile(pidFile, "utf8").catch(() => "")).trim() !== "",
    );
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    expect(alive(pid)).toBe(true);
    await source.stop();
    expect(alive(pid)).toBe(false);
    expect(w.appended).toEqual([]);
    expect(w.codes()).toEqual([]);
  });

  test("runs never overlap: a run longer than the interval skips the ticks it covered", async () => {
    const log = join(dir, "runs.log");
    const gate = join(dir, "gate");
    const path = await script(
      "long",
      `echo start >> "${log}"
while [ ! -e "${gate}" ]; do sleep 0.02; done
rm -f "${gate}"
echo '{"done": true}'`,
    );
    const w = world();
    const source = execSource(w, [path], { intervalSeconds: 10, timeoutSeconds: 100 });
    await source.start();
    await until("the first start", async () => (await readFile(log, "utf8").catch(() => "")).length > 0);
    w.clock.advance(35_000); // three ticks pass while the first run still waits at its gate
    await writeFile(gate, "");
    await until("the first run's end", () => source.stats().runs === 1);
    expect((await readFile(log, "utf8")).trim().split("\n")).toHaveLength(1);
    // The next tick is 40 s after the start: one run, not three.
    w.clock.advance(4_999);
    expect(source.stats().runs).toBe(1);
    w.clock.advance(1);
    await until(
      "the second start",
      async () => (await readFile(log, "utf8")).trim().split("\n").length === 2,
    );
    await writeFile(gate, "");
    await until("the second run's end", () => source.stats().runs === 2);
    await source.stop();
    expect(w.appended.map((batch) => batch[0]?.at)).toEqual([START, START + 40_000]);
  });
});

// ---------------------------------------------------------------------------------------------
// the schedule

/** A source whose collections only record when they ran. */
function recordingSource(w: World, intervalSeconds: number, clock: Clock = w.clock) {
  const times: number[] = [];
  const source = new Scheduled({
    name: "test",
    intervalSeconds,
    deps: { ...w.deps, clock },
    collector: () => ({
      collect: async (_signal, at) => {
        times.push(at);
        return [{ topic: "t", data: times.length }];
      },
    }),
  });
  return { source, times };
}

/** Lets the source's loop take its next steps (it runs on promises and setImmediate). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe("schedule", () => {
  test("a fixed cadence from the start; a clock jump forward gives one collection, not a burst", async () => {
    const w = world();
    const { source, times } = recordingSource(w, 60);
    await source.start();
    await until("the first collection", () => times.length === 1);
    w.clock.advance(30_000);
    await settle();
    expect(times).toHaveLength(1);
    w.clock.advance(30_000);
    await until("the second collection", () => times.length === 2);
    w.clock.advance(10 * 60_000 + 30_000); // a jump (or a suspend) of ten and a half intervals
    await until("the collection on waking", () => times.length === 3);
    await settle();
    expect(times).toHaveLength(3);
    // Back on the cadence: the next tick is the first one after the jump.
    w.clock.advance(29_999);
    await settle();
    expect(times).toHaveLength(3);
    w.clock.advance(1);
    await until("the fourth collection", () => times.length === 4);
    await source.stop();
    expect(times.map((time) => (time - START) / 1000)).toEqual([0, 60, 690, 720]);
    expect(w.appended).toHaveLength(4);
    // The tick due at 120 s ran on waking (at 690 s); the nine after it, up to 660 s, were skipped.
    expect(
      w.records.filter((record) => record.skipped !== undefined).map((record) => record.skipped),
    ).toEqual([9]);
  });

  test("a clock that jumps back starts the cadence again from now, rather than waiting for the old time", async () => {
    const w = world();
    let offset = 0;
    const clock: Clock = {
      now: () => w.clock.now() + offset,
      sleep: (ms, signal) => w.clock.sleep(ms, signal),
    };
    const { source, times } = recordingSource(w, 60, clock);
    await source.start();
    await until("the first collection", () => times.length === 1);
    offset = -3_600_000; // the network time corrects a clock an hour fast
    w.clock.advance(60_000);
    await until("the second collection", () => times.length === 2);
    w.clock.advance(60_000);
    await until("the third collection, an interval later", () => times.length === 3);
    await source.stop();
    expect(times.map((time) => (time - START) / 1000)).toEqual([0, 60 - 3600, 120 - 3600]);
  });

  test("stop() ends the wait at once; start() and stop() are idempotent", async () => {
    const w = world();
    const { source, times } = recordingSource(w, 3600);
    await source.start();
    await source.start();
    await until("the first collection", () => times.length === 1);
    await until("the wait", () => w.clock.waitingSleeps === 1);
    await source.stop();
    expect(w.clock.waitingSleeps).toBe(0);
    await source.stop();
    expect(times).toHaveLength(1);
  });

  test("a failing append is logged and counted; the next collection is appended again", async () => {
    let calls = 0;
    const w = world({
      append: async () => {
        calls++;
        if (calls === 1) throw new Error("disk full");
        return [];
      },
    });
    const { source, times } = recordingSource(w, 10);
    await source.start();
    await until("the first collection", () => source.stats().runs === 1);
    w.clock.advance(10_000);
    await until("the second collection", () => source.stats().runs === 2);
    await source.stop();
    expect(times).toHaveLength(2);
    expect(calls).toBe(2);
    expect(w.codes()).toEqual(["source-append-failed"]);
    expect(source.stats()).toMatchObject({
      runs: 2,
      messages: 1,
      errors: 1,
      lastError: { code: "source-append-failed" },
    });
  });

  test("a collector that throws is logged as a bug and the schedule goes on", async () => {
    const w = world();
    let calls = 0;
    const source = new Scheduled({
      name: "broken",
      intervalSeconds: 5,
      deps: w.deps,
      collector: () => ({
        collect: async () => {
          calls++;
          if (calls === 1) throw new TypeError("oops");
          return [];
        },
      }),
    });
    await source.start();
    await until("the first collection", () => source.stats().runs === 1);
    w.clock.advance(5_000);
    await until("the second collection", () => source.stats().runs === 2);
    await source.stop();
    expect(w.records.filter((record) => record.level === "error").map((record) => record.code)).toEqual([
      "source-failed",
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// the configuration

function problems(input: unknown): string[] {
  const result = v.safeParse(SourcesSchema, input);
  return result.success ? [] : formatIssues(result.issues, "sources");
}

describe("sources schema", () => {
  test("defaults: topic system, format auto; exec's topic and timeout are worked out from the command", () => {
    const parsed = v.parse(SourcesSchema, [
      { type: "system", intervalSeconds: 60 },
      { type: "exec", command: ["/usr/bin/sensor", "--json"], intervalSeconds: 300 },
    ]);
    expect(parsed).toEqual([
      { type: "system", intervalSeconds: 60, topic: "system" },
      { type: "exec", command: ["/usr/bin/sensor", "--json"], intervalSeconds: 300, format: "auto" },
    ]);
    expect(v.parse(SourcesSchema, undefined)).toEqual([]);
    expect(createSource(parsed[1] as v.InferOutput<typeof SourceSchema>, world().deps).name).toBe(
      "exec:sensor",
    );
    expect(createSource(parsed[0] as v.InferOutput<typeof SourceSchema>, world().deps).name).toBe(
      "system:system",
    );
  });

  test("every problem, each at its path, in one sentence", () => {
    expect(
      problems([
        { type: "system", intervalSeconds: 0, topic: "a/+/b" },
        { type: "exec", command: [], intervalSeconds: 86401, format: "xml", extra: 1, other: 2 },
        { type: "exec", command: ["ok", ""], intervalSeconds: 1.5, timeoutSeconds: 0 },
        { type: "exec" },
        { type: "snmp" },
        "system",
      ]),
    ).toEqual([
      "sources[0].intervalSeconds: must be a whole number of seconds 1-86400 (found 0)",
      'sources[0].topic: must be a topic: letters, digits, _ . - in levels separated by / (found "a/+/b")',
      'sources[1].command: must be a list of the program and its arguments, like ["/usr/bin/prog", "--json"] (found [])',
      "sources[1].intervalSeconds: must be a whole number of seconds 1-86400 (found 86401)",
      'sources[1].format: must be one of auto, json, ndjson, influx (found "xml")',
      "sources[1].extra: unknown field",
      "sources[1].other: unknown field",
      'sources[2].command[1]: must be a non-empty string (found "")',
      "sources[2].intervalSeconds: must be a whole number of seconds 1-86400 (found 1.5)",
      "sources[2].timeoutSeconds: must be a whole number of seconds 1-86400 (found 0)",
      'sources[3].command: is required (a list of the program and its arguments, like ["/usr/bin/prog", "--json"])',
      "sources[3].intervalSeconds: is required (a whole number of seconds 1-86400)",
      'sources[4].type: must be one of system, exec (found "snmp")',
      'sources[5]: must be an object with a "type" (found "system")',
    ]);
  });

  test("every field is described (for the JSON Schema and editors)", () => {
    for (const schema of [SourceSchema.options[0], SourceSchema.options[1]]) {
      for (const [key, entry] of Object.entries(schema.entries)) {
        const inner = "wrapped" in entry ? entry.wrapped : entry;
        const pipe = "pipe" in inner ? (inner.pipe as readonly { type: string }[]) : [];
        expect(
          pipe.some((item) => item.type === "description"),
          `${schema.entries.type.pipe[0].literal}.${key}`,
        ).toBe(true);
      }
    }
  });
});
