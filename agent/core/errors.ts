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
  display: 12,
  /** The agent: none runs, or it refused a request (`send`, `status`, `get-token` over its socket). */
  agent: 13,
  /** First-boot provisioning (`entratool provision`): a step on the system failed. */
  provision: 14,
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
  E_AUTHORITY: {
    exit: ExitCode.appRegistration,
    message:
      "The identity provider did not answer as an OpenID provider with the device code flow. Check --authority-host and --tenant-id in the profile.",
  },
  E_REDIRECT: {
    exit: ExitCode.appRegistration,
    message:
      "The identity provider answered with a redirect, and entratool follows no redirects from it (so that no secret leaves for another host or scheme): check --authority-host and any proxy.",
  },
  E_SIGN_IN_REQUIRED: {
    exit: ExitCode.signInRequired,
    message: "A new sign-in is needed. Run 'entratool get-token --flow device-code' to sign in again.",
  },
  E_SIGNED_OUT: {
    exit: ExitCode.signInRequired,
    message: "Signed out: the saved sign-in was removed. Run the command again to sign in.",
  },
  E_WRONG_ACCOUNT: {
    exit: ExitCode.signInRequired,
    message:
      "The account that signed in is not one this profile accepts; its tokens were removed. Sign in again with an account the profile expects.",
  },
  E_CODE_LOST: {
    exit: ExitCode.signInRequired,
    message: "The sign-in was approved, but its answer was lost on the network; a new code is needed.",
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
  E_OUTPUT: {
    exit: ExitCode.internal,
    message: "Cannot write the output: check where stdout goes (a full disk, a closed file).",
  },
  E_INTERNAL: {
    exit: ExitCode.internal,
    message: "An unexpected error occurred. Run with ENTRATOOL_LOG_LEVEL=debug and report the log.",
  },

  // The agent (entratool agent) and its clients (send, status, get-token over the socket).
  E_AGENT_NOT_RUNNING: {
    exit: ExitCode.agent,
    message: "No entratool agent is running: start it (systemctl start entratool-agent, or entratool agent).",
  },
  E_AGENT_RUNNING: {
    exit: ExitCode.agent,
    message: "Another entratool agent already runs with this state directory: stop it first.",
  },
  E_AGENT_REFUSED: {
    exit: ExitCode.agent,
    message: "The entratool agent refused the request: see its log (journalctl -u entratool-agent).",
  },
  E_SOCKET: {
    exit: ExitCode.agent,
    message:
      "Cannot talk to the entratool agent over its socket: check that this user may use it (group entratool).",
  },
  E_PAYLOAD: {
    exit: ExitCode.usage,
    message: "The message is not valid JSON: send one JSON value, or one per line (NDJSON) on stdin.",
  },
  // First-boot provisioning from the boot partition (entratool provision).
  E_PROVISION_FILE: {
    exit: ExitCode.usage,
    message: "The provisioning file (entratool.json on the boot partition) is invalid: fix it and reboot.",
  },
  E_PROVISION: {
    exit: ExitCode.provision,
    message: "Provisioning failed: see 'journalctl -u entratool-provision', fix the cause and reboot.",
  },
  E_OUTBOX: {
    exit: ExitCode.store,
    message: "Cannot write the outbox: check the free space and permissions of the state directory.",
  },

  // Displays, LEDs and the button: a failing display is reported and the others (and the sign-in)
  // go on, so these reach an exit code only from the `display` commands.
  E_DISPLAY_CONFIG: {
    exit: ExitCode.display,
    message: "The display settings cannot describe a real module.",
  },
  E_DISPLAY_WRITE: {
    exit: ExitCode.display,
    message: "Writing to the display failed: check its wiring and power.",
  },
  E_DISPLAY_BUSY: {
    exit: ExitCode.display,
    message: "The e-ink panel stayed busy: check its BUSY and RST wiring and its power.",
  },
  E_FB_ABSENT: {
    exit: ExitCode.display,
    message: "No such framebuffer: connect the HDMI display before boot, or check the KMS driver.",
  },
  E_FB_PERMISSION: {
    exit: ExitCode.display,
    message: "Permission denied on the framebuffer: add the user to group video and log in again.",
  },
  E_FB_FORMAT: { exit: ExitCode.display, message: "The framebuffer has a format this driver does not draw." },
  E_FB_WRITE: { exit: ExitCode.display, message: "Writing to the framebuffer failed." },
  E_LED_WRITE: {
    exit: ExitCode.display,
    message: "Could not set a GPIO line of the LEDs: check that no other program uses it.",
  },
  E_BUTTON_CONFIG: { exit: ExitCode.display, message: "The sign-in button's timings are invalid." },
  E_PREVIEW: { exit: ExitCode.usage, message: "The preview cannot be drawn with these options." },

  // The kernel buses (/dev/i2c-N, /dev/spidevB.C, the GPIO character device, sysfs GPIO).
  E_BUS_UNAVAILABLE: {
    exit: ExitCode.display,
    message: "The C library cannot be loaded for device access: entratool needs Bun on Linux with glibc.",
  },
  E_I2C_NOT_ENABLED: {
    exit: ExitCode.display,
    message:
      "I2C is not enabled: run 'sudo raspi-config nonint do_i2c 0' (Interface Options → I2C) and reboot.",
  },
  E_SPI_NOT_ENABLED: {
    exit: ExitCode.display,
    message:
      "SPI is not enabled: run 'sudo raspi-config nonint do_spi 0' (Interface Options → SPI) and reboot.",
  },
  E_GPIO_NOT_AVAILABLE: {
    exit: ExitCode.display,
    message:
      "No GPIO character device (/dev/gpiochip*) was found: run on the board itself, or pass /dev/gpiochip* into the container.",
  },
  E_BUS_PERMISSION: {
    exit: ExitCode.display,
    message:
      "Permission denied on the device: add the user to its group (i2c, spi or gpio) and log in again.",
  },
  E_I2C_NO_DEVICE: {
    exit: ExitCode.display,
    message:
      "No device answers at that address: check the wiring, or find the address with 'i2cdetect -y 1'.",
  },
  E_I2C_ADDRESS_BUSY: {
    exit: ExitCode.display,
    message:
      "A kernel driver already owns that I2C address: unload the driver (or remove its dtoverlay) first.",
  },
  E_GPIO_LINE_BUSY: {
    exit: ExitCode.display,
    message: "The GPIO line is already in use: stop the program that holds it or choose another pin.",
  },
  E_GPIO_LINE_NOT_FOUND: {
    exit: ExitCode.display,
    message: "No GPIO line has that name: list the lines with 'gpioinfo' and use a name shown there.",
  },
  E_GPIO_CHIP_NOT_FOUND: {
    exit: ExitCode.display,
    message: "No GPIO chip has that label: list the chips with 'gpiodetect'.",
  },
  E_BUS_UNSUPPORTED: {
    exit: ExitCode.display,
    message: "The kernel does not support this operation on the device: this needs Linux 5.10 or later.",
  },
  E_BUS_ARGUMENT: {
    exit: ExitCode.display,
    message: "Invalid bus setting: check the display configuration.",
  },
  E_BUS_IO: {
    exit: ExitCode.display,
    message: "Input/output error on the bus: check the wiring and the power of the device.",
  },
  E_BUS_CLOSED: {
    exit: ExitCode.internal,
    message: "The bus was already closed: this is a bug in entratool, please report it.",
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
 * class, so `instanceof` would miss an error made in another one. Subclasses (BusError, the display
 * drivers' errors) narrow `code` to their part of the catalogue and may add fields.
 */
const BRAND = Symbol.for("entratool.EntraToolError");

export class EntraToolError extends Error {
  readonly [BRAND] = true;
  override readonly name: string = "EntraToolError";
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

/** The `code` of a system error ("ENOENT", "EPIPE"…, as Node and Bun set it), or undefined. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { code } = error as { code?: unknown };
  return typeof code === "string" && code !== "" ? code : undefined;
}
