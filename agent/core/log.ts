import type { DestinationStream, LevelWithSilent, Logger as PinoLogger } from "pino";

/**
 * pino's logger. Type-only here: pino itself lives in pino-logger.ts, which the CLI loads only when
 * a line is written (see `deferredLogger`).
 */
export type Logger = PinoLogger;

export interface LoggerOptions {
  /** pino level, or "silent". Default "info". */
  readonly level?: LevelWithSilent;
  /**
   * Where lines go. The daemon writes JSON to stdout (journald captures it); the CLI writes to
   * stderr so that stdout carries only the command's output. Plain pino destinations only: worker
   * thread transports hang compiled binaries.
   */
  readonly destination: DestinationStream;
  readonly base?: Record<string, unknown>;
}

const LEVEL_VALUES: Readonly<Record<LevelWithSilent, number>> = {
  fatal: 60,
  error: 50,
  warn: 40,
  info: 30,
  debug: 20,
  trace: 10,
  silent: Number.POSITIVE_INFINITY,
};
const LEVELS = new Set<string>(Object.keys(LEVEL_VALUES));

/**
 * A logger that builds the real pino logger (with `make(options)`, typically pino-logger.ts's
 * `createLogger`) only when a line at an enabled level is first written. A CLI call that logs
 * nothing then never loads pino. Lines below the level cost a comparison. `child()` and every
 * other pino method build the logger at once.
 */
export function deferredLogger(options: LoggerOptions, make: (options: LoggerOptions) => Logger): Logger {
  const level = options.level ?? "info";
  const threshold = LEVEL_VALUES[level];
  let real: Logger | undefined;
  const get = (): Logger => {
    real ??= make(options);
    return real;
  };
  const gate =
    (name: Exclude<LevelWithSilent, "silent">) =>
    (...args: unknown[]): void => {
      if (LEVEL_VALUES[name] < threshold) return;
      (get()[name] as (...a: unknown[]) => void)(...args);
    };
  const methods: Partial<Record<string | symbol, unknown>> = {
    level,
    isLevelEnabled: (name: string) =>
      name in LEVEL_VALUES && LEVEL_VALUES[name as LevelWithSilent] >= threshold,
    fatal: gate("fatal"),
    error: gate("error"),
    warn: gate("warn"),
    info: gate("info"),
    debug: gate("debug"),
    trace: gate("trace"),
    silent: () => {},
  };
  // A Proxy keeps the full pino type: anything not gated above is forwarded to the real logger.
  return new Proxy({} as Logger, {
    get: (_target, property) => {
      if (property in methods) return methods[property];
      const logger = get();
      const value: unknown = Reflect.get(logger, property);
      return typeof value === "function" ? value.bind(logger) : value;
    },
  });
}

export function parseLevel(value: string | undefined, fallback: LevelWithSilent): LevelWithSilent {
  return value !== undefined && LEVELS.has(value) ? (value as LevelWithSilent) : fallback;
}

/**
 * A destination for people at a terminal: each JSON line becomes `entratool: warn: message`.
 * Used by the CLI when stderr is a TTY and ENTRATOOL_LOG_FORMAT is not `json`.
 */
export function humanDestination(write: (text: string) => void): DestinationStream {
  return {
    write(line: string): void {
      try {
        const record = JSON.parse(line) as { level?: string; msg?: string; err?: { message?: string } };
        const detail = record.err?.message ? ` (${record.err.message})` : "";
        write(`entratool: ${record.level ?? "log"}: ${record.msg ?? ""}${detail}\n`);
      } catch {
        write(line);
      }
    },
  };
}
