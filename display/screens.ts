import type { SignInState } from "../agent/auth/signin.ts";

/**
 * What a display shows: typed screens, not strings. The sign-in state machine emits states
 * (agent/auth/signin.ts); `screenFor` turns each into the screen a person should see, and every
 * driver renders every screen as well as its hardware allows (a 16x2 LCD pages the URL, an e-ink
 * panel draws a QR code, LEDs blink a pattern).
 *
 * Only `code` and `waiting` carry the user code. Every other screen means "the code is no longer
 * valid": a driver must take it off the glass (RFC 8628 §5.7; e-ink keeps its image unpowered).
 */
export type Screen =
  | { readonly kind: "starting" }
  | { readonly kind: "waiting-for-time" }
  | {
      readonly kind: "code";
      readonly userCode: string;
      /** Exactly as the server sent it; never a hard-coded URL. */
      readonly verificationUri: string;
      /** Epoch ms. */
      readonly expiresAt: number;
      /** What a QR code carries: Entra has no verification_uri_complete, so the URL. */
      readonly qrPayload: string;
    }
  | {
      readonly kind: "waiting";
      readonly userCode: string;
      readonly verificationUri: string;
      readonly expiresAt: number;
      readonly qrPayload: string;
      /** Set when polling is being retried or slowed down: shown as a short note. */
      readonly note?: string;
    }
  | { readonly kind: "signed-in"; readonly username: string; readonly expiresAt: number }
  | { readonly kind: "sign-in-needed"; readonly reason: string }
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
  "code",
  "waiting",
  "signed-in",
  "sign-in-needed",
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

/** The screen for a sign-in state; undefined for states that change nothing a person sees. */
export function screenFor(state: SignInState): Screen | undefined {
  switch (state.kind) {
    case "starting":
      return { kind: "starting" };
    case "waiting-for-time":
      return { kind: "waiting-for-time" };
    case "waiting-for-lock":
      return undefined;
    case "sign-in-required":
      return { kind: "sign-in-needed", reason: state.reason.message };
    case "code-issued":
      return {
        kind: "code",
        userCode: state.userCode,
        verificationUri: state.verificationUri,
        expiresAt: state.expiresAt,
        qrPayload: state.qrPayload,
      };
    case "waiting": {
      const note =
        state.event.type === "slow-down"
          ? `slowed to ${state.event.intervalSeconds} s`
          : state.event.type === "retry"
            ? "retrying"
            : undefined;
      return {
        kind: "waiting",
        userCode: state.userCode,
        verificationUri: state.verificationUri,
        expiresAt: state.expiresAt,
        qrPayload: state.qrPayload,
        ...(note === undefined ? {} : { note }),
      };
    }
    case "signed-in":
      return { kind: "signed-in", username: state.username, expiresAt: state.expiresAt };
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
