import type { SessionState } from "../auth/session-state.ts";
import type { AgentStatus } from "../service/agent.ts";
import { flag, type OptionSpec, outputFormat, parse } from "./args.ts";
import type { CliContext } from "./context.ts";
import { agentAddresses, agentStatus } from "./control-client.ts";

export const STATUS_HELP = `Usage: entratool status [--output json]

Asks the running agent how it is: the sign-in (and the code to enter, while one is shown), the
account and token expiry, the outbox (messages kept, dropped), and each sink (connected, last
success, lag, errors). Exits 13 when no agent runs.

  --output json   one JSON object (for scripts and fleet tools)
`;

const OPTIONS: OptionSpec = {
  output: { type: "string" },
  help: { type: "boolean", short: "h" },
};

export async function statusCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("status", argv, OPTIONS);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(STATUS_HELP);
    return 0;
  }
  const format = outputFormat(parsed, ["text", "json"]);
  const status = (await agentStatus(agentAddresses(ctx.paths), {
    signal: ctx.signal,
    clock: ctx.clock,
  })) as AgentStatus;
  ctx.io.stdout.write(
    format === "json" ? `${JSON.stringify(status)}\n` : formatStatus(status, ctx.clock.now()),
  );
  return 0;
}

const STATES: Readonly<Record<string, string>> = {
  idle: "starting",
  starting: "starting",
  "waiting-for-time": "waiting for network time (telemetry is still collected)",
  "waiting-for-lock": "waiting for another entratool process of this profile",
  refreshing: "refreshing the token",
  "sign-in-required": "sign-in needed",
  "code-issued": "waiting for sign-in",
  waiting: "waiting for sign-in",
  "signed-in": "signed in",
  "wrong-account": "signed in with the wrong account",
  "signed-out": "signed out",
  cancelled: "stopped",
  expired: "the code expired",
  "blocked-by-policy": "blocked by a Conditional Access policy",
  offline: "offline (the identity provider cannot be reached)",
  error: "error",
};

/** A sign-in state in a few words, for systemd's STATUS (`systemctl status` shows it). */
export function describeSignIn(state: SessionState): string {
  switch (state.kind) {
    case "code-issued":
    case "waiting":
      return `waiting for sign-in: code ${state.userCode} at ${state.verificationUri}`;
    case "signed-in":
      return `signed in as ${state.username}`;
    case "sign-in-required":
      return `sign-in needed: ${state.reason.message}`;
    case "wrong-account":
      return `signed in as ${state.username}, but this device expects ${state.expected}`;
    default:
      return STATES[state.kind] ?? state.kind;
  }
}

function ago(iso: string | undefined, now: number): string {
  if (iso === undefined) return "never";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The status as a person reads it: one fact per line. */
export function formatStatus(status: AgentStatus, now: number): string {
  const { signIn } = status;
  let sign = STATES[signIn.state] ?? signIn.state;
  if (signIn.code)
    sign += `: code ${signIn.code.userCode} at ${signIn.code.verificationUri} (expires ${signIn.code.expiresAt})`;
  else if (signIn.account) sign += ` as ${signIn.account}`;
  if (signIn.tokenExpiresAt && !signIn.code) sign += `, token until ${signIn.tokenExpiresAt}`;
  if (signIn.message && !signIn.code) sign += ` — ${signIn.message}`;
  const lines = [
    `Agent:    entratool ${status.version}, pid ${status.pid}, since ${status.startedAt}`,
    `Device:   ${status.device} (profile '${status.profile}')`,
    `Sign-in:  ${sign}`,
    `Outbox:   ${status.outbox.messages} messages (${bytes(status.outbox.bytes)}), ${status.outbox.dropped} dropped`,
  ];
  if (status.sinks.length === 0) lines.push("Sinks:    none configured");
  else lines.push("Sinks:");
  for (const sink of status.sinks) {
    const parts = [
      sink.connected ? "connected" : "not connected",
      sink.state,
      `last success ${ago(sink.lastSuccess, now)}`,
      `${sink.pending} pending`,
      `lag ${Math.round(sink.lagMs / 1000)} s`,
      `${sink.sent} sent`,
      `${sink.errors} errors`,
    ];
    if (sink.deadLettered > 0) parts.push(`${sink.deadLettered} dead letters`);
    lines.push(`  ${sink.name}: ${parts.join(", ")}`);
    if (sink.lastError && sink.state !== "ok") lines.push(`    last error: ${sink.lastError}`);
  }
  return `${lines.join("\n")}\n`;
}
