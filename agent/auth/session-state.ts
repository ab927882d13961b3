/**
 * What a profile's sign-in is doing, as plain data: every state can be written as JSON, crosses a
 * socket and goes into a log line as it is (an error is `{ code, message }`, never an object with
 * a stack). The displays turn states into screens (display/screens.ts imports this type, and only
 * this, from agent/auth); the agent's `status`, its MQTT state topic and sd_notify STATUS read it.
 *
 * Only `code-issued` and `waiting` carry the user code; every state after them means "take the
 * code off the screen" (RFC 8628 §5.7).
 */

/** An error as it crosses a boundary: the stable code and the one sentence a person reads. */
export interface ErrorInfo {
  readonly code: string;
  readonly message: string;
}

export interface CodeInfo {
  /** As the server sent it, control characters removed. */
  readonly userCode: string;
  /** Exactly as the server sent it (Entra serves more than one URL; never hard-code it). */
  readonly verificationUri: string;
  /** RFC 8628 §3.3.1: the URL with the code in it, when the server sends one (Entra does not). */
  readonly verificationUriComplete?: string;
  /** The server's own, possibly localised, instruction; built from the URL and code when it sent none. */
  readonly message: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly intervalSeconds: number;
  /** What a QR code carries: `verificationUriComplete` when there is one (no typing), else the URL. */
  readonly qrPayload: string;
}

/** What happens while we wait for the person to sign in; drives the countdown screens' notes. */
export type PollEvent =
  | { readonly type: "pending" }
  | { readonly type: "slow-down"; readonly intervalSeconds: number }
  | { readonly type: "retry"; readonly reason: string; readonly delayMs: number };

export type SessionState =
  /** Nothing asked yet. */
  | { readonly kind: "idle"; readonly profile: string }
  | { readonly kind: "starting"; readonly profile: string }
  /** The system clock cannot be trusted yet (no RTC, NTP not synchronised): nothing is sent until it can. */
  | { readonly kind: "waiting-for-time"; readonly profile: string }
  /** Another process holds the profile's lock (it is signing in or refreshing). */
  | { readonly kind: "waiting-for-lock"; readonly profile: string }
  /** Redeeming the refresh token; what the screens show does not change. */
  | { readonly kind: "refreshing"; readonly profile: string }
  /** A new sign-in is needed, and why (the saved one expired, a new code was asked for…). */
  | { readonly kind: "sign-in-required"; readonly profile: string; readonly reason: ErrorInfo }
  | ({ readonly kind: "code-issued"; readonly profile: string } & CodeInfo)
  | ({ readonly kind: "waiting"; readonly profile: string; readonly poll: PollEvent } & CodeInfo)
  | {
      readonly kind: "signed-in";
      readonly profile: string;
      readonly username: string;
      readonly tenantId: string;
      /** Epoch ms. */
      readonly expiresAt: number;
      readonly fromCache: boolean;
    }
  /**
   * Someone signed in with an account the profile does not allow (`expect`); the tokens are
   * already removed and a new code follows after a button press or a delay.
   */
  | {
      readonly kind: "wrong-account";
      readonly profile: string;
      readonly username: string;
      readonly tenantId: string;
      /** Who the device expects, as a person reads it: "someone@contoso.com or @fabrikam.com". */
      readonly expected: string;
      /** Epoch ms of the next code, unless a button press comes first. */
      readonly nextCodeAt: number;
    }
  /** The tokens were removed (button, logout). */
  | { readonly kind: "signed-out"; readonly profile: string }
  | { readonly kind: "cancelled"; readonly profile: string }
  | { readonly kind: "expired"; readonly profile: string }
  | { readonly kind: "blocked-by-policy"; readonly profile: string; readonly error: ErrorInfo }
  | { readonly kind: "offline"; readonly profile: string; readonly error: ErrorInfo }
  | { readonly kind: "error"; readonly profile: string; readonly error: ErrorInfo };
