/**
 * The error answers the emulator gives, in Entra's shape. Clients must branch on `error` (and at
 * most on `error_codes`), never on the text, which Microsoft changes; the texts here follow what
 * Entra has been seen to send so that logs and screens look the same as in production.
 */

export interface EntraErrorSpec {
  /** OAuth `error` value. */
  readonly error: string;
  /** AADSTS number; `null` where Entra has no documented code (slow_down, which Entra never sends). */
  readonly code: number | null;
  readonly message: string;
  readonly status: number;
  readonly suberror?: string;
}

export interface EntraErrorBody {
  readonly error: string;
  readonly error_description: string;
  readonly error_codes: number[];
  readonly timestamp: string;
  readonly trace_id: string;
  readonly correlation_id: string;
  readonly error_uri: string;
  readonly suberror?: string;
}

/** AADSTS numbers the emulator answers with; other code relying on them can import these. */
export const AADSTS = {
  missingParameter: 900144,
  postOnly: 900561,
  unsupportedGrantType: 70003,
  unknownClient: 700016,
  authorizationPending: 70016,
  codeExpired: 70019,
  invalidGrant: 70000,
  malformedGrant: 9002313,
  refreshTokenInactive: 70008,
  refreshTokenExpired: 700082,
  grantRevoked: 50173,
  mfaRequired: 50076,
  mfaRequiredLocation: 50079,
  tokenTooOld: 70043,
  consentRequired: 65001,
  policyBlocked: 53003,
  notPublicClient: 7000218,
  transient: 90033,
} as const;

export const Errors = {
  missingParameter: (name: string): EntraErrorSpec => ({
    error: "invalid_request",
    code: AADSTS.missingParameter,
    message: `The request body must contain the following parameter: '${name}'.`,
    status: 400,
  }),
  postOnly: (): EntraErrorSpec => ({
    error: "invalid_request",
    code: AADSTS.postOnly,
    message: "The endpoint only accepts POST requests. Received a GET request.",
    status: 400,
  }),
  unsupportedGrantType: (grantType: string): EntraErrorSpec => ({
    error: "unsupported_grant_type",
    code: AADSTS.unsupportedGrantType,
    message: `The app requested an unsupported grant type '${grantType}'.`,
    status: 400,
  }),
  unknownClient: (clientId: string, tenant: string): EntraErrorSpec => ({
    error: "unauthorized_client",
    code: AADSTS.unknownClient,
    message:
      `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can ` +
      "happen if the application has not been installed by the administrator of the tenant or consented " +
      "to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
    status: 400,
  }),
  authorizationPending: (): EntraErrorSpec => ({
    error: "authorization_pending",
    code: AADSTS.authorizationPending,
    message: "The provided request has not yet been authorized by the user. The user must input their code.",
    status: 400,
  }),
  slowDown: (interval: number): EntraErrorSpec => ({
    error: "slow_down",
    code: null,
    message: `The client is polling too quickly. Poll no more often than every ${interval} seconds.`,
    status: 400,
  }),
  declined: (): EntraErrorSpec => ({
    error: "authorization_declined",
    code: AADSTS.invalidGrant,
    message: "The end user denied the authorization request.",
    status: 400,
  }),
  codeExpired: (): EntraErrorSpec => ({
    error: "expired_token",
    code: AADSTS.codeExpired,
    message: "Verification code expired.",
    status: 400,
  }),
  badVerificationCode: (): EntraErrorSpec => ({
    error: "bad_verification_code",
    code: AADSTS.invalidGrant,
    message: "The provided value for the input parameter 'device_code' is not valid.",
    status: 400,
  }),
  grantAlreadyRedeemed: (): EntraErrorSpec => ({
    error: "invalid_grant",
    code: AADSTS.invalidGrant,
    message: "Provided grant is invalid or malformed. The device code has already been redeemed.",
    status: 400,
  }),
  grantClientMismatch: (): EntraErrorSpec => ({
    error: "invalid_grant",
    code: AADSTS.invalidGrant,
    message: "Provided grant is invalid or malformed. It was issued to a different client.",
    status: 400,
  }),
  malformedGrant: (): EntraErrorSpec => ({
    error: "invalid_grant",
    code: AADSTS.malformedGrant,
    message: "Invalid request. Request is malformed or invalid.",
    status: 400,
  }),
  policyBlocked: (): EntraErrorSpec => ({
    error: "invalid_grant",
    code: AADSTS.policyBlocked,
    message:
      "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
    status: 400,
  }),
  consentRequired: (clientId: string): EntraErrorSpec => ({
    error: "invalid_grant",
    code: AADSTS.consentRequired,
    message:
      `The user or administrator has not consented to use the application with ID '${clientId}'. ` +
      "Send an interactive authorization request for this user and resource.",
    status: 400,
    suberror: "consent_required",
  }),
  notPublicClient: (): EntraErrorSpec => ({
    error: "invalid_client",
    code: AADSTS.notPublicClient,
    message: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    // RFC 6749 §5.2 lets invalid_client be 401, and Entra uses 401 for it.
    status: 401,
  }),
  refreshTokenInvalid: (code: number, issuedAt: Date, now: Date): EntraErrorSpec =>
    refreshTokenError(code, issuedAt, now),
  transient: (status: number): EntraErrorSpec => ({
    error: status === 429 ? "temporarily_unavailable" : "server_error",
    code: AADSTS.transient,
    message: "A transient error has occurred. Please try again.",
    status,
  }),
} as const;

function refreshTokenError(code: number, issuedAt: Date, now: Date): EntraErrorSpec {
  const issued = isoSeconds(issuedAt);
  switch (code) {
    case AADSTS.refreshTokenInactive:
      return {
        error: "invalid_grant",
        code,
        message:
          "The provided authorization code or refresh token has expired due to inactivity. Send a new " +
          "interactive authorization request for this user and resource.",
        status: 400,
      };
    case AADSTS.refreshTokenExpired:
      return {
        error: "invalid_grant",
        code,
        message: `The refresh token has expired due to inactivity. The token was issued on ${issued} and was inactive for 90.00:00:00.`,
        status: 400,
      };
    case AADSTS.grantRevoked:
      return {
        error: "invalid_grant",
        code,
        message:
          "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user " +
          `might have changed or reset their password. The grant was issued on '${issued}' and the ` +
          `TokensValidFrom date (before which tokens are not valid) for this user is '${isoSeconds(now)}'.`,
        status: 400,
      };
    case AADSTS.mfaRequired:
    case AADSTS.mfaRequiredLocation:
      return {
        error: "invalid_grant",
        code,
        message:
          "Due to a configuration change made by your administrator, or because you moved to a new " +
          "location, you must use multi-factor authentication to access the resource.",
        status: 400,
        suberror: "basic_action",
      };
    case AADSTS.tokenTooOld:
      return {
        error: "invalid_grant",
        code,
        message:
          "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access.",
        status: 400,
      };
    case AADSTS.consentRequired:
      return {
        error: "invalid_grant",
        code,
        message: "The user or administrator has not consented to use the application.",
        status: 400,
        suberror: "consent_required",
      };
    case AADSTS.policyBlocked:
      return Errors.policyBlocked();
    default:
      return { error: "invalid_grant", code, message: "The refresh token is no longer valid.", status: 400 };
  }
}

/** Entra's timestamp format: `2026-11-27 12:00:00Z`. */
export function entraTimestamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}

export function errorBody(
  spec: EntraErrorSpec,
  context: { now: number; traceId: string; correlationId: string; errorUriBase: string },
): EntraErrorBody {
  const timestamp = entraTimestamp(context.now);
  const prefix = spec.code === null ? "" : `AADSTS${spec.code}: `;
  return {
    error: spec.error,
    error_description:
      `${prefix}${spec.message}\r\nTrace ID: ${context.traceId}\r\n` +
      `Correlation ID: ${context.correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: spec.code === null ? [] : [spec.code],
    timestamp,
    trace_id: context.traceId,
    correlation_id: context.correlationId,
    error_uri: `${context.errorUriBase}/error?code=${spec.code ?? 0}`,
    ...(spec.suberror === undefined ? {} : { suberror: spec.suberror }),
  };
}
