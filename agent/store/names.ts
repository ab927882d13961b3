import { EntraToolError } from "../core/errors.ts";

/**
 * Profile (and lock) names become file names (`<name>.cache`, `<name>.lock`), so they are checked
 * before any path is built: letters, digits, `.`, `_`, `-`, 1 to 64 characters. The first character
 * must be a letter or digit, so that a name never makes a hidden file nor looks like a CLI option.
 * No `/` and no leading `.` means no path traversal.
 */
export const NAME_PATTERN: RegExp = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * A GUID in its usual 8-4-4-4-12 hex form, any case: what Entra ID uses for tenant and client ids.
 * Without the g or y flag, so `test` keeps no state (lastIndex) and the one instance can be shared.
 */
export const GUID: RegExp = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A DNS name with at least two labels and an alphabetic TLD, e.g. contoso.onmicrosoft.com. */
export const DOMAIN: RegExp = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

export const NAME_RULE =
  "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 'work' or 'lab-pi')";

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/** Throws E_CONFIG unless `name` is a valid profile/lock name. `what` names it in the message. */
export function assertValidName(name: string, what = "profile name"): void {
  if (!isValidName(name)) {
    throw new EntraToolError("E_CONFIG", {
      message: `Invalid ${what} ${JSON.stringify(name)}: use ${NAME_RULE}.`,
      details: { name },
    });
  }
}
