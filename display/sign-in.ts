import type { SessionState } from "../agent/auth/session-state.ts";
import type { Clock } from "../agent/core/clock.ts";
import type { Logger } from "../agent/core/log.ts";
import type { Output } from "../agent/core/output.ts";
import type { Env } from "../agent/core/paths.ts";
import type { GpioLine } from "./bus/types.ts";
import type { DisplayConfig } from "./config.ts";
import { type ButtonAction, SignInButton } from "./drivers/leds/button.ts";
import { colorFor } from "./drivers/terminal/driver.ts";
import { entryOf } from "./registry.ts";
import { type Screen, screenFor, showsCode } from "./screens.ts";
import type { DisplaySet, NoCodeScreen } from "./set.ts";
import type { GpioInputOptions, QrEncoder, TerminalOutput } from "./types.ts";

/**
 * The displays of one sign-in, for the CLI's get-token and the agent alike: every session state
 * goes to every display as the screen a person should see, the sign-in button's presses go to
 * whoever listens (the session's policy: `session.press(action)`), and closing takes the code off
 * every display before releasing it.
 */
export interface SignInDisplays {
  /** Shows the screen for `state` on every display; states that change nothing a person sees are skipped. */
  onState(state: SessionState): void;
  /** Calls `listener` on each press of a configured button (none configured: never); returns the unsubscribe. */
  onButton(listener: (action: ButtonAction) => void): () => void;
  /** Takes the code off every display, then releases the displays and the button. Never rejects. */
  close(): Promise<void>;
}

/** What `openSignInDisplays` (agent/cli/display.ts) is given. */
export interface SignInDisplayOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** NO_COLOR and TERM decide the terminal's colour. */
  readonly env: Env;
  /** The terminal display writes to stderr, and to `promptMirror` (the controlling terminal when a script captures stderr). */
  readonly io: { readonly stderr: Output; readonly promptMirror?: Output | undefined };
  /** The QR encoder the terminal draws with; none: no QR code under the prompt. */
  readonly qr?: QrEncoder | undefined;
  /** The configuration file whose `displays` to add; none: the terminal alone (nothing is read). */
  readonly configFile?: string | undefined;
  /** The displays themselves, already read (the agent's configuration); used instead of `configFile`. */
  readonly displays?: readonly DisplayConfig[] | undefined;
  /**
   * Whether the terminal is one of the displays although the file does not list it (default true,
   * as the CLI wants it); a file that lists it gets it once either way.
   */
  readonly terminal?: boolean;
}

/** stderr and the controlling terminal, each with whether it takes colour. */
export function terminalOutputs(io: SignInDisplayOptions["io"], env: Env): TerminalOutput[] {
  return [io.stderr, io.promptMirror]
    .filter((out): out is Output => out !== undefined)
    .map((out) => ({ out, color: colorFor(out, env) }));
}

/**
 * The sign-in buttons of the configured displays (a push button from the pin to ground, so the line
 * is requested active-low with the pull-up: pressed = logical 1). One that cannot be opened is
 * logged once, and the sign-in goes on without it.
 */
export async function openButtons(
  displays: readonly DisplayConfig[],
  input: (name: string, options: GpioInputOptions) => Promise<GpioLine>,
  clock: Clock,
  logger: Logger,
): Promise<Array<{ readonly button: SignInButton; readonly line: GpioLine }>> {
  const buttons: Array<{ readonly button: SignInButton; readonly line: GpioLine }> = [];
  for (const config of displays) {
    const pin = entryOf(config).button?.(config);
    if (pin === undefined) continue;
    try {
      const line = await input(pin, { bias: "pull-up", activeLow: true, edges: "both" });
      buttons.push({ button: new SignInButton({ line, clock }), line });
    } catch (error) {
      logger.warn({ err: error, pin }, "the sign-in button is not available; signing in without it");
    }
  }
  return buttons;
}

/**
 * Runs `set` (initialised here, so that wiring and permission problems are logged at once) and the
 * buttons for one sign-in.
 */
export async function startSignInDisplays(
  set: DisplaySet,
  buttons: ReadonlyArray<{ readonly button: SignInButton; readonly line: GpioLine }>,
  clock: Clock,
): Promise<SignInDisplays> {
  await set.init();
  let last: Screen | undefined;
  return {
    onState: (state) => {
      const screen = screenFor(state);
      if (screen === undefined) return;
      last = screen;
      void set.show(screen, clock.now());
    },
    onButton: (listener) => {
      const offs = buttons.map(({ button }) => button.on((event) => listener(event.action)));
      return () => {
        for (const off of offs) off();
      };
    },
    close: async () => {
      for (const { button, line } of buttons) {
        button.close();
        await line.close().catch(() => undefined);
      }
      // The last screen stays if it holds no code; a code dies with the process.
      const final: NoCodeScreen = last !== undefined && !showsCode(last) ? last : { kind: "cancelled" };
      await set.close(final);
    },
  };
}
