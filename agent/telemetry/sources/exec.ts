/**
 * The `exec` source: runs a program every `intervalSeconds` and sends what it prints.
 *
 *   { "type": "exec", "command": ["/usr/local/bin/soil-sensor", "--json"], "intervalSeconds": 300 }
 *
 * The command runs directly, without a shell (no pipes, globs or $VARIABLES: write a script for
 * those), with the agent's environment, stdin closed, in a process group of its own. Its stdout is
 * read whole (at most 1 MiB: a command that writes more is stopped and nothing of it is sent) and
 * read as `format`:
 *
 * - `json`: the whole output is one JSON value → one message, whose `data` is that value.
 *     {"soil": 0.41, "temperatureC": 18.5}
 * - `ndjson`: one JSON value per line → one message per line (blank lines are skipped).
 *     {"sensor": "a", "value": 1}
 *     {"sensor": "b", "value": 2}
 * - `influx`: InfluxDB line protocol → one message per line, with `data`
 *   `{ "measurement", "tags": {…}, "fields": {…}, "timestamp"? }`; the line's timestamp
 *   (nanoseconds) becomes the message's time and is kept in `timestamp` as written (a string).
 *   Integers (`12i`, `12u`) beyond ±2^53 are given as strings. Lines starting with # are comments.
 *     weather,station=roof temperature=18.5,humidity=61i,ok=t 1700000000000000000
 *   gives { "measurement": "weather", "tags": { "station": "roof" },
 *           "fields": { "temperature": 18.5, "humidity": 61, "ok": true },
 *           "timestamp": "1700000000000000000" }
 * - `auto` (the default): JSON if the whole output is one JSON value, else NDJSON if every
 *   non-empty line is one, else line protocol if every line is; otherwise a warning and nothing
 *   is sent.
 *
 * Every message of the exec source has the source's `topic` (default: the program's file name,
 * e.g. "soil-sensor"), and the time the run started unless a line-protocol timestamp says
 * otherwise. With an explicit `ndjson` or `influx` format, the good lines are sent and the bad
 * ones reported; `auto` sends nothing unless one format fits the whole output. An empty output
 * sends nothing (a debug line). At most 10,000 messages are taken from one run.
 *
 * Failures are logged as warnings with a stable `code`, counted in the source's stats, and never
 * stop the source (the next run is at the next interval); nothing is sent from a failed run:
 *
 *   exec-not-found         the program does not exist (or is not on PATH)
 *   exec-not-permitted     the program may not be executed (permissions, noexec)
 *   exec-spawn-failed      it could not be started for another reason
 *   exec-exit              it exited with a non-zero status, or was killed by a signal
 *   exec-timeout           it ran longer than `timeoutSeconds` (default: the interval, at most
 *                          30 s): SIGTERM to its process group, SIGKILL 2 s later
 *   exec-output-too-large  it wrote more than 1 MiB to stdout: stopped the same way
 *   exec-unparsable        its output (or some lines of it) did not fit the format
 *   exec-too-many-messages more than 10,000 messages in one run: the rest dropped
 *   source-append-failed   the outbox refused the messages
 *
 * The log line of a failure carries the command's stderr (its first 4 KiB), the exit status and
 * the run's duration. A run never overlaps the next: the schedule waits for it to end. Stopping the
 * agent stops a running command (SIGTERM, SIGKILL 2 s later). Whatever a command leaves running in
 * its process group when it ends (a forgotten `sleep &`) is killed with it, so that runs cannot
 * pile up; a program that must outlive its run has to leave the group (setsid).
 */

import type { Clock } from "../../core/clock.ts";
import { errnoCode } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import { basename } from "../../core/path.ts";
import type { JsonValue, NewMessage } from "../types.ts";
import { type LinePoint, parseLineProtocol } from "./line-protocol.ts";
import type { ExecFormat, ExecSourceConfig } from "./schema.ts";

/** Bytes of stdout a run may write; beyond, it is stopped and nothing is sent. */
export const MAX_STDOUT_BYTES = 1024 * 1024;
/** Bytes of stderr kept for the log (the rest is read and dropped, so the command never blocks). */
export const MAX_STDERR_BYTES = 4 * 1024;
/** Messages taken from one run. */
export const MAX_MESSAGES_PER_RUN = 10_000;
/** From SIGTERM to SIGKILL, ms. */
export const KILL_GRACE_MS = 2000;
/** The default timeout's ceiling, s. */
export const MAX_DEFAULT_TIMEOUT_SECONDS = 30;

/** A problem for the log and the stats (structurally the `Problem` of ./index.ts). */
interface ExecProblem {
  readonly code: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface ExecCollectorOptions {
  /** Runs the timeout and the SIGTERM → SIGKILL grace. */
  readonly clock: Clock;
  readonly logger: Logger;
  readonly report: (problem: ExecProblem) => void;
}

/** The topic of an exec source: configured, or the program's file name made safe for a topic. */
export function execTopic(config: Pick<ExecSourceConfig, "command" | "topic">): string {
  if (config.topic !== undefined) return config.topic;
  const name = basename(config.command[0] ?? "").replace(/[^A-Za-z0-9_.-]/g, "_");
  return name === "" || name === "." || name === ".." ? "exec" : name;
}

type Outcome =
  | { readonly kind: "exited"; readonly exitCode: number | null; readonly signalCode: string | null }
  | { readonly kind: "timeout" | "overflow" | "stopped" };

interface Run {
  readonly outcome: Outcome;
  readonly stdout: Uint8Array;
  readonly stderr: string;
  readonly durationMs: number;
}

export class ExecCollector {
  readonly #command: readonly string[];
  readonly #topic: string;
  readonly #timeoutMs: number;
  readonly #format: ExecFormat;
  readonly #options: ExecCollectorOptions;

  constructor(config: ExecSourceConfig, options: ExecCollectorOptions) {
    this.#command = config.command;
    this.#topic = execTopic(config);
    const timeoutSeconds =
      config.timeoutSeconds ?? Math.min(config.intervalSeconds, MAX_DEFAULT_TIMEOUT_SECONDS);
    this.#timeoutMs = timeoutSeconds * 1000;
    this.#format = config.format;
    this.#options = options;
  }

  async collect(signal: AbortSignal, at: number): Promise<readonly NewMessage[]> {
    const { report, logger } = this.#options;
    const command = this.#command;
    let run: Run;
    try {
      run = await this.#run(signal);
    } catch (error) {
      report(spawnProblem(command, error));
      return [];
    }
    const { outcome, stderr, durationMs } = run;
    const details = { command, durationMs, ...(stderr === "" ? {} : { stderr }) };
    switch (outcome.kind) {
      case "stopped":
        logger.debug({ command }, "command stopped with the source");
        return [];
      case "timeout":
        report({
          code: "exec-timeout",
          message: `the command did not finish within ${this.#timeoutMs / 1000} s and was stopped: make it faster, or raise timeoutSeconds`,
          details,
        });
        return [];
      case "overflow":
        report({
          code: "exec-output-too-large",
          message: `the command wrote more than ${MAX_STDOUT_BYTES} bytes and was stopped; nothing of it was sent`,
          details,
        });
        return [];
      case "exited":
        if (outcome.exitCode !== 0) {
          const how =
            outcome.signalCode === null
              ? `exited with status ${outcome.exitCode}`
              : `was killed by ${outcome.signalCode}`;
          report({
            code: "exec-exit",
            message: `the command ${how}; its output was not sent`,
            details: { ...details, exitCode: outcome.exitCode, signal: outcome.signalCode },
          });
          return [];
        }
    }
    if (stderr !== "") logger.debug({ command, stderr }, "the command wrote to stderr");
    const text = new TextDecoder().decode(run.stdout);
    const parsed = parseOutput(text, this.#format, this.#topic, at);
    if (parsed.problem !== undefined) {
      report({
        code: "exec-unparsable",
        message: parsed.problem,
        details: { command, format: this.#format },
      });
    }
    if (parsed.messages.length === 0 && parsed.problem === undefined) {
      logger.debug({ command }, "the command printed nothing: no message");
    }
    if (parsed.messages.length > MAX_MESSAGES_PER_RUN) {
      report({
        code: "exec-too-many-messages",
        message: `the command printed ${parsed.messages.length} messages; the first ${MAX_MESSAGES_PER_RUN} are sent`,
        details: { command },
      });
      return parsed.messages.slice(0, MAX_MESSAGES_PER_RUN);
    }
    return parsed.messages;
  }

  /** Runs the command once; throws only when it cannot be started. */
  async #run(signal: AbortSignal): Promise<Run> {
    const { clock } = this.#options;
    const started = clock.now();
    if (signal.aborted)
      return { outcome: { kind: "stopped" }, stdout: new Uint8Array(), stderr: "", durationMs: 0 };
    // A process group of its own (setsid), so that a timeout also stops what a script started.
    const child = Bun.spawn([...this.#command], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      detached: true,
    });

    let stopping: "timeout" | "overflow" | "stopped" | undefined;
    const timers = new AbortController();
    const stdout = new CappedReader(child.stdout, MAX_STDOUT_BYTES, () => terminate("overflow"));
    const stderr = new CappedReader(child.stderr, MAX_STDERR_BYTES);
    const signalGroup = (name: "SIGTERM" | "SIGKILL"): void => {
      try {
        process.kill(-child.pid, name);
      } catch {
        // The group is gone already (ESRCH): nothing left to stop.
      }
    };
    const terminate = (why: "timeout" | "overflow" | "stopped"): void => {
      if (stopping !== undefined) return;
      stopping = why;
      signalGroup("SIGTERM");
      clock.sleep(KILL_GRACE_MS, timers.signal).then(
        () => {
          signalGroup("SIGKILL");
          // A process that left the group may still hold the pipes: stop waiting for them.
          stdout.cancel();
          stderr.cancel();
        },
        () => {},
      );
    };
    const onAbort = (): void => terminate("stopped");
    signal.addEventListener("abort", onAbort, { once: true });
    clock.sleep(this.#timeoutMs, timers.signal).then(
      () => terminate("timeout"),
      () => {},
    );

    try {
      const [exitCode, out, err] = await Promise.all([child.exited, stdout.done, stderr.done]);
      const outcome: Outcome =
        stopping === undefined
          ? {
              kind: "exited",
              exitCode,
              signalCode: child.signalCode === null ? null : String(child.signalCode),
            }
          : { kind: stopping };
      return {
        outcome,
        stdout: out,
        stderr: new TextDecoder().decode(err).trim(),
        durationMs: clock.now() - started,
      };
    } finally {
      signal.removeEventListener("abort", onAbort);
      timers.abort();
      // Whatever the command left running in its group goes with it.
      signalGroup("SIGKILL");
    }
  }
}

/** What CappedReader needs of a stream's reader (Bun's and the DOM's typings differ in the rest). */
interface ChunkReader {
  read(): Promise<{ readonly done: boolean; readonly value?: Uint8Array | undefined }>;
  cancel(): Promise<void>;
}

/** Reads a stream to its end, keeping at most `max` bytes; calls `onOverflow` once past them. */
class CappedReader {
  readonly done: Promise<Uint8Array>;
  readonly #reader: ChunkReader;

  constructor(stream: { getReader(): ChunkReader }, max: number, onOverflow?: () => void) {
    this.#reader = stream.getReader();
    this.done = this.#read(max, onOverflow);
  }

  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }

  async #read(max: number, onOverflow: (() => void) | undefined): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await this.#reader.read();
        if (done || value === undefined) break;
        if (total < max) chunks.push(value.subarray(0, max - total));
        const before = total;
        total += value.length;
        if (before <= max && total > max) onOverflow?.();
      }
    } catch {
      // Cancelled, or the pipe failed: what was read is what there is.
    }
    return Buffer.concat(chunks);
  }
}

function spawnProblem(command: readonly string[], error: unknown): ExecProblem {
  const code = errnoCode(error);
  const program = command[0];
  const details = { command, errno: code, err: error };
  if (code === "ENOENT") {
    return {
      code: "exec-not-found",
      message: `the program ${JSON.stringify(program)} does not exist: give its full path, or install it on PATH`,
      details,
    };
  }
  if (code === "EACCES" || code === "EPERM") {
    return {
      code: "exec-not-permitted",
      message: `the program ${JSON.stringify(program)} may not be run: check that it is executable (chmod +x) by the agent's user`,
      details,
    };
  }
  return {
    code: "exec-spawn-failed",
    message: `the program ${JSON.stringify(program)} could not be started (${error instanceof Error ? error.message : String(error)})`,
    details,
  };
}

export interface ParsedOutput {
  readonly messages: readonly NewMessage[];
  /** One sentence on what did not parse; undefined when everything did. */
  readonly problem: string | undefined;
}

/**
 * A command's stdout as messages, read as `format` (see the comment at the top). `at` is the
 * messages' time unless a line-protocol timestamp gives one.
 */
export function parseOutput(text: string, format: ExecFormat, topic: string, at: number): ParsedOutput {
  if (text.trim() === "") return { messages: [], problem: undefined };
  const one = (data: JsonValue, time = at): NewMessage => ({ topic, data, at: time });
  const fromPoints = (points: readonly LinePoint[]): NewMessage[] =>
    points.map((point) => one(pointData(point), point.timestampMs ?? at));

  switch (format) {
    case "json": {
      const value = parseJson(text);
      return value.ok
        ? { messages: [one(value.value)], problem: undefined }
        : { messages: [], problem: `the output is not one JSON value (${value.error})` };
    }
    case "ndjson": {
      const { values, errors } = parseNdjson(text);
      return {
        messages: values.map((value) => one(value)),
        problem:
          errors.length === 0 ? undefined : `lines that are not JSON were left out: ${describe(errors)}`,
      };
    }
    case "influx": {
      const { points, errors } = parseLineProtocol(text);
      return {
        messages: fromPoints(points),
        problem:
          errors.length === 0
            ? undefined
            : `lines that are not line protocol were left out: ${describe(errors)}`,
      };
    }
    case "auto": {
      const whole = parseJson(text);
      if (whole.ok) return { messages: [one(whole.value)], problem: undefined };
      const lines = parseNdjson(text);
      if (lines.errors.length === 0)
        return { messages: lines.values.map((value) => one(value)), problem: undefined };
      const protocol = parseLineProtocol(text);
      if (protocol.errors.length === 0) return { messages: fromPoints(protocol.points), problem: undefined };
      // Say why in the terms of the format the output most looks like.
      const looksJson = /^\s*[[{"]/.test(text);
      const why = looksJson
        ? `as JSON: ${describe(lines.errors)}`
        : `as line protocol: ${describe(protocol.errors)}`;
      return {
        messages: [],
        problem: `the output is neither JSON, NDJSON nor InfluxDB line protocol (${why}); nothing was sent (set "format" to see which lines are wrong)`,
      };
    }
  }
}

function pointData(point: LinePoint): JsonValue {
  const data: Record<string, JsonValue> = {
    measurement: point.measurement,
    tags: point.tags,
    fields: point.fields,
  };
  if (point.timestamp !== undefined) data.timestamp = point.timestamp;
  return data;
}

type JsonResult =
  | { readonly ok: true; readonly value: JsonValue }
  | { readonly ok: false; readonly error: string };

function parseJson(text: string): JsonResult {
  try {
    return { ok: true, value: JSON.parse(text) as JsonValue };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

interface NumberedError {
  readonly line: number;
  readonly message: string;
}

function parseNdjson(text: string): { values: JsonValue[]; errors: NumberedError[] } {
  const values: JsonValue[] = [];
  const errors: NumberedError[] = [];
  text.split("\n").forEach((line, index) => {
    if (line.trim() === "") return;
    const value = parseJson(line);
    if (value.ok) values.push(value.value);
    else errors.push({ line: index + 1, message: value.error });
  });
  return { values, errors };
}

/** "line 3: …; line 7: … (and 12 more lines)". */
function describe(errors: readonly NumberedError[]): string {
  const shown = errors.slice(0, 3).map((error) => `line ${error.line}: ${error.message}`);
  const more = errors.length > 3 ? ` (and ${errors.length - 3} more lines)` : "";
  return `${shown.join("; ")}${more}`;
}
