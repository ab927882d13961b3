import type { Clock } from "../../../agent/core/clock.ts";
import { SerialQueue } from "../../../agent/core/serial.ts";
import type { GpioLine } from "../../bus/types.ts";
import { DisplayError } from "../../errors.ts";
import type { Screen, ScreenKind } from "../../screens.ts";
import {
  LED_PATTERNS,
  type LedPatternName,
  OFF,
  ONE_BEEP,
  PATTERNS,
  sample,
  TWO_BEEPS,
  type Waveform,
} from "./layout.ts";

/**
 * GPIO status LEDs and an optional buzzer: the sign-in state where there is no screen.
 *
 * | Screen                      | Pattern       | LED                          | Timing                    |
 * |-----------------------------|---------------|------------------------------|---------------------------|
 * | starting, waiting-for-*     | short blink   | status                       | 100 ms on, 900 ms off     |
 * | code, waiting               | slow blink    | status                       | 500 ms on, 500 ms off     |
 * | signed-in                   | solid         | status                       | on                        |
 * | sign-in-needed, wrong-acc.  | double blink  | status                       | 150 on, 150 off, 150 on, 1550 off |
 * | blocked, offline, error     | fast blink    | error (status if none)       | 100 ms on, 100 ms off     |
 * | expired, cancelled          | off           | none                         |                           |
 *
 * The LED a pattern does not use is off. Buzzer (optional): one 100 ms beep when a code appears
 * (a new user code, not every countdown tick), two 100 ms beeps 100 ms apart on signed-in.
 *
 * Levels are logical (1 = LED lit, buzzer sounding). Active-low wiring (LED from 3.3 V to the pin)
 * belongs where the line is requested (the GPIO v2 request's active-low flag), so that every
 * reader of the line agrees on what 1 means. `activeLow` here is for lines requested without that
 * flag (the legacy sysfs backend): the driver then inverts what it writes. Use one or the other.
 *
 * Patterns run on the injected clock: one loop per pattern that samples every line's waveform,
 * writes only the lines whose level changed, and sleeps until the next change. One loop, not one
 * per line, so that the lines stay in step and virtual time in tests advances once per change.
 * A new screen aborts the running loop at once (its sleep rejects) before the new one starts;
 * a screen that maps to the pattern already running (a countdown tick) leaves it alone, so the
 * blink keeps its rhythm.
 */

export interface StatusLedsOptions {
  readonly lines: { readonly status: GpioLine; readonly error?: GpioLine };
  readonly buzzer?: GpioLine;
  readonly clock: Clock;
  /** Invert every write, for lines requested without the active-low flag (see the module comment). */
  readonly activeLow?: boolean;
  /** Told when a write in a running pattern fails; the pattern stops (the LEDs never stop sign-in). */
  readonly onError?: (error: LedError) => void;
}

export class LedError extends DisplayError<"E_LED_WRITE"> {
  override readonly name = "LedError";

  constructor(line: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      "E_LED_WRITE",
      `Could not set the ${line} GPIO line (${why}). Check that the line is not used by another program ('gpioinfo' shows its consumer) and that this user is in group gpio.`,
      cause,
    );
  }
}

type LineName = "status" | "error" | "buzzer";

interface Running {
  readonly pattern: LedPatternName;
  readonly controller: AbortController;
  readonly done: Promise<void>;
}

export class StatusLeds {
  readonly #lines: ReadonlyMap<LineName, GpioLine>;
  readonly #clock: Clock;
  readonly #activeLow: boolean;
  readonly #onError: ((error: LedError) => void) | undefined;
  /** Logical level last written per line; undefined until first written (forces the first write). */
  readonly #written = new Map<LineName, 0 | 1>();
  #running: Running | undefined;
  /** The user code last shown, so a countdown tick with the same code does not beep again. */
  #lastCode: string | undefined;
  #lastKind: ScreenKind | undefined;
  readonly #queue = new SerialQueue();
  #closed = false;

  constructor(options: StatusLedsOptions) {
    const lines = new Map<LineName, GpioLine>([["status", options.lines.status]]);
    if (options.lines.error !== undefined) lines.set("error", options.lines.error);
    if (options.buzzer !== undefined) lines.set("buzzer", options.buzzer);
    this.#lines = lines;
    this.#clock = options.clock;
    this.#activeLow = options.activeLow ?? false;
    this.#onError = options.onError;
  }

  /** The pattern running now ("off" before the first screen and after close). */
  get pattern(): LedPatternName {
    return this.#running?.pattern ?? "off";
  }

  /**
   * Starts the pattern for `screen`, stopping the previous one first. Resolves once the first
   * levels are written; the pattern goes on in the background until the next call or `close()`.
   */
  show(screen: Screen): Promise<void> {
    return this.#queue.run(async () => {
      if (this.#closed) return;
      const pattern = LED_PATTERNS[screen.kind];
      const code = screen.kind === "code" || screen.kind === "waiting" ? screen.userCode : undefined;
      const beep =
        code !== undefined && code !== this.#lastCode
          ? ONE_BEEP
          : screen.kind === "signed-in" && this.#lastKind !== "signed-in"
            ? TWO_BEEPS
            : undefined;
      this.#lastCode = code;
      this.#lastKind = screen.kind;
      if (beep === undefined && this.#running?.pattern === pattern) return;
      await this.#stop();
      const waves = new Map<LineName, Waveform>();
      const target: LineName = pattern === "fast-blink" && this.#lines.has("error") ? "error" : "status";
      for (const name of this.#lines.keys()) waves.set(name, name === target ? PATTERNS[pattern] : OFF);
      if (beep !== undefined && this.#lines.has("buzzer")) waves.set("buzzer", beep);
      const controller = new AbortController();
      const start = this.#clock.now();
      // The first levels are written here, so that show() reports a failing line to its caller.
      const next = await this.#apply(waves, 0);
      const done = this.#loop(waves, start, next, controller.signal).catch((error: unknown) => {
        if (error instanceof LedError) this.#onError?.(error);
      });
      this.#running = { pattern, controller, done };
    });
  }

  /** Stops the pattern and turns every LED and the buzzer off (the lines stay requested). */
  off(): Promise<void> {
    return this.#queue.run(async () => {
      await this.#stop();
      this.#lastCode = undefined;
      this.#lastKind = undefined;
      for (const name of this.#lines.keys()) await this.#write(name, 0);
    });
  }

  /** Everything off, then the lines are released. Later `show()` calls do nothing. */
  close(): Promise<void> {
    return this.#queue.run(async () => {
      await this.#stop();
      this.#closed = true;
      for (const name of this.#lines.keys()) await this.#write(name, 0);
      for (const line of this.#lines.values()) await line.close();
    });
  }

  async #stop(): Promise<void> {
    const running = this.#running;
    if (running === undefined) return;
    this.#running = undefined;
    running.controller.abort();
    await running.done;
  }

  async #loop(
    waves: ReadonlyMap<LineName, Waveform>,
    start: number,
    first: number,
    signal: AbortSignal,
  ): Promise<void> {
    let next = first;
    while (next !== Number.POSITIVE_INFINITY) {
      // Elapsed time comes from the clock, not from summing sleeps, so real timers cannot drift.
      const elapsed = this.#clock.now() - start;
      try {
        await this.#clock.sleep(Math.max(1, next - elapsed), signal);
      } catch {
        return;
      }
      if (signal.aborted) return;
      next = await this.#apply(waves, Math.max(next, this.#clock.now() - start));
    }
  }

  /** Writes every line's level at `elapsed` ms into the pattern; returns when the next change is due. */
  async #apply(waves: ReadonlyMap<LineName, Waveform>, elapsed: number): Promise<number> {
    let next = Number.POSITIVE_INFINITY;
    for (const [name, wave] of waves) {
      const { level, until } = sample(wave, elapsed);
      await this.#write(name, level);
      next = Math.min(next, until);
    }
    return next;
  }

  async #write(name: LineName, level: 0 | 1): Promise<void> {
    if (this.#written.get(name) === level) return;
    const line = this.#lines.get(name);
    if (line === undefined) return;
    try {
      await line.set(this.#activeLow ? ((1 - level) as 0 | 1) : level);
    } catch (error) {
      // Unknown after a failed write: write again next time.
      this.#written.delete(name);
      throw new LedError(name, error);
    }
    this.#written.set(name, level);
  }
}
