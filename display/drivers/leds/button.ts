import type { Clock } from "../../../agent/core/clock.ts";
import type { Edge, GpioLine } from "../../bus/types.ts";
import { DisplayError } from "../../errors.ts";

/**
 * The optional sign-in button: a short press asks for a new code, a long press signs out.
 *
 * Pressed is logical 1. A push button between the pin and ground is requested active-low with the
 * pull-up bias (GPIO v2 flags), so that pressing it gives a rising edge; this driver reads logical
 * edges only.
 *
 * Durations come from the edges' kernel timestamps, not from when our event loop saw them, so a
 * busy process does not turn a short press into a long one. The press is classified at release
 * (held for `longPressMs` or more = sign-out), which needs no timer while the button is held and
 * makes a 10 s hold one sign-out, not several.
 *
 * Debouncing: a tactile switch chatters for a few ms at each transition. A falling edge is only
 * a release once no rising edge follows within `debounceMs` (checked on the next edge's timestamp,
 * or by a `debounceMs` sleep on the injected clock when no edge comes); a press shorter than
 * `debounceMs` in all is noise (a spike on a long wire) and ignored.
 */

export type ButtonAction = "new-code" | "sign-out";

export interface ButtonEvent {
  readonly action: ButtonAction;
  /** Kernel timestamp (ms) of the press. */
  readonly pressedAt: number;
  /** From the press to the confirmed release, ms. */
  readonly durationMs: number;
}

export interface SignInButtonOptions {
  readonly line: GpioLine;
  readonly clock: Clock;
  /** Held at least this long = sign out; default 3000 ms. */
  readonly longPressMs?: number;
  /** Contact chatter to ignore; default 50 ms. */
  readonly debounceMs?: number;
}

export class ButtonConfigError extends DisplayError<"E_BUTTON_CONFIG"> {
  override readonly name = "ButtonConfigError";

  constructor(message: string) {
    super("E_BUTTON_CONFIG", message);
  }
}

interface PendingRelease {
  readonly at: number;
  readonly controller: AbortController;
}

export class SignInButton {
  readonly #clock: Clock;
  readonly #longPressMs: number;
  readonly #debounceMs: number;
  readonly #listeners = new Set<(event: ButtonEvent) => void>();
  readonly #unwatch: () => void;
  /** Timestamp of the press in progress; undefined while released. */
  #pressedAt: number | undefined;
  #pending: PendingRelease | undefined;

  constructor(options: SignInButtonOptions) {
    const longPressMs = options.longPressMs ?? 3000;
    const debounceMs = options.debounceMs ?? 50;
    if (!(debounceMs >= 0) || !(longPressMs > debounceMs)) {
      throw new ButtonConfigError(
        `The button's long press (${longPressMs} ms) must be longer than its debounce time (${debounceMs} ms), and neither negative.`,
      );
    }
    this.#clock = options.clock;
    this.#longPressMs = longPressMs;
    this.#debounceMs = debounceMs;
    this.#unwatch = options.line.watch((edge, at) => this.#edge(edge, at));
  }

  /** Calls `listener` for each short or long press; returns a function that stops listening. */
  on(listener: (event: ButtonEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Stops watching the line (the line itself belongs to whoever requested it). */
  close(): void {
    this.#unwatch();
    this.#pending?.controller.abort();
    this.#pending = undefined;
    this.#pressedAt = undefined;
    this.#listeners.clear();
  }

  #edge(edge: Edge, at: number): void {
    const pending = this.#pending;
    if (edge === "rising") {
      if (pending !== undefined) {
        pending.controller.abort();
        this.#pending = undefined;
        // Bounce: the contact closed again right after opening, the press goes on.
        if (at - pending.at < this.#debounceMs) return;
        // Slow timers: the release was real, the confirmation sleep had not ended yet.
        this.#release(pending.at);
      }
      this.#pressedAt ??= at;
      return;
    }
    if (this.#pressedAt === undefined) return;
    // A later falling edge (bounce) moves the release to the last time the contact opened.
    pending?.controller.abort();
    const controller = new AbortController();
    this.#pending = { at, controller };
    const wait = Math.max(0, at + this.#debounceMs - this.#clock.now());
    this.#clock.sleep(wait, controller.signal).then(
      () => {
        if (this.#pending?.controller !== controller) return;
        this.#pending = undefined;
        this.#release(at);
      },
      () => undefined,
    );
  }

  #release(at: number): void {
    const pressedAt = this.#pressedAt;
    this.#pressedAt = undefined;
    if (pressedAt === undefined) return;
    const durationMs = at - pressedAt;
    if (durationMs < this.#debounceMs) return;
    const action: ButtonAction = durationMs >= this.#longPressMs ? "sign-out" : "new-code";
    for (const listener of [...this.#listeners]) listener({ action, pressedAt, durationMs });
  }
}
