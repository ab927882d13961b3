import { safeLine } from "./text.ts";

/**
 * Small HTTP helpers shared by the identity provider's network client (agent/auth/network.ts) and
 * the telemetry sinks (agent/telemetry/sinks/http-common.ts).
 */

/** Retry-After as seconds or an HTTP date, in ms from `now`; undefined when absent or invalid. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * A URL as a sentence shows it: origin and path (no query: msal-node puts its correlation id
 * there, and a sink's may hold a key), control characters removed, at most 200 characters.
 */
export function shownUrl(url: string): string {
  let shown = url;
  try {
    const parsed = new URL(url);
    shown = `${parsed.origin}${parsed.pathname}`;
  } catch {
    // Not a URL (a hostile Location header): shown as it is, made safe below.
  }
  const line = safeLine(shown);
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
