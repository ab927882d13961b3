/**
 * Every error a user can see, in one place: a stable code (for scripts and logs), the process exit
 * code, and one sentence that says what went wrong and what to do. Code branches on `code`, never
 * on message text. Exit codes are part of the CLI contract (README "Exit codes"): never renumber.
 */

export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  network: 3,
  expired: 4,
  declined: 5,
  badCode: 6,
  policy: 7,
  appRegistration: 8,
  signInRequired: 9,
  store: 10,
  idp: 11,
  cancelled: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

interface ErrorSpec {
  readonly exit: ExitCode;
  /** Default user-facing sentence; a thrower may pass a more specific one. */
  readonly message: string;
}

/** The catalogue. Keys are the stable codes. */
export const ERRORS = {
  E_USAGE: { exit: ExitCode.usage, message: "Invalid command line. Run 'entratool --help' for usage." },
  E_CONFIG: { exit: ExitCode.usage, message: "The configuration is invalid." },
  E_PROFILE_NOT_FOUND: {
    exit: ExitCode.usage,
    message: "No such profile. Create it with 'entratool create-profile --name <name>'.",
  },
  E_PROFILE_EXISTS: {
    exit: ExitCode.usage,
    message: "A profile with that name already exists. Delete it first or choose another name.",
  },
  E_FLOW_UNSUPPORTED: {
    exit: ExitCode.usage,
    message: "Only the device-code flow is supported. Use '--flow device-code'.",
  },
  E_NETWORK: {
    exit: ExitCode.network,
    message:
      "Cannot reach Microsoft Entra ID. Check the network connection, DNS, the system time and HTTPS_PROXY, then try again.",
  },
  E_TLS: {
    exit: ExitCode.network,
    message:
      "The identity provider's TLS certificate is not trusted. Check the system time and CA certificates (or NODE_EXTRA_CA_CERTS).",
  },
  E_EXPIRED: { exit: ExitCode.expired, message: "Device code expired. Please try again." },
  E_TIMEOUT: {
    exit: ExitCode.expired,
    message: "Timed out waiting for sign-in. Run the command again (or raise --timeout).",
  },
  E_DECLINED: {
    exit: ExitCode.declined,
    message: "Sign-in was declined on the other device. Run the command again and approve the request.",
  },
  E_BAD_CODE: {
    exit: ExitCode.badCode,
    message:
      "The code was not recognised. Run the command again and enter the new code exactly as shown (no extra spaces).",
  },
  E_POLICY_BLOCKED: {
    exit: ExitCode.policy,
    message:
      "Sign-in is blocked by your organisation's policy (Conditional Access, AADSTS53003). Ask your administrator to allow the device code flow for this app; retrying will not help.",
  },
  E_NOT_PUBLIC_CLIENT: {
    exit: ExitCode.appRegistration,
    message:
      "The app registration is not a public client (AADSTS7000218). Set 'Allow public client flows' to Yes in the app registration, then try again.",
  },
  E_APP_REGISTRATION: {
    exit: ExitCode.appRegistration,
    message:
      "The app registration was rejected (unknown client id or tenant). Check --client-id and --tenant-id in the profile.",
  },
  E_CONSENT_REQUIRED: {
    exit: ExitCode.appRegistration,
    message:
      "Consent is needed for the requested permissions (AADSTS65001). Ask an administrator to grant consent, or sign in with an account that may consent.",
  },
  E_SIGN_IN_REQUIRED: {
    exit: ExitCode.signInRequired,
    message: "A new sign-in is needed. Run 'entratool get-token --flow device-code' to sign in again.",
  },
  E_THROTTLED: {
    exit: ExitCode.idp,
    message:
      "Microsoft Entra ID asked us to slow down (AADSTS50196). Wait a few minutes before trying again.",
  },
  E_IDP: {
    exit: ExitCode.idp,
    message:
      "Microsoft Entra ID returned an unexpected error. Try again later; if it persists, run with ENTRATOOL_LOG_LEVEL=debug.",
  },
  E_STORE: {
    exit: ExitCode.store,
    message: "Cannot read or write the token store. Check the permissions of the state directory.",
  },
  E_CANCELLED: { exit: ExitCode.cancelled, message: "Authentication cancelled by user" },
  E_INTERNAL: {
    exit: ExitCode.internal,
    message: "An unexpected error occurred. Run with ENTRATOOL_LOG_LEVEL=debug and report the log.",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export interface EntraToolErrorOptions {
  /** Replaces the catalogue sentence; must still be one sentence with what to do. */
  readonly message?: string;
  readonly cause?: unknown;
  /** Machine-readable details for logs (never secrets). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * Marks our errors. A registered symbol, not the class: the compiled binary loads some modules as
 * separate entrypoints (msal-node's wrapper, the display commands), each with its own copy of this
 * class, so `instanceof` would miss an error made in another one.
 */
const BRAND = Symbol.for("entratool.EntraToolError");

export class EntraToolError extends Error {
  readonly [BRAND] = true;
  override readonly name = "EntraToolError";
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, options: EntraToolErrorOptions = {}) {
    super(
      options.message ?? ERRORS[code].message,
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.code = code;
    this.exitCode = ERRORS[code].exit;
    this.details = options.details ?? {};
  }
}

export function isEntraToolError(value: unknown, code?: ErrorCode): value is EntraToolError {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { [BRAND]?: unknown })[BRAND] === true &&
    (code === undefined || (value as EntraToolError).code === code)
  );
}

/** Anything thrown, as an EntraToolError (unknown errors become E_INTERNAL, keeping the cause). */
export function toEntraToolError(value: unknown): EntraToolError {
  if (isEntraToolError(value)) return value;
  return new EntraToolError("E_INTERNAL", { cause: value });
}

/** The AbortError that `fetch` and our sleeps reject with, recognised without `instanceof DOMException`. */
export function isAbortError(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    "name" in value &&
    (value.name === "AbortError" || value.name === "TimeoutError")
  );
}
