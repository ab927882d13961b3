import type { Logger } from "../core/log.ts";
import type { Env } from "../core/paths.ts";

/**
 * The service manager's notification channel (systemd's `Type=notify`): READY, STATUS, STOPPING
 * and WATCHDOG, sent through `sd_notify(3)` of libsystemd.so.0 via bun:ffi (systemd's own
 * implementation of the protocol: datagram socket, abstract namespace, credentials).
 */
export interface ServiceNotifier {
  /** Sends one notification, e.g. "READY=1" or "STATUS=signed in"; never throws. */
  notify(message: string): void;
  /** Half of what systemd allows between watchdog pings (WATCHDOG_USEC), ms; undefined without a watchdog. */
  readonly watchdogPingMs: number | undefined;
}

/** What `sd_notify` is, as bun:ffi gives it: (unset_environment, state) → < 0 on error. */
type SdNotify = (unsetEnvironment: number, state: Uint8Array) => number;

/**
 * The notifier, or undefined when nobody listens (no NOTIFY_SOCKET: not started by systemd with
 * Type=notify) or libsystemd cannot be loaded (said once in the log).
 */
export async function openServiceNotifier(env: Env, logger: Logger): Promise<ServiceNotifier | undefined> {
  if (!env.NOTIFY_SOCKET) return undefined;
  let sdNotify: SdNotify;
  try {
    const { dlopen, FFIType } = await import("bun:ffi");
    const { symbols } = dlopen("libsystemd.so.0", {
      sd_notify: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    });
    sdNotify = symbols.sd_notify as unknown as SdNotify;
  } catch (error) {
    logger.warn(
      { err: error },
      "NOTIFY_SOCKET is set but libsystemd.so.0 cannot be loaded: systemd will not hear that the agent is ready (install libsystemd0)",
    );
    return undefined;
  }
  let failed = false;
  return {
    notify: (message) => {
      const result = sdNotify(0, new TextEncoder().encode(`${message}\0`));
      if (result < 0 && !failed) {
        failed = true;
        logger.warn({ errno: -result }, "sd_notify failed: systemd does not hear from the agent");
      }
    },
    watchdogPingMs: watchdogPingMs(env),
  };
}

/**
 * Half of WATCHDOG_USEC in ms, when it is meant for this process (WATCHDOG_PID absent or ours):
 * pinging at half the period leaves room for one late tick.
 */
export function watchdogPingMs(env: Env, pid: number = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}
