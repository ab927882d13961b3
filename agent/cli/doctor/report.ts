import { safeLine } from "../../core/text.ts";

/**
 * The doctor's report: sections of findings, each ok, warn or fail with one sentence (and the
 * command that fixes it), as plain text to paste into a bug report or as JSON for scripts.
 */

export type Status = "ok" | "warn" | "fail";

export interface Finding {
  /** Stable, for scripts: `board.model`, `group.i2c`, `device./dev/i2c-1`. */
  readonly id: string;
  readonly status: Status;
  readonly message: string;
  /** What to do about it, when there is something to do. */
  readonly fix?: string;
}

export interface Section {
  readonly id: string;
  readonly title: string;
  readonly findings: readonly Finding[];
}

export interface Summary {
  readonly ok: number;
  readonly warn: number;
  readonly fail: number;
  /** The worst status of all. */
  readonly result: Status;
}

export interface Report {
  readonly entratool: string;
  /** When it was made, ISO 8601. */
  readonly time: string;
  /** What the report is about, in one line: the board, or that it is not a Raspberry Pi. */
  readonly machine: string;
  readonly raspberryPi: boolean;
  /** Machine-readable facts (board, kernel, devices…) for scripts; the sections say the same in words. */
  readonly facts: Readonly<Record<string, unknown>>;
  readonly sections: readonly Section[];
  readonly summary: Summary;
}

export function summarise(sections: readonly Section[]): Summary {
  const count = { ok: 0, warn: 0, fail: 0 };
  for (const section of sections) for (const finding of section.findings) count[finding.status] += 1;
  return { ...count, result: count.fail > 0 ? "fail" : count.warn > 0 ? "warn" : "ok" };
}

/**
 * A URL as a report may show it: scheme, host, port and path. The user name and password (an MQTT
 * broker's), the query (a SAS signature, an API key) and the fragment are dropped. Text that is not
 * a URL is not shown at all: it might be the secret itself.
 */
export function safeUrl(text: string): string {
  try {
    const url = new URL(text);
    return `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`;
  } catch {
    return "(not a URL)";
  }
}

const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s"'<>`]+)/gi;
/** A JSON Web Token (an access or ID token): three base64url parts, the first an encoded `{"`. */
const JWT_IN_TEXT = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g;
/** `key=…`, `sig=…`, `"password": "…"` and the like, as a message may quote a bad value. */
const SECRET_PAIR =
  /\b(password|passwd|secret|token|key|sig|signature|authorization)(=|"\s*:\s*")[^\s"',;&]+/gi;
const BEARER = /\bBearer\s+[A-Za-z0-9._~+/-]+=*/g;

/**
 * Every sentence of the report passes here: messages quote files and values, and a configuration
 * may hold credentials in a sink's URL or a header. URLs lose their user info, query and fragment
 * (by their text: a URL quoted as an example, "mqtt://host:port", need not parse), tokens and
 * `key=value` secrets are replaced, and control characters go (a report is pasted as plain text).
 */
export function redact(text: string): string {
  return safeLine(
    text
      .replace(URL_IN_TEXT, (_url, scheme: string, rest: string) => {
        const kept = /[.,;:)\]]+$/.exec(rest)?.[0] ?? "";
        const body = rest.slice(0, rest.length - kept.length);
        const head = body.replace(/[?#].*$/, "");
        // Everything up to the last @ may be user info: a password may hold a / as well.
        return `${scheme}${head.slice(head.lastIndexOf("@") + 1)}${kept}`;
      })
      .replace(JWT_IN_TEXT, "[token removed]")
      .replace(BEARER, "Bearer [removed]")
      .replace(SECRET_PAIR, (_match, name: string, separator: string) => `${name}${separator}[removed]`),
  );
}

/** Every finding's sentences redacted: what leaves the doctor. */
export function redactSections(sections: readonly Section[]): Section[] {
  return sections.map((section) => ({
    ...section,
    findings: section.findings.map((finding) => ({
      ...finding,
      message: redact(finding.message),
      ...(finding.fix === undefined ? {} : { fix: redact(finding.fix) }),
    })),
  }));
}

/**
 * The plain-text report: a header, one block per section with one finding a line (status first,
 * padded, so that `grep '^ *fail'` finds the problems), and the summary last.
 */
export function formatText(report: Report): string {
  const lines = [`entratool doctor: entratool ${report.entratool}, ${report.time}`, report.machine, ""];
  for (const section of report.sections) {
    lines.push(`${section.title}`);
    for (const finding of section.findings) {
      const fix = finding.fix === undefined ? "" : `; fix: ${finding.fix}`;
      lines.push(`  ${finding.status.padEnd(4)}  ${finding.message}${fix}`);
    }
    lines.push("");
  }
  const { ok, warn, fail, result } = report.summary;
  lines.push(
    `Summary: ${result}: ${fail} failed, ${warn} ${warn === 1 ? "warning" : "warnings"}, ${ok} ok` +
      (report.raspberryPi ? "." : " (not a Raspberry Pi)."),
  );
  return `${lines.join("\n")}\n`;
}
