import { EntraToolError } from "../core/errors.ts";
import { validateProfile } from "../store/profiles.ts";
import type { Lock, Profile } from "../store/types.ts";
import {
  flag,
  type OptionSpec,
  outputFormat,
  type Parsed,
  parse,
  stringOption,
  stringsOption,
} from "./args.ts";
import type { CliContext } from "./context.ts";

export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";

export const CREATE_PROFILE_HELP = `Usage: entratool create-profile --name N --tenant-id T --client-id C [--scope S]...
                               [--authority-host URL] [--default-flow device-code]
                               [--expect-tenant T] [--expect-user U]...

Saves a profile: which app registration to sign in to, in which tenant, with which permissions.
On a terminal, missing values are asked for; without one, a missing flag is an error.

  --name N             profile name (letters, digits, '.', '_', '-')
  --tenant-id T        tenant GUID, a domain (contoso.onmicrosoft.com), organizations, common or consumers
  --client-id C        the app registration's application (client) id, a GUID
  --scope S            a delegated permission to request; repeat for more
  --authority-host URL default $ENTRATOOL_AUTHORITY_HOST, else ${DEFAULT_AUTHORITY_HOST}
                       (sovereign clouds: https://login.microsoftonline.us, https://login.chinacloudapi.cn)
  --default-flow F     device-code (the only flow)
  --expect-tenant T    accept only accounts of this tenant (its id, a GUID)
  --expect-user U      accept only this account (ada@contoso.com, any case) or anyone of a
                       domain (@contoso.com); repeat, or separate with spaces or commas
                       A sign-in by anyone else is refused.
`;

export const LIST_PROFILES_HELP = `Usage: entratool list-profiles [--output json]

Lists the profiles, one name a line (or a JSON array with --output json).
`;

export const DELETE_PROFILE_HELP = `Usage: entratool delete-profile --name N

Deletes the profile and every token saved for it.
`;

export const LOGOUT_HELP = `Usage: entratool logout [--profile P]

Removes the tokens saved for the profile (default: "default"); the profile itself stays.
`;

/**
 * Runs `change` holding the profile's lock, so that it cannot interleave with a sign-in or a
 * refresh in another process (which would write the removed tokens back when it finishes).
 */
async function underLock<T>(ctx: CliContext, profile: string, change: () => Promise<T>): Promise<T> {
  let lock: Lock;
  try {
    lock = await ctx.locks.acquire(profile, {
      signal: ctx.signal,
      onWait: () =>
        ctx.io.stderr.write(
          `Another entratool process is using profile '${profile}'; waiting for it to finish...\n`,
        ),
    });
  } catch (error) {
    if (ctx.signal.aborted) throw new EntraToolError("E_CANCELLED", { message: "Cancelled by user." });
    throw error;
  }
  try {
    return await change();
  } finally {
    await lock.release();
  }
}

/** Signs the profile out: its tokens removed under its lock. true when there were any. */
export function removeTokens(ctx: CliContext, profile: string): Promise<boolean> {
  return underLock(ctx, profile, () => ctx.tokens.remove(profile));
}

/** The profile named, or a usage error that says how to create it. */
export async function requireProfile(ctx: CliContext, name: string): Promise<Profile> {
  const profile = await ctx.profiles.get(name);
  if (!profile) {
    throw new EntraToolError("E_PROFILE_NOT_FOUND", {
      message: `Profile '${name}' does not exist. Create it with 'entratool create-profile --name ${name} --tenant-id <tenant> --client-id <app id>'.`,
    });
  }
  return profile;
}

interface Field {
  readonly flag: string;
  readonly key: "name" | "tenantId" | "clientId";
  readonly question: string;
}

const REQUIRED: readonly Field[] = [
  { flag: "name", key: "name", question: "Profile name" },
  {
    flag: "tenant-id",
    key: "tenantId",
    question: "Tenant ID (GUID, domain, organizations, common or consumers)",
  },
  { flag: "client-id", key: "clientId", question: "Client ID of the public client app registration (GUID)" },
];

/** Values known to be valid, so that a single answer can be checked on its own. */
const PLACEHOLDER = {
  name: "placeholder",
  tenantId: "organizations",
  clientId: "00000000-0000-0000-0000-000000000000",
  scopes: [] as string[],
  authorityHost: DEFAULT_AUTHORITY_HOST,
  defaultFlow: "device-code",
};

const FLAG_OF: Readonly<Record<string, string>> = {
  name: "--name",
  tenantId: "--tenant-id",
  clientId: "--client-id",
  scopes: "--scope",
  authorityHost: "--authority-host",
  defaultFlow: "--default-flow",
  expect: "--expect-tenant/--expect-user",
  "expect.tenantId": "--expect-tenant",
  "expect.users": "--expect-user",
};

/** Validation messages start with the field; on the command line the flag is what the user knows. */
function asFlags(errors: readonly string[]): string[] {
  return errors.map((error) => error.replace(/^([\w.]+)(?=[:[])/, (field) => FLAG_OF[field] ?? field));
}

/** `--expect-user` values: each may be a list separated by spaces or commas. */
function expectedUsers(parsed: Parsed): string[] | undefined {
  const values = parsed.values["expect-user"];
  if (values === undefined) return undefined;
  return (Array.isArray(values) ? values : [String(values)])
    .flatMap((value) => value.split(/[\s,]+/))
    .filter((value) => value.length > 0);
}

function errorsFor(candidate: Record<string, unknown>, key: string): string[] {
  const result = validateProfile(candidate);
  return result.ok ? [] : asFlags(result.errors.filter((error) => error.startsWith(key)));
}

export async function createProfileCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("create-profile", argv, {
    name: { type: "string" },
    "tenant-id": { type: "string" },
    "client-id": { type: "string" },
    scope: { type: "string", multiple: true },
    "authority-host": { type: "string" },
    "default-flow": { type: "string" },
    "expect-tenant": { type: "string" },
    "expect-user": { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  } satisfies OptionSpec);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(CREATE_PROFILE_HELP);
    return 0;
  }
  const candidate: Record<string, unknown> = {
    ...PLACEHOLDER,
    scopes: stringsOption(parsed, "scope"),
    authorityHost: (
      stringOption(parsed, "authority-host") ??
      (ctx.env.ENTRATOOL_AUTHORITY_HOST || DEFAULT_AUTHORITY_HOST)
    ).replace(/\/+$/, ""),
    defaultFlow: stringOption(parsed, "default-flow") ?? "device-code",
  };
  const expectTenant = stringOption(parsed, "expect-tenant");
  const expectUsers = expectedUsers(parsed);
  if (expectTenant !== undefined || expectUsers !== undefined) {
    candidate.expect = {
      ...(expectTenant === undefined ? {} : { tenantId: expectTenant }),
      ...(expectUsers === undefined ? {} : { users: expectUsers }),
    };
  }
  let asked = false;
  for (const field of REQUIRED) {
    const given = stringOption(parsed, field.flag);
    if (given !== undefined) {
      candidate[field.key] = given;
      continue;
    }
    if (!ctx.io.interactive) {
      throw new EntraToolError("E_USAGE", {
        message: `Missing --${field.flag} (there is no terminal to ask on). Run 'entratool create-profile --help'.`,
      });
    }
    asked = true;
    for (;;) {
      const answer = (await ctx.io.ask(`${field.question}: `))?.trim();
      if (answer === undefined) throw new EntraToolError("E_USAGE", { message: `Missing --${field.flag}.` });
      const problems = errorsFor({ ...candidate, [field.key]: answer }, field.key);
      if (problems.length === 0) {
        candidate[field.key] = answer;
        break;
      }
      ctx.io.stderr.write(`${problems.join("\n")}\n`);
    }
  }
  // Asked only in a conversation already under way: a full command line asks nothing.
  if (asked && parsed.values.scope === undefined) {
    const answer = await ctx.io.ask(
      "Scopes, space-separated (empty: https://graph.microsoft.com/.default): ",
    );
    candidate.scopes = (answer ?? "").split(/\s+/).filter((s) => s.length > 0);
  }
  const result = validateProfile(candidate);
  if (!result.ok) {
    throw new EntraToolError("E_CONFIG", {
      message: `Invalid profile: ${asFlags(result.errors).join("; ")}.`,
    });
  }
  await ctx.profiles.create(result.profile);
  ctx.io.stdout.write(`Profile '${result.profile.name}' created.\n`);
  return 0;
}

export async function listProfilesCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("list-profiles", argv, {
    output: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(LIST_PROFILES_HELP);
    return 0;
  }
  const format = outputFormat(parsed, ["text", "json"]);
  const profiles = await ctx.profiles.list();
  if (format === "json") {
    ctx.io.stdout.write(`${JSON.stringify(profiles)}\n`);
  } else {
    ctx.io.stdout.write(profiles.map((p) => `${p.name}\n`).join(""));
  }
  return 0;
}

export async function deleteProfileCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("delete-profile", argv, {
    name: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(DELETE_PROFILE_HELP);
    return 0;
  }
  const name = stringOption(parsed, "name");
  if (name === undefined)
    throw new EntraToolError("E_USAGE", { message: "Missing --name of the profile to delete." });
  await requireProfile(ctx, name);
  await underLock(ctx, name, async () => {
    await ctx.tokens.remove(name);
    await ctx.profiles.delete(name);
  });
  ctx.io.stdout.write(`Profile '${name}' deleted, with its saved tokens.\n`);
  return 0;
}

export async function logoutCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("logout", argv, {
    profile: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(LOGOUT_HELP);
    return 0;
  }
  const name = stringOption(parsed, "profile") ?? "default";
  await requireProfile(ctx, name);
  const removed = await removeTokens(ctx, name);
  ctx.io.stdout.write(
    removed
      ? `Signed out: tokens of profile '${name}' removed.\n`
      : `Profile '${name}' had no saved sign-in.\n`,
  );
  return 0;
}
