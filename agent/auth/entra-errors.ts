import { EntraToolError } from "../core/errors.ts";

/**
 * An OAuth error body as Entra sends it. We branch on `error`, `error_codes` and `suberror`,
 * never on `error_description` (Microsoft rewords it).
 */
export interface OAuthErrorBody {
  readonly error: string;
  readonly error_description?: string;
  readonly error_codes?: readonly number[];
  readonly suberror?: string;
}

export function isOAuthErrorBody(value: unknown): value is OAuthErrorBody {
  return (
    typeof value === "object" && value !== null && typeof (value as { error?: unknown }).error === "string"
  );
}

/** AADSTS codes that mean "the refresh token is no good; a person must sign in again". */
const SIGN_IN_AGAIN = new Set([700082, 70008, 50173, 70043, 50076, 50079, 50078, 50089, 70000, 50133, 50132]);
const POLICY_BLOCKED = new Set([53003, 530032, 53000, 53001, 53002]);
const CONSENT = new Set([65001, 65004]);
const NOT_PUBLIC_CLIENT = new Set([7000218]);
const APP_UNKNOWN = new Set([700016, 90002, 900023, 700054, 7000112, 50020]);
const LOOP_DETECTED = new Set([50196]);

function codesOf(body: OAuthErrorBody): readonly number[] {
  return Array.isArray(body.error_codes) ? body.error_codes.filter((c) => typeof c === "number") : [];
}

function hasAny(codes: readonly number[], set: ReadonlySet<number>): boolean {
  return codes.some((c) => set.has(c));
}

/** The device code poll responses that mean "keep polling". */
export type PollContinuation = "authorization_pending" | "slow_down";

export function pollContinuation(body: OAuthErrorBody): PollContinuation | undefined {
  return body.error === "authorization_pending" || body.error === "slow_down" ? body.error : undefined;
}

/**
 * Turns a terminal token-endpoint error into the user-facing error. `phase` says whether it came
 * from polling for a device code or from a refresh, because `invalid_grant` means different things
 * in each.
 */
export function classifyTokenError(body: OAuthErrorBody, phase: "device-code" | "refresh"): EntraToolError {
  const codes = codesOf(body);
  const details = { error: body.error, error_codes: codes, suberror: body.suberror, phase };
  if (hasAny(codes, POLICY_BLOCKED)) return new EntraToolError("E_POLICY_BLOCKED", { details });
  if (hasAny(codes, NOT_PUBLIC_CLIENT)) return new EntraToolError("E_NOT_PUBLIC_CLIENT", { details });
  if (hasAny(codes, CONSENT) || body.suberror === "consent_required") {
    return new EntraToolError("E_CONSENT_REQUIRED", { details });
  }
  if (hasAny(codes, LOOP_DETECTED)) return new EntraToolError("E_THROTTLED", { details });
  if (hasAny(codes, APP_UNKNOWN)) return new EntraToolError("E_APP_REGISTRATION", { details });
  switch (body.error) {
    case "authorization_declined":
    case "access_denied":
      return new EntraToolError("E_DECLINED", { details });
    case "expired_token":
      return new EntraToolError("E_EXPIRED", { details });
    case "bad_verification_code":
      return new EntraToolError("E_BAD_CODE", { details });
    case "unauthorized_client":
    case "invalid_client":
      return new EntraToolError("E_APP_REGISTRATION", { details });
    case "temporarily_unavailable":
      return new EntraToolError("E_NETWORK", {
        message: "Microsoft Entra ID is temporarily unavailable. Try again in a few minutes.",
        details,
      });
    case "invalid_grant":
    case "interaction_required":
      if (phase === "refresh" || hasAny(codes, SIGN_IN_AGAIN)) {
        return new EntraToolError("E_SIGN_IN_REQUIRED", { details });
      }
      // A device code the server no longer accepts (already redeemed, or unknown).
      return new EntraToolError("E_BAD_CODE", { details });
    default:
      return new EntraToolError("E_IDP", { details });
  }
}
