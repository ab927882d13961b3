import type { DestinationStream, LevelWithSilent, Logger as PinoLogger } from "pino";

/** pino's logger. Type-only here: pino itself is loaded on first use (see `deferredLogger`). */
export type Logger = PinoLogger;

/**
 * Keys whose values never reach a log line, at any depth. Tokens and the device_code are secrets;
 * the user code is not (it is meant to be shown), so it is not listed. Compared without case.
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  "access_token",
  "refresh_token",
  "id_token",
  "device_code",
  "accesstoken",
  "refreshtoken",
  "idtoken",
  "devicecode",
  "client_secret",
  "authorization",
  "password",
  "secret",
  "key",
]);

const CENSOR = "[redacted]";

/** pino's own redaction for the usual places (its wildcards reach one level down only). */
export const REDACT_PATHS: readonly string[] = [
  ...["access_token", "refresh_token", "id_token", "device_code", "accessToken", "refreshToken"],
  ...["idToken", "deviceCode", "authorization", "Authorization", "password", "secret", "key"],
].flatMap((key) => [key, `*.${key}`]);

/**
 * Censors SECRET_KEYS in plain objects and arrays at any depth (to 8 levels), copying only what it
 * walks. pino's `redact` covers fixed paths; this covers a token nested anywhere in what we log.
 */
export function scrubSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((item) => scrubSecrets(item, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = SECRET_KEYS.has(key.toLowerCase()) ? CENSOR : scrubSecrets(item, depth + 1);
  }
  return out;
}

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

/**
 * A pino logger. pino is required here rather than imported at the top so that a process that
 * never writes a log line never evaluates it (about 10 ms of a CLI start; see `deferredLogger`).
 */
export function createLogger(options: LoggerOptions): Logger {
  // A literal require() so that `bun build` bundles pino (and evaluates it lazily, being CommonJS).
  const pino = require("pino") as typeof import("pino").default;
  return pino(
    {
      level: options.level ?? "info",
      base: options.base ?? null,
      redact: { paths: [...REDACT_PATHS], censor: CENSOR },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => scrubSecrets(object) as Record<string, unknown>,
      },
    },
    options.destination,
  );
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
 * A logger that builds the real pino logger (with `createLogger(options)`) only when a line at an
 * enabled level is first written. A CLI call that logs nothing then never loads pino. Lines below
 * the level cost a comparison. `child()` and every other pino method build the logger at once.
 */
export function deferredLogger(options: LoggerOptions): Logger {
  const level = options.level ?? "info";
  const threshold = LEVEL_VALUES[level];
  let real: Logger | undefined;
  const get = (): Logger => {
    real ??= createLogger(options);
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
