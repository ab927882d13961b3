import type { Clock } from "../core/clock.ts";
import { stat } from "../core/files.ts";

/**
 * Whether the system clock can be trusted. A Raspberry Pi has no real-time clock: until NTP has
 * synchronised it after boot, it reads 1970 (or, with fake-hwclock, the last shutdown's time), and
 * both TLS certificate checks and token expiry are wrong with it.
 */
export interface TimeSync {
  isSynchronised(): Promise<boolean>;
}

/** No valid clock can be earlier than this release (2026-11-01T00:00:00Z). */
export const TIME_FLOOR_MS = Date.UTC(2026, 10, 1);

/** systemd-timesyncd touches this file each time it synchronises the clock (systemd ≥ 239). */
export const TIMESYNCD_SYNCHRONIZED_FILE = "/run/systemd/timesync/synchronized";

export interface SystemTimeSyncOptions {
  readonly clock: Clock;
  /** For tests; defaults to TIMESYNCD_SYNCHRONIZED_FILE. */
  readonly synchronizedFile?: string;
  /** For tests; defaults to TIME_FLOOR_MS. */
  readonly floorMs?: number;
}

/**
 * Trusts the clock when it is not before the floor (a clock restored by fake-hwclock or set by hand
 * passes: it is at worst a little behind, which only makes a token look valid for longer than it
 * is, and the resource server then rejects it), or when systemd-timesyncd says it synchronised.
 * Anything else (1970 and no sync yet, or no timesyncd at all with a clock that old) is untrusted.
 */
export class SystemTimeSync implements TimeSync {
  readonly #clock: Clock;
  readonly #file: string;
  readonly #floorMs: number;

  constructor(options: SystemTimeSyncOptions) {
    this.#clock = options.clock;
    this.#file = options.synchronizedFile ?? TIMESYNCD_SYNCHRONIZED_FILE;
    this.#floorMs = options.floorMs ?? TIME_FLOOR_MS;
  }

  async isSynchronised(): Promise<boolean> {
    if (this.#clock.now() >= this.#floorMs) return true;
    try {
      await stat(this.#file);
      return true;
    } catch {
      // ENOENT (not synchronised yet), or no /run/systemd at all: only the floor can tell, and it said no.
      return false;
    }
  }
}
