import type { Clock } from "../../agent/core/clock.ts";
import type { Edge, GpioLine } from "../bus/types.ts";
import { SimulatorError } from "./error.ts";

/**
 * One GPIO line as a test double: an output records every level change against the injected
 * clock (the LED and buzzer timeline a person would see), an input gets edges injected by the test
 * (a button press, contact bounce) and hands them to `watch` listeners with timestamps, as the GPIO
 * character device's edge events carry the kernel's time of the edge.
 *
 * Levels are logical, as `GpioLine` defines them: a line requested active-low (the v2 uAPI's
 * GPIO_V2_LINE_FLAG_ACTIVE_LOW) reads and writes 1 when the pin is low. `pin` shows the physical
 * level, so a test can check that an active-low LED is dark (pin high) after `close()`.
 *
 * It rejects what the kernel would: `set()` on a line requested as an input (EPERM from
 * GPIO_V2_LINE_SET_VALUES_IOCTL) and any use after `close()` (the request fd is gone: EBADF).
 */

export type GpioSimulatorErrorCode = "E_DIRECTION" | "E_CLOSED";

export class GpioSimulatorError extends SimulatorError<GpioSimulatorErrorCode> {
  override readonly name = "GpioSimulatorError";
}

export interface GpioLineSimulatorOptions {
  /** The line's name, as the kernel reports it (`GPIO17`); only for messages. */
  readonly name?: string;
  readonly direction: "output" | "input";
  /** Timestamps of level changes and of `press` edges. */
  readonly clock: Clock;
  /** Logical level at request time; default 0. */
  readonly initial?: 0 | 1;
  /** The request asked for active-low: `pin` is the inverse of the logical level. */
  readonly activeLow?: boolean;
}

/** A level change: `level` from `at` (epoch ms) on. */
export interface LevelChange {
  readonly at: number;
  readonly level: 0 | 1;
}

export interface PressOptions {
  /**
   * Contact bounce: this many extra edge pairs after the press and after the release, 1 ms apart
   * (a typical tactile switch chatters for 1-5 ms). Default 0, a clean switch.
   */
  readonly bounces?: number;
}

export class GpioLineSimulator implements GpioLine {
  readonly name: string;
  readonly direction: "output" | "input";
  readonly #clock: Clock;
  readonly #activeLow: boolean;
  readonly #timeline: LevelChange[] = [];
  readonly #listeners = new Set<(edge: Edge, at: number) => void>();
  #level: 0 | 1;
  #closed = false;
  #writes = 0;

  constructor(options: GpioLineSimulatorOptions) {
    this.name = options.name ?? "GPIO";
    this.direction = options.direction;
    this.#clock = options.clock;
    this.#activeLow = options.activeLow ?? false;
    this.#level = options.initial ?? 0;
    this.#timeline.push({ at: this.#clock.now(), level: this.#level });
  }

  // --- GpioLine --------------------------------------------------------------------------------

  async set(value: 0 | 1): Promise<void> {
    this.#checkOpen();
    if (this.direction !== "output") {
      throw new GpioSimulatorError(
        "E_DIRECTION",
        `${this.name} was requested as an input; the kernel refuses to set its value.`,
      );
    }
    this.#writes++;
    this.#change(value, this.#clock.now());
  }

  async get(): Promise<0 | 1> {
    this.#checkOpen();
    return this.#level;
  }

  watch(listener: (edge: Edge, at: number) => void): () => void {
    this.#checkOpen();
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }

  // --- What a test sees or does ------------------------------------------------------------------

  /** The logical level now. */
  get level(): 0 | 1 {
    return this.#level;
  }

  /** The physical pin level: the logical level, inverted for an active-low request. */
  get pin(): 0 | 1 {
    return this.#activeLow ? ((1 - this.#level) as 0 | 1) : this.#level;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** `set()` calls, including those that did not change the level (redundant writes). */
  get writes(): number {
    return this.#writes;
  }

  /** Every level change, the request's initial level first. */
  timeline(): readonly LevelChange[] {
    return [...this.#timeline];
  }

  /** The level in effect at `at` (epoch ms): the last change at or before it. */
  levelAt(at: number): 0 | 1 {
    let level = this.#timeline[0]?.level ?? 0;
    for (const change of this.#timeline) {
      if (change.at > at) break;
      level = change.level;
    }
    return level;
  }

  /** Injects one edge on an input at `at` (default now), as the kernel would report it. */
  edge(edge: Edge, at = this.#clock.now()): void {
    this.#checkOpen();
    if (this.direction !== "input") {
      throw new GpioSimulatorError("E_DIRECTION", `${this.name} is an output; edges are injected on inputs.`);
    }
    this.#change(edge === "rising" ? 1 : 0, at);
    for (const listener of [...this.#listeners]) listener(edge, at);
  }

  /**
   * A button press on an input, pressed = logical 1 (a switch to ground on a line requested
   * active-low with pull-up): a rising edge now, `durationMs` of the injected clock's sleep, then a
   * falling edge; with `bounces`, chatter after each transition. Resolves after the release.
   */
  async press(durationMs: number, options: PressOptions = {}): Promise<void> {
    const bounces = options.bounces ?? 0;
    this.#transition("rising", this.#clock.now(), bounces);
    await this.#clock.sleep(durationMs);
    this.#transition("falling", this.#clock.now(), bounces);
  }

  #transition(edge: Edge, at: number, bounces: number): void {
    const back: Edge = edge === "rising" ? "falling" : "rising";
    this.edge(edge, at);
    for (let i = 0; i < bounces; i++) {
      this.edge(back, at + 2 * i + 1);
      this.edge(edge, at + 2 * i + 2);
    }
  }

  #change(level: 0 | 1, at: number): void {
    if (level === this.#level) return;
    this.#level = level;
    this.#timeline.push({ at, level });
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new GpioSimulatorError("E_CLOSED", `${this.name} was released (its request was closed).`);
    }
  }
}
