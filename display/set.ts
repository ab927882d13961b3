import type { Clock } from "../agent/core/clock.ts";
import type { Logger } from "../agent/core/log.ts";
import { type Screen, showsCode } from "./screens.ts";
import type { DriverLike, Opened } from "./types.ts";

/** A screen that does not carry the user code: what a display is left with when the code is void. */
export type NoCodeScreen = Exclude<Screen, { kind: "code" | "waiting" }>;

/** What the set needs of a display; every driver is adapted to it (`DriverDisplay`). */
export interface Display {
  /** For logs: the driver, where it is attached, and its place in the configuration. */
  readonly name: string;
  /**
   * How often a code screen must be shown again for this display to stay current (its countdown,
   * its pages), ms; undefined when it keeps itself current (LED patterns run on their own).
   */
  readonly tickMs?: number | undefined;
  /** Opens the buses and initialises the hardware; called again to recover after a failure. */
  init(): Promise<void>;
  show(screen: Screen, now: number): Promise<void>;
  clear(): Promise<void>;
  /** Releases the buses and lines; the glass keeps what it shows. */
  close(): Promise<void>;
}

/**
 * Opens a driver. `fail` is for errors that surface outside a call (an LED pattern running in the
 * background): the next `show` throws it, so the set learns of it like any other failure.
 */
export type Opener = (fail: (error: unknown) => void) => Promise<Opened>;

/**
 * A driver behind `Display`, opening its buses in `init()`. Every `init()` starts from scratch
 * (releasing what an earlier attempt opened), so that recovery after a pulled cable or a line
 * taken by another program works the same way as the first start.
 */
export class DriverDisplay implements Display {
  readonly name: string;
  readonly tickMs: number | undefined;
  readonly #open: Opener;
  #opened: Opened | undefined;
  #failure: { readonly error: unknown } | undefined;

  constructor(name: string, open: Opener, tickMs?: number) {
    this.name = name;
    this.tickMs = tickMs;
    this.#open = open;
  }

  async init(): Promise<void> {
    await this.#release();
    this.#failure = undefined;
    const opened = await this.#open((error) => {
      this.#failure ??= { error };
    });
    try {
      await opened.driver.init?.();
    } catch (error) {
      await opened.release().catch(() => undefined);
      throw error;
    }
    this.#opened = opened;
  }

  async show(screen: Screen, now: number): Promise<void> {
    const failure = this.#failure;
    if (failure !== undefined) {
      this.#failure = undefined;
      throw failure.error;
    }
    await this.#driver().show(screen, now);
  }

  async clear(): Promise<void> {
    await this.#driver().clear();
  }

  async close(): Promise<void> {
    await this.#release();
  }

  #driver(): DriverLike {
    if (this.#opened === undefined) throw new Error(`${this.name} is not initialised`);
    return this.#opened.driver;
  }

  async #release(): Promise<void> {
    const opened = this.#opened;
    this.#opened = undefined;
    await opened?.release();
  }
}

export type DisplayHealth = "new" | "ok" | "failed" | "closed";

export interface DisplayStatus {
  readonly name: string;
  readonly health: DisplayHealth;
  /** The last failure's sentence, while failed. */
  readonly error?: string;
  /** When the next attempt is due (epoch ms), while failed. */
  readonly retryAt?: number;
}

export interface RetryPolicy {
  /** Wait after the first failure of a streak, ms; default 5 s. */
  readonly firstMs: number;
  /** Longest wait, ms; default 5 min: a display plugged in later shows up within minutes. */
  readonly maxMs: number;
}

export interface DisplaySetOptions {
  readonly displays: readonly Display[];
  readonly logger: Logger;
  /** For `init()` and `close()`, which are not handed a time. */
  readonly clock: Clock;
  readonly retry?: Partial<RetryPolicy>;
  /**
   * How often a code screen is shown again while it is up (the countdown moves), ms; default: the
   * shortest `tickMs` of the displays, and no ticker at all when none needs one (an idle board
   * waiting for a sign-in should not wake up for nothing).
   */
  readonly tickMs?: number;
}

type CodeScreen = Extract<Screen, { kind: "code" | "waiting" }>;

interface Entry {
  readonly display: Display;
  health: DisplayHealth;
  /** Consecutive failures; sets the back-off. */
  streak: number;
  retryAt: number;
  error: string | undefined;
  /** A code screen was sent (even if it failed half-way): the glass may show the code. */
  codeMayBeUp: boolean;
  /** The newest screen not yet handed to this display (older ones are dropped: only the latest matters). */
  pending: { readonly screen: Screen; readonly now: number } | undefined;
  running: Promise<void> | undefined;
}

/**
 * Several displays at once. `show` fans a screen out to every display; one that throws is logged
 * and marked failed and never stops the others (nor the caller: `show` never rejects). A failed
 * display is re-initialised on a later `show` after an exponential back-off, and logged once per
 * failure streak (then at debug), so a missing LCD does not write a line every second.
 *
 * Each display runs on its own: a slow one (an e-ink refresh takes seconds) does not hold the
 * others back, and while it is busy only the newest screen is kept for it, so it catches up with
 * the present instead of replaying the countdown.
 *
 * While a code screen is up, the set shows it again every `tickMs` on the injected clock, so the
 * countdowns move (and paged displays turn their pages) between state changes; each driver sends
 * only what changed. The ticker stops when a screen without the code comes, and on close.
 */
export class DisplaySet {
  readonly #entries: Entry[];
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #retry: RetryPolicy;
  readonly #tickMs: number | undefined;
  #closed = false;
  /** The code screen up now, which the ticker shows again. */
  #current: CodeScreen | undefined;
  #ticker: AbortController | undefined;

  constructor(options: DisplaySetOptions) {
    this.#entries = options.displays.map((display) => ({
      display,
      health: "new",
      streak: 0,
      retryAt: 0,
      error: undefined,
      codeMayBeUp: false,
      pending: undefined,
      running: undefined,
    }));
    this.#logger = options.logger;
    this.#clock = options.clock;
    this.#retry = { firstMs: options.retry?.firstMs ?? 5000, maxMs: options.retry?.maxMs ?? 300_000 };
    const wanted = options.displays.flatMap((display) =>
      display.tickMs === undefined ? [] : [display.tickMs],
    );
    this.#tickMs = options.tickMs ?? (wanted.length > 0 ? Math.min(...wanted) : undefined);
  }

  get displays(): readonly Display[] {
    return this.#entries.map((entry) => entry.display);
  }

  status(): DisplayStatus[] {
    return this.#entries.map(({ display, health, error, retryAt }) => ({
      name: display.name,
      health,
      ...(health === "failed" && error !== undefined ? { error, retryAt } : {}),
    }));
  }

  /**
   * Initialises every display not yet working, at once, so that wiring and permission problems
   * are logged at start-up rather than with the first code. Never rejects.
   */
  async init(): Promise<void> {
    const now = this.#clock.now();
    await Promise.all(
      this.#entries.map(async (entry) => {
        if (entry.health !== "new") return;
        try {
          await entry.display.init();
          entry.health = "ok";
        } catch (error) {
          this.#failed(entry, error, now);
        }
      }),
    );
  }

  /** Shows `screen` on every display; resolves once each has drawn it (or skipped or failed). Never rejects. */
  async show(screen: Screen, now: number): Promise<void> {
    if (this.#closed) return;
    this.#current = showsCode(screen) ? screen : undefined;
    if (this.#current === undefined) this.#stopTicker();
    else this.#startTicker();
    await this.#fanOut(screen, now);
  }

  /** Resolves once every display has drawn what it was given so far. */
  async settled(): Promise<void> {
    await Promise.all(this.#entries.map((entry) => entry.running));
  }

  /**
   * Takes the code off every display that may show it (with `final`, by default "cancelled": the
   * code dies with the process), then releases every bus. Never rejects; problems are logged.
   */
  async close(final: NoCodeScreen = { kind: "cancelled" }): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTicker();
    await Promise.all(this.#entries.map((entry) => entry.running));
    const now = this.#clock.now();
    await Promise.all(
      this.#entries.map(async (entry) => {
        const { display } = entry;
        if (entry.codeMayBeUp && !showsCode(final)) {
          try {
            // A failed display gets one more try: its glass may still hold the code.
            if (entry.health !== "ok") await display.init();
            await display.show(final, now);
            entry.codeMayBeUp = false;
          } catch (error) {
            this.#logger.warn(
              { display: display.name, err: error },
              `${display.name}: could not take the code off the display (${messageOf(error)})`,
            );
          }
        }
        try {
          await display.close();
        } catch (error) {
          this.#logger.warn({ display: display.name, err: error }, `${display.name}: ${messageOf(error)}`);
        }
        entry.health = "closed";
      }),
    );
  }

  #fanOut(screen: Screen, now: number): Promise<unknown> {
    return Promise.all(this.#entries.map((entry) => this.#offer(entry, screen, now)));
  }

  #startTicker(): void {
    const every = this.#tickMs;
    if (this.#ticker !== undefined || every === undefined) return;
    const controller = new AbortController();
    this.#ticker = controller;
    const tick = async (): Promise<void> => {
      for (;;) {
        await this.#clock.sleep(every, controller.signal);
        const screen = this.#current;
        if (controller.signal.aborted || screen === undefined) return;
        void this.#fanOut(screen, this.#clock.now());
      }
    };
    // The sleep rejects when the ticker is stopped; that is its end.
    tick().catch(() => undefined);
  }

  #stopTicker(): void {
    this.#ticker?.abort();
    this.#ticker = undefined;
  }

  #offer(entry: Entry, screen: Screen, now: number): Promise<void> {
    entry.pending = { screen, now };
    entry.running ??= this.#drain(entry);
    return entry.running;
  }

  async #drain(entry: Entry): Promise<void> {
    for (;;) {
      const next = entry.pending;
      if (next === undefined || this.#closed) {
        // Cleared in the same turn as the check, so an offer made after it starts a new drain.
        entry.running = undefined;
        return;
      }
      entry.pending = undefined;
      await this.#attempt(entry, next.screen, next.now);
    }
  }

  async #attempt(entry: Entry, screen: Screen, now: number): Promise<void> {
    const { display } = entry;
    if (entry.health === "closed") return;
    // Leaving a void code on the glass is worse than retrying early: such screens skip the back-off.
    const clearsCode = entry.codeMayBeUp && !showsCode(screen);
    if (entry.health === "failed" && now < entry.retryAt && !clearsCode) return;
    if (showsCode(screen)) entry.codeMayBeUp = true;
    try {
      if (entry.health !== "ok") await display.init();
      await display.show(screen, now);
    } catch (error) {
      this.#failed(entry, error, now);
      return;
    }
    if (!showsCode(screen)) entry.codeMayBeUp = false;
    if (entry.health === "failed") {
      this.#logger.info({ display: display.name }, `${display.name} works again`);
    }
    entry.health = "ok";
    entry.streak = 0;
    entry.error = undefined;
  }

  #failed(entry: Entry, error: unknown, now: number): void {
    const { display } = entry;
    entry.streak++;
    const delay = Math.min(this.#retry.maxMs, this.#retry.firstMs * 2 ** (entry.streak - 1));
    entry.retryAt = now + delay;
    entry.error = messageOf(error);
    const fields = { display: display.name, err: error, failures: entry.streak, retryInMs: delay };
    if (entry.health !== "failed") {
      this.#logger.error(fields, `${display.name}: ${entry.error} The other displays keep working.`);
    } else {
      this.#logger.debug(fields, `${display.name} still failing: ${entry.error}`);
    }
    entry.health = "failed";
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
