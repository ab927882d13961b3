import type { Screen, ScreenKind } from "./screens.ts";

/**
 * A sample of each screen kind, as a sign-in would produce it: for `display preview`, `display
 * test`, the golden images and the benchmark. The code screens carry the server's message as Entra
 * words it (the terminal prints it above its box).
 */
export function sampleScreen(kind: ScreenKind, code: string, url: string, now: number): Screen {
  const expiresAt = now + 15 * 60_000;
  const message = `To sign in, use a web browser to open the page ${url} and enter the code ${code} to authenticate.`;
  switch (kind) {
    case "code":
      return { kind, userCode: code, verificationUri: url, expiresAt, qrPayload: url, message };
    case "waiting":
      return {
        kind,
        userCode: code,
        verificationUri: url,
        expiresAt: expiresAt - 61_000,
        qrPayload: url,
        message,
      };
    case "waiting-for-lock":
      return { kind, profile: "default" };
    case "signed-in":
      return { kind, username: "pi@contoso.com", expiresAt: now + 3_600_000 };
    case "sign-in-needed":
      return { kind, reason: "The saved sign-in expired after 90 days without use." };
    case "wrong-account":
      return { kind, username: "guest@fabrikam.com", expected: "@contoso.com" };
    case "blocked":
      return { kind, message: "Sign-in is blocked by your organisation's policy (AADSTS53003)." };
    case "offline":
      return { kind, message: "Cannot reach Microsoft Entra ID." };
    case "error":
      return { kind, code: "E_IDP", message: "Microsoft Entra ID returned an unexpected error." };
    case "starting":
    case "waiting-for-time":
    case "expired":
    case "cancelled":
      return { kind };
  }
}
