/**
 * The pino logger, with redaction. Kept apart from log.ts so that the compiled CLI can leave pino
 * out of its start-up bundle and load this module only when a line is written (agent/main.ts).
 */
import pino from "pino";
import type { Logger, LoggerOptions } from "./core/log.ts";

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

/**
 * A serialised error (pino's shape) without its stack traces, nested ones included: what an error
 * is and says stays, where in the code it came from is for debugging only.
 */
function withoutStacks(value: unknown, depth = 0): unknown {
  if (depth > 8 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((item) => withoutStacks(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (key !== "stack") out[key] = withoutStacks(item, depth + 1);
  }
  return out;
}

/**
 * A pino logger writing JSON lines to `options.destination`, secrets censored. Errors under `err`
 * carry their stack trace only while the logger's level is debug or trace: at the default levels
 * the log reaches a person's terminal (the CLI's stderr), where a stack trace helps nobody.
 */
export function createLogger(options: LoggerOptions): Logger {
  const logger: Logger = pino(
    {
      level: options.level ?? "info",
      base: options.base ?? null,
      serializers: {
        err: (err: Error): unknown => {
          const serialised = pino.stdSerializers.err(err);
          return logger.isLevelEnabled("debug") ? serialised : withoutStacks(serialised);
        },
      },
      redact: { paths: [...REDACT_PATHS], censor: CENSOR },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => scrubSecrets(object) as Record<string, unknown>,
      },
    },
    options.destination,
  );
  return logger;
}
