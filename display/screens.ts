import type { PollEvent, SessionState } from "../agent/auth/session-state.ts";

/**
 * What a display shows: typed screens, not strings. A profile's sign-in session publishes states
 * (agent/auth/session-state.ts, the only thing display/ takes from agent/auth); `screenFor` turns
 * each into the screen a person should see, and every driver renders every screen as well as its
 * hardware allows (a 16x2 LCD pages the URL, an e-ink panel draws a QR code, LEDs blink a pattern,
 * the terminal prints a box).
 *
 * Only `code` and `waiting` carry the user code. Every other screen means "the code is no longer
 * valid": a driver must take it off the glass (RFC 8628 §5.7; e-ink keeps its image unpowered).
 */

interface CodeFields {
  readonly userCode: string;
  /** Exactly as the server sent it; never a hard-coded URL. */
  readonly verificationUri: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  /** What a QR code carries: the URL with the code in it when the server gave one, else the URL. */
  readonly qrPayload: string;
  /** The server's own instruction (the terminal prints it above its box). */
  readonly message?: string;
}

export type Screen =
  | { readonly kind: "starting" }
  | { readonly kind: "waiting-for-time" }
  /** Another process is signing this profile in (or refreshing it); it will be done soon. */
  | { readonly kind: "waiting-for-lock"; readonly profile: string }
  | ({ readonly kind: "code" } & CodeFields)
  | ({
      readonly kind: "waiting";
      /** Set when polling is being retried or slowed down: a short note ("retrying"). */
      readonly note?: string;
      /** The same, said in full, for screens with room for it (the terminal). */
      readonly detail?: string;
    } & CodeFields)
  | { readonly kind: "signed-in"; readonly username: string; readonly expiresAt: number }
  | { readonly kind: "sign-in-needed"; readonly reason: string }
  /** Someone signed in with an account this device does not accept; a new code follows. */
  | { readonly kind: "wrong-account"; readonly username: string; readonly expected: string }
  | { readonly kind: "blocked"; readonly message: string }
  | { readonly kind: "offline"; readonly message: string }
  | { readonly kind: "expired" }
  | { readonly kind: "cancelled" }
  | { readonly kind: "error"; readonly code: string; readonly message: string };

export type ScreenKind = Screen["kind"];

/** Every screen kind, in the order `display test` cycles through them. */
export const SCREEN_KINDS: readonly ScreenKind[] = [
  "starting",
  "waiting-for-time",
  "waiting-for-lock",
  "code",
  "waiting",
  "signed-in",
  "sign-in-needed",
  "wrong-account",
  "blocked",
  "offline",
  "expired",
  "cancelled",
  "error",
];

/** Whether a screen shows the user code (and so must be replaced when the code is no longer valid). */
export function showsCode(screen: Screen): screen is Extract<Screen, { kind: "code" | "waiting" }> {
  return screen.kind === "code" || screen.kind === "waiting";
}

/**
 * What a paged display counts its pages from: the same for every screen that shows the same
 * picture but for the countdown and notes (the code and waiting screens of one user code), new for
 * anything else. A paged display starts on its first page whenever this changes.
 */
export function screenFamily(screen: Screen): string {
  return showsCode(screen) ? `code:${screen.userCode}` : JSON.stringify(screen);
}

/** The short and the full note for a poll event; none for an ordinary pending answer. */
function pollNotes(poll: PollEvent): { note?: string; detail?: string } {
  switch (poll.type) {
    case "pending":
      return {};
    case "slow-down":
      return {
        note: `slowed to ${poll.intervalSeconds} s`,
        detail: `server asked to slow down; polling every ${poll.intervalSeconds} s`,
      };
    case "retry":
      return {
        note: "retrying",
        detail: `identity provider unreachable (${poll.reason}); still trying`,
      };
  }
}

/** The screen for a session state; undefined for states that change nothing a person sees. */
export function screenFor(state: SessionState): Screen | undefined {
  switch (state.kind) {
    case "idle":
    case "refreshing":
      return undefined;
    case "starting":
      return { kind: "starting" };
    case "waiting-for-time":
      return { kind: "waiting-for-time" };
    case "waiting-for-lock":
      return { kind: "waiting-for-lock", profile: state.profile };
    case "sign-in-required":
      return { kind: "sign-in-needed", reason: state.reason.message };
    case "code-issued":
    case "waiting": {
      const code: CodeFields = {
        userCode: state.userCode,
        verificationUri: state.verificationUri,
        expiresAt: state.expiresAt,
        qrPayload: state.qrPayload,
        message: state.message,
      };
      return state.kind === "code-issued"
        ? { kind: "code", ...code }
        : { kind: "waiting", ...code, ...pollNotes(state.poll) };
    }
    case "signed-in":
      return { kind: "signed-in", username: state.username, expiresAt: state.expiresAt };
    case "wrong-account":
      return { kind: "wrong-account", username: state.username, expected: state.expected };
    case "signed-out":
      return { kind: "sign-in-needed", reason: "Signed out." };
    case "cancelled":
      return { kind: "cancelled" };
    case "expired":
      return { kind: "expired" };
    case "blocked-by-policy":
      return { kind: "blocked", message: state.error.message };
    case "offline":
      return { kind: "offline", message: state.error.message };
    case "error":
      return { kind: "error", code: state.error.code, message: state.error.message };
  }
}
