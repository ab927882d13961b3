import type { SignInDisplays } from "../../display/sign-in.ts";
import type { SessionState } from "../auth/session-state.ts";
import type { TokenResult } from "../auth/signin.ts";
import { EntraToolError, isEntraToolError } from "../core/errors.ts";
import { flag, type OptionSpec, outputFormat, parse, stringOption, stringsOption } from "./args.ts";
import type { CliContext } from "./context.ts";
import { agentAddresses, agentGetToken } from "./control-client.ts";
import { requireProfile } from "./profiles.ts";

export const GET_TOKEN_HELP = `Usage: entratool get-token [--flow device-code] [--profile P] [--scope S]... [--output json|raw]
                          [--force-refresh] [--timeout SECONDS]

Prints an access token for the profile. A valid or refreshable cached token is used without any
prompt; otherwise the device code flow runs: the URL and code appear on stderr, and a person signs
in on another device.

  --flow device-code   the sign-in flow (the only one; also the profile's default)
  --profile P          profile name (default: "default")
  --scope S            a delegated permission; repeat for more (default: the profile's scopes)
  --output json|raw    json: one JSON object; raw: the access token alone (default: a summary)
  --force-refresh      ignore the cached access token and redeem the refresh token
  --timeout SECONDS    give up after this long (default: until the code expires)
  --config FILE        also show the code on the displays configured in FILE ("displays" array)
`;

const OPTIONS: OptionSpec = {
  flow: { type: "string" },
  profile: { type: "string" },
  scope: { type: "string", multiple: true },
  output: { type: "string" },
  "force-refresh": { type: "boolean" },
  timeout: { type: "string" },
  config: { type: "string" },
  help: { type: "boolean", short: "h" },
};

const FLOWS = new Set(["device-code", "devicecode", "device_code"]);

export async function getTokenCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("get-token", argv, OPTIONS);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(GET_TOKEN_HELP);
    return 0;
  }
  const flow = stringOption(parsed, "flow");
  if (flow !== undefined && !FLOWS.has(flow)) {
    throw new EntraToolError("E_FLOW_UNSUPPORTED", {
      message: `The '${flow}' flow is not supported; entratool signs in with '--flow device-code'.`,
    });
  }
  const format = outputFormat(parsed, ["text", "json", "raw"]);
  const timeout = stringOption(parsed, "timeout");
  let timeoutMs: number | undefined;
  if (timeout !== undefined) {
    const seconds = Number(timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new EntraToolError("E_USAGE", {
        message: `--timeout takes a positive number of seconds (got '${timeout}').`,
      });
    }
    timeoutMs = seconds * 1000;
  }
  // Every way on (cache, refresh, sign-in) reads the tokens: their key is derived while the
  // profile is read, which a cached token would otherwise wait for one after the other.
  ctx.tokens.preload?.();
  const profile = await requireProfile(ctx, stringOption(parsed, "profile") ?? "default");

  // A running agent of this profile hands out its own token: no second sign-in, no second refresh.
  const scopes = stringsOption(parsed, "scope");
  const forceRefresh = flag(parsed, "force-refresh");
  const fromAgent = await tokenFromAgent(ctx, profile.name, scopes, forceRefresh);
  if (fromAgent !== undefined) {
    ctx.io.stdout.write(formatToken(fromAgent, format, ctx.clock.now()));
    return 0;
  }

  const session = ctx.openSession(profile);
  const configFile = stringOption(parsed, "config");
  const open = async (): Promise<SignInDisplays> =>
    (await ctx.loadDisplays()).openSignInDisplays({
      clock: ctx.clock,
      logger: ctx.logger,
      env: ctx.env,
      io: ctx.io,
      qr: ctx.qr,
      configFile,
    });
  // The displays show the states: the prompt on stderr (and on the controlling terminal when a
  // script captures stderr), plus those of --config. With --config they open at once (a broken
  // file is an error before anything else happens); without, at the first state worth showing: a
  // cached token needs no display module, and loading it costs start-up time. States that arrive
  // while it loads are shown in order once it is there.
  let displays: SignInDisplays | undefined;
  let opening: Promise<void> | undefined;
  const queued: SessionState[] = [];
  const attach = (opened: SignInDisplays): void => {
    displays = opened;
    // The button's policy is the session's: short press, a new code; long press, sign out.
    opened.onButton((action) => session.press(action));
    for (const state of queued.splice(0)) opened.onState(state);
  };
  if (configFile !== undefined) attach(await open());
  const unsubscribe = session.subscribe((state) => {
    if (displays !== undefined) {
      displays.onState(state);
      return;
    }
    if (opening === undefined) {
      if (!worthShowing(state)) return;
      opening = open().then(attach, (error: unknown) => {
        ctx.logger.error({ err: error }, "the sign-in prompt cannot be shown");
      });
    }
    queued.push(state);
  });
  let result: TokenResult;
  try {
    result = await session.getToken({
      scopes,
      forceRefresh,
      signal: ctx.signal,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  } finally {
    unsubscribe();
    await opening;
    // Takes the code off every display before the result (or the error) is printed.
    await displays?.close();
  }
  ctx.io.stdout.write(formatToken(result, format, ctx.clock.now()));
  await saveOrSay(ctx, profile.name, result);
  return 0;
}

/**
 * The running agent's token for this profile, or undefined when no agent runs (or it signs in
 * another profile, or is not signed in yet: then the store and the sign-in session take over, and
 * the profile's lock makes this wait for the agent's own sign-in rather than show a second code).
 */
async function tokenFromAgent(
  ctx: CliContext,
  profile: string,
  scopes: readonly string[],
  forceRefresh: boolean,
): Promise<TokenResult | undefined> {
  try {
    const answer = await agentGetToken(
      agentAddresses(ctx.paths),
      { profile, scopes, forceRefresh },
      { clock: ctx.clock, signal: ctx.signal },
    );
    return {
      profile: answer.profile ?? profile,
      accessToken: answer.accessToken,
      tokenType: answer.tokenType ?? "Bearer",
      expiresAt: answer.expiresAt,
      scopes: answer.scopes,
      account: answer.account,
      fromCache: answer.fromCache ?? true,
    };
  } catch (error) {
    if (isEntraToolError(error) && FALL_BACK.has(error.code)) {
      ctx.logger.debug({ code: error.code }, "no token from an agent; using the store");
      return undefined;
    }
    throw error;
  }
}

/** Answers from the agent after which get-token does the work itself. */
const FALL_BACK = new Set(["E_AGENT_NOT_RUNNING", "E_AGENT_REFUSED", "E_SIGN_IN_REQUIRED", "E_SOCKET"]);

/** Waits between the tries to save tokens that could not be saved (disk full), ms. */
export const SAVE_RETRY_DELAYS_MS: readonly number[] = [500, 1000, 2000, 4000];

/**
 * A refresh token is single-use: when the new one could not be saved (disk full), the token is
 * printed anyway, the save is tried again for a few seconds, and if it still fails the person is
 * told, in one sentence, what that means and what to do. (The agent keeps them in memory and
 * keeps trying.)
 */
async function saveOrSay(ctx: CliContext, profile: string, result: TokenResult): Promise<void> {
  if (!ctx.tokens.hasUnsaved(profile)) return;
  let failure: unknown;
  for (const delayMs of [0, ...SAVE_RETRY_DELAYS_MS]) {
    // Ctrl+C or SIGTERM ends the retries; the save's own failure is what gets said.
    if (
      delayMs > 0 &&
      !(await ctx.clock.sleep(delayMs, ctx.signal).then(
        () => true,
        () => false,
      ))
    )
      break;
    try {
      await ctx.tokens.flush(profile);
      return;
    } catch (error) {
      failure = error;
    }
  }
  const why = isEntraToolError(failure) ? failure.message : String(failure);
  const until = new Date(result.expiresAt).toISOString().replace("T", " ").slice(0, 16);
  ctx.io.stderr.write(
    `The new sign-in of profile '${profile}' could not be saved: ${why} The token printed works until ${until} UTC; after that a new sign-in is needed unless the save succeeds first.\n`,
  );
}

/** Whether a state shows something (a cached token, or one silently refreshed, shows nothing). */
function worthShowing(state: SessionState): boolean {
  return !["idle", "starting", "refreshing", "signed-in"].includes(state.kind);
}

export function formatToken(result: TokenResult, format: "text" | "json" | "raw", now: number): string {
  if (format === "raw") return `${result.accessToken}\n`;
  if (format === "json") {
    return `${JSON.stringify({
      access_token: result.accessToken,
      token_type: result.tokenType,
      expires_at: new Date(result.expiresAt).toISOString(),
      expires_in: Math.max(0, Math.floor((result.expiresAt - now) / 1000)),
      scopes: result.scopes,
      profile: result.profile,
      account: { username: result.account.username, tenant_id: result.account.tenantId },
      from_cache: result.fromCache,
    })}\n`;
  }
  const minutes = Math.max(0, Math.round((result.expiresAt - now) / 60_000));
  const expires = `${new Date(result.expiresAt).toISOString().replace("T", " ").slice(0, 16)} UTC (in ${minutes} min)`;
  const head = result.fromCache
    ? `✓ Using the saved sign-in of profile '${result.profile}'`
    : `✓ Authentication successful! Token saved to profile '${result.profile}'`;
  return `${head}\n  Account: ${result.account.username} (tenant ${result.account.tenantId})\n  Expires: ${expires}\n`;
}
