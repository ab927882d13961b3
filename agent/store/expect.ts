import * as v from "valibot";
import { formatIssues, must, strict } from "../core/schema.ts";
import { DOMAIN, GUID } from "./names.ts";
import type { ProfileExpect } from "./types.ts";

/*
 * A profile's account binding (`expect`): which tenant and which users may sign in to it. The
 * sign-in session checks every account it signs in with `checkAccount` and refuses the others.
 */

/** The part before the `@` of a username: anything but spaces and `@` (guests have `#EXT#`). */
const LOCAL_PART = /^[^\s@]+$/;
const USER_RULE = "a username such as ada@contoso.com, or @contoso.com for anyone of that domain";
const TENANT_RULE = "the tenant's id, a GUID";
const USERS_RULE = `a list of at least one entry, each ${USER_RULE}`;
const EXPECT_RULE = "an object with tenantId, users or both";

/** `expect` in a profile (profiles.json): valibot, like every configuration file. */
export const ExpectSchema = v.pipe(
  strict(
    {
      tenantId: v.optional(
        v.pipe(
          v.string(must(TENANT_RULE)),
          v.check((tenant) => GUID.test(tenant), must(TENANT_RULE)),
        ),
      ),
      users: v.optional(
        v.pipe(
          v.array(v.pipe(v.string(must(USER_RULE)), v.check(isUserRule, must(USER_RULE))), must(USERS_RULE)),
          v.minLength(1, must(USERS_RULE)),
        ),
      ),
    },
    { what: EXPECT_RULE },
  ),
  v.check(
    (expect) => expect.tenantId !== undefined || expect.users !== undefined,
    "must give tenantId, users or both",
  ),
);

export type ExpectValidation =
  | { readonly ok: true; readonly expect: ProfileExpect }
  | { readonly ok: false; readonly errors: readonly string[] };

/**
 * Checks an untrusted `expect` value (profiles.json, CLI flags). Every problem at once, each
 * starting with its path (`expect.users[1]: …`), as validateProfile reports them.
 */
export function validateExpect(input: unknown): ExpectValidation {
  const result = v.safeParse(ExpectSchema, input);
  if (!result.success) return { ok: false, errors: formatIssues(result.issues, "expect") };
  return { ok: true, expect: result.output };
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
