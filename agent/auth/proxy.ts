import type { Env } from "../core/paths.ts";

/**
 * The proxy to use for `url`, from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (either case), unless
 * NO_PROXY matches. NO_PROXY follows curl: comma or space separated; `*` matches everything; an
 * entry matches the host itself and its subdomains (a leading `.` or `*.` is ignored); an entry
 * with `:port` matches only that port; IPv6 literals may be bracketed. CIDR ranges are not
 * supported (list addresses instead).
 */
export function proxyFor(url: URL, env: Env): string | undefined {
  const pick = (...names: string[]): string | undefined => {
    for (const name of names) {
      const value = env[name];
      if (value) return value;
    }
    return undefined;
  };
  const proxy =
    url.protocol === "https:"
      ? pick("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
      : pick("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy");
  if (!proxy) return undefined;
  const noProxy = pick("NO_PROXY", "no_proxy");
  return noProxy && noProxyMatches(url, noProxy) ? undefined : proxy;
}

function defaultPort(url: URL): string {
  return url.port || (url.protocol === "https:" ? "443" : "80");
}

export function noProxyMatches(url: URL, noProxy: string): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const port = defaultPort(url);
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === "*") return true;
    let entryHost = entry;
    let entryPort: string | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      entryHost = bracketed[1] ?? "";
      entryPort = bracketed[2];
    } else if (/^[^:]+:\d+$/.test(entry)) {
      const at = entry.lastIndexOf(":");
      entryHost = entry.slice(0, at);
      entryPort = entry.slice(at + 1);
    }
    entryHost = entryHost.replace(/^\*?\./, "");
    if (entryPort !== undefined && entryPort !== port) continue;
    if (host === entryHost || host.endsWith(`.${entryHost}`)) return true;
  }
  return false;
}
