import { DOMAIN, GUID } from "./names.ts";
import type { ProfileExpect } from "./types.ts";

/*
 * A profile's account binding (`expect`): which tenant and which users may sign in to it. The
 * sign-in session checks every account it signs in with `checkAccount` and refuses the others.
 */

const EXPECT_FIELDS = new Set(["tenantId", "users"]);
/** The part before the `@` of a username: anything but spaces and `@` (guests have `#EXT#`). */
const LOCAL_PART = /^[^\s@]+$/;
const USER_RULE = "must be a username such as ada@contoso.com, or @contoso.com for anyone of that domain";

export type ExpectValidation =
  | { readonly ok: true; readonly expect: ProfileExpect }
  | { readonly ok: false; readonly errors: readonly string[] };

/**
 * Checks an untrusted `expect` value (profiles.json, CLI flags). Every problem at once, each
 * starting with its path (`expect.users[1]: …`), as validateProfile reports them.
 */
export function validateExpect(input: unknown): ExpectValidation {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, errors: ["expect: must be an object with tenantId, users or both"] };
  }
  const record = input as Record<string, unknown>;
  const errors: string[] = [];
  const { tenantId, users } = record;
  if (tenantId === undefined && users === undefined) {
    errors.push("expect: must give tenantId, users or both");
  }
  if (tenantId !== undefined && (typeof tenantId !== "string" || !GUID.test(tenantId))) {
    errors.push("expect.tenantId: must be the tenant's id, a GUID");
  }
  if (users !== undefined) {
    if (!Array.isArray(users) || users.length === 0) {
      errors.push(`expect.users: must be a list of at least one entry; each ${USER_RULE}`);
    } else {
      users.forEach((user: unknown, index) => {
        if (typeof user !== "string" || !isUserRule(user))
          errors.push(`expect.users[${index}]: ${USER_RULE}`);
      });
    }
  }
  for (const key of Object.keys(record)) {
    if (!EXPECT_FIELDS.has(key)) errors.push(`expect.${key}: unknown field`);
  }
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    expect: {
      ...(tenantId === undefined ? {} : { tenantId: tenantId as string }),
      ...(users === undefined ? {} : { users: [...(users as string[])] }),
    },
  };
}

function isUserRule(rule: string): boolean {
  const at = rule.lastIndexOf("@");
  if (at < 0) return false;
  const local = rule.slice(0, at);
  return DOMAIN.test(rule.slice(at + 1)) && (local === "" || LOCAL_PART.test(local));
}

export type AccountCheck = { readonly ok: true } | { readonly ok: false; readonly expected: string };

/**
 * Whether `account` (as the identity provider signed it in) is one the profile accepts. No rule
 * accepts everyone. Usernames compare in any case; `@contoso.com` matches anyone whose username
 * ends in exactly that domain (not a subdomain of it); an empty username matches no user rule.
 * When refused, `expected` says who would be accepted, for a person: "ada@contoso.com or anyone
 * @contoso.com in tenant 72f988bf-…".
 */
export function checkAccount(
  expect: ProfileExpect | undefined,
  account: { readonly username: string; readonly tenantId: string },
): AccountCheck {
  if (expect === undefined) return { ok: true };
  const tenantOk =
    expect.tenantId === undefined || expect.tenantId.toLowerCase() === account.tenantId.trim().toLowerCase();
  const userOk = expect.users === undefined || expect.users.some((rule) => matches(rule, account.username));
  return tenantOk && userOk ? { ok: true } : { ok: false, expected: describeExpect(expect) };
}

function matches(rule: string, username: string): boolean {
  const user = username.trim().toLowerCase();
  const wanted = rule.toLowerCase();
  if (user === "") return false;
  return wanted.startsWith("@") ? user.endsWith(wanted) && user.length > wanted.length : user === wanted;
}

/** The rule as a person reads it. */
function describeExpect(expect: ProfileExpect): string {
  const who = (expect.users ?? []).map((rule) => (rule.startsWith("@") ? `anyone ${rule}` : rule));
  const users = who.length <= 1 ? (who[0] ?? "") : `${who.slice(0, -1).join(", ")} or ${who[who.length - 1]}`;
  if (expect.tenantId === undefined) return users;
  return users === "" ? `an account in tenant ${expect.tenantId}` : `${users} in tenant ${expect.tenantId}`;
}
