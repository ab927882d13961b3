import pino, { type DestinationStream, type LevelWithSilent, type Logger } from "pino";

export type { Logger } from "pino";

/**
 * Key paths whose values never reach a log line. Tokens and the device_code are secrets; the
 * user code is not (it is meant to be shown), so it is not listed.
 */
export const REDACT_PATHS: readonly string[] = [
  "access_token",
  "refresh_token",
  "id_token",
  "device_code",
  "accessToken",
  "refreshToken",
  "idToken",
  "deviceCode",
  "authorization",
  "password",
  "secret",
  "key",
  "*.access_token",
  "*.refresh_token",
  "*.id_token",
  "*.device_code",
  "*.accessToken",
  "*.refreshToken",
  "*.idToken",
  "*.deviceCode",
  "*.authorization",
  "*.Authorization",
  "*.password",
  "*.secret",
  "*.key",
  "headers.authorization",
  "headers.Authorization",
];

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

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: options.base ?? null,
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}

const LEVELS = new Set<string>(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

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
