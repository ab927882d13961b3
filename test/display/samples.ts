import type { Screen, ScreenKind } from "../../display/screens.ts";

/** The verification URL and user code every display test shows. */
export const URL = "https://microsoft.com/devicelogin";
export const CODE = "FZ2X8LQ3N";
/** A round time: 0 mod 10 s, the start of an OLED code page (6 s code, then 4 s QR). */
export const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);

export const codeScreen: Extract<Screen, { kind: "code" }> = {
  kind: "code",
  userCode: CODE,
  verificationUri: URL,
  expiresAt: T0 + 15 * 60_000,
  qrPayload: URL,
  message: `To sign in, use a web browser to open the page ${URL} and enter the code ${CODE} to authenticate.`,
};

/** One screen of each kind; the code-bearing ones carry `CODE`. */
export function sample(kind: ScreenKind): Screen {
  switch (kind) {
    case "waiting-for-lock":
      return { kind, profile: "default" };
    case "starting":
    case "waiting-for-time":
    case "expired":
    case "cancelled":
      return { kind };
    case "code":
      return codeScreen;
    case "waiting":
      return { ...codeScreen, kind: "waiting", note: "retrying" };
    case "signed-in":
      return { kind, username: "ada.lovelace@contoso.onmicrosoft.com", expiresAt: T0 + 3_600_000 };
    case "sign-in-needed":
      return { kind, reason: "The refresh token expired (AADSTS700082)." };
    case "wrong-account":
      return { kind, username: "guest@fabrikam.com", expected: "@contoso.com" };
    case "blocked":
      return { kind, message: "Sign-in is blocked by your organisation's policy (AADSTS53003)." };
    case "offline":
      return { kind, message: "Cannot reach Microsoft Entra ID." };
    case "error":
      return { kind, code: "E_IDP", message: "Microsoft Entra ID returned an unexpected error." };
  }
}
