/**
 * The configuration of the HTTP-family sinks (valibot, as every configuration file: see
 * agent/core/schema.ts), with their defaults and the types the sinks take. The factory
 * (`createHttpFamilySink`) is in ./http.ts: this file is loaded with the configuration (by
 * `get-token --config` too) and imports no sink code.
 *
 * A sink's request carries a bearer token, so every URL must be https://, except to this machine
 * (127.0.0.0/8, ::1, localhost), where plain http:// cannot be read on the way (local relays,
 * emulators, tests). User names and passwords in URLs are refused: the configuration file is not
 * a place for secrets.
 */
import * as v from "valibot";
import { integerIn, must, strict } from "../../core/schema.ts";

export const HTTP_SINK_DEFAULTS = {
  format: "json",
  gzipAboveBytes: 1024,
  maxBatchMessages: 500,
  maxBatchBytes: 1024 * 1024,
} as const;
export const EVENTHUBS_SCOPES: readonly string[] = ["https://eventhubs.azure.net/.default"];
/** Azure's own spelling: the double slash makes the audience `https://monitor.azure.com/`. */
export const AZURE_MONITOR_SCOPES: readonly string[] = ["https://monitor.azure.com//.default"];

/** Whether `hostname` (as URL gives it) is this machine: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Whether `text` is a URL a token may be sent to (see the file's comment). */
export function isTokenSafeUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  if (url.username !== "" || url.password !== "" || url.hash !== "") return false;
  return url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname));
}

const URL_RULE =
  "an https:// URL (http:// only to 127.0.0.1, ::1 or localhost, as the request carries a token)";

function tokenSafeUrl(rule: string, description: string) {
  return v.pipe(v.string(must(rule)), v.check(isTokenSafeUrl, must(rule)), v.description(description));
}

const SCOPE_RULE = 'a scope without spaces, e.g. "api://telemetry/.default"';
const SCOPES_RULE = 'a non-empty list of scopes, e.g. ["api://telemetry/.default"]';

function scopes(description: string) {
  return v.pipe(
    v.array(v.pipe(v.string(must(SCOPE_RULE)), v.regex(/^\S+$/, must(SCOPE_RULE))), must(SCOPES_RULE)),
    v.minLength(1, must(SCOPES_RULE)),
    v.description(description),
  );
}

/** Headers the sink sets itself; the configuration may not replace them. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  "authorization",
  "content-type",
  "content-encoding",
  "content-length",
  "transfer-encoding",
  "idempotency-key",
  "host",
  "connection",
]);
const HEADER_NAME_RULE =
  "a header name (letters, digits, - and the like) other than Authorization, Content-Type, Content-Encoding, Content-Length, Transfer-Encoding, Idempotency-Key, Host, Connection";
const HEADER_VALUE_RULE = "a header value of printable ASCII";

const headerName = v.pipe(
  v.string(must(HEADER_NAME_RULE)),
  v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, must(HEADER_NAME_RULE)),
  v.check((name) => !RESERVED_HEADERS.has(name.toLowerCase()), must(HEADER_NAME_RULE)),
);
const headerValue = v.pipe(v.string(must(HEADER_VALUE_RULE)), v.regex(/^[ -~]*$/, must(HEADER_VALUE_RULE)));

const MIB = 1024 * 1024;

/** `{ "type": "http", "url": "https://…" }`: POSTs batches to a receiver of your own. */
export const HttpSinkSchema = strict(
  {
    type: v.pipe(
      v.literal("http"),
      v.description("POSTs each batch to a URL of your own with the board's bearer token."),
    ),
    url: tokenSafeUrl(URL_RULE, "Where batches are POSTed: https:// (http:// only to this machine)."),
    format: v.optional(
      v.pipe(
        v.picklist(["json", "ndjson"], must('"json" or "ndjson"')),
        v.description(
          '"json": a JSON array of messages; "ndjson": one message per line (application/x-ndjson).',
        ),
      ),
      HTTP_SINK_DEFAULTS.format,
    ),
    scopes: v.optional(
      scopes(
        "The scopes of the token sent; default: the profile's scopes (a receiver's own API scope is usual).",
      ),
    ),
    gzipAboveBytes: v.optional(
      v.pipe(
        integerIn(0, 64 * MIB, "a whole number of bytes 0-67108864"),
        v.description(
          "Bodies larger than this many bytes are sent gzipped (Content-Encoding: gzip); 0: always.",
        ),
      ),
      HTTP_SINK_DEFAULTS.gzipAboveBytes,
    ),
    headers: v.optional(
      v.pipe(
        v.record(headerName, headerValue, must("an object of header names and values")),
        v.description("Extra headers sent with every request. Not for secrets: this file is not secret."),
      ),
    ),
    maxBatchMessages: v.optional(
      v.pipe(integerIn(1, 10_000), v.description("Most messages in one request.")),
      HTTP_SINK_DEFAULTS.maxBatchMessages,
    ),
    maxBatchBytes: v.optional(
      v.pipe(
        integerIn(1024, 64 * MIB, "a whole number of bytes 1024-67108864"),
        v.description("Most bytes of messages (their JSON, before compression) in one request."),
      ),
      HTTP_SINK_DEFAULTS.maxBatchBytes,
    ),
  },
  { required: { type: '"http"', url: URL_RULE } },
);

const NAMESPACE_RULE =
  'an Event Hubs namespace name ("contoso-telemetry"), its host name, or an https:// URL (http:// only to 127.0.0.1, ::1 or localhost)';

function isNamespace(text: string): boolean {
  if (text.includes("://")) return isTokenSafeUrl(text);
  // A name (`contoso-telemetry`) or a host name (`contoso-telemetry.servicebus.windows.net`).
  return /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(text);
}

const HUB_RULE = "an event hub name: letters, digits, . _ - (starting and ending with a letter or digit)";

/** `{ "type": "eventhubs", "namespace": "…", "hub": "…" }`: Azure Event Hubs over REST. */
export const EventHubsSinkSchema = strict(
  {
    type: v.pipe(
      v.literal("eventhubs"),
      v.description("Sends batches to an Azure event hub (REST, with the board's Entra token)."),
    ),
    namespace: v.pipe(
      v.string(must(NAMESPACE_RULE)),
      v.check(isNamespace, must(NAMESPACE_RULE)),
      v.description(
        "The namespace: a name means https://{name}.servicebus.windows.net; a full URL is for private endpoints, other clouds and emulators.",
      ),
    ),
    hub: v.pipe(
      v.string(must(HUB_RULE)),
      v.regex(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$/, must(HUB_RULE)),
      v.description("The event hub's name within the namespace."),
    ),
    scopes: v.optional(
      scopes('The scopes of the token sent; default ["https://eventhubs.azure.net/.default"].'),
      () => [...EVENTHUBS_SCOPES],
    ),
  },
  { required: { type: '"eventhubs"', namespace: NAMESPACE_RULE, hub: HUB_RULE } },
);

const RULE_RULE = 'a data collection rule\'s immutable id, "dcr-" and 32 hex digits';
const STREAM_RULE = 'a stream the data collection rule declares, e.g. "Custom-Telemetry"';

/** `{ "type": "azure-monitor-logs", "endpoint": …, "rule": …, "stream": … }`: the Logs Ingestion API. */
export const AzureMonitorLogsSinkSchema = strict(
  {
    type: v.pipe(
      v.literal("azure-monitor-logs"),
      v.description("Sends batches to a Log Analytics table through Azure Monitor's Logs Ingestion API."),
    ),
    endpoint: tokenSafeUrl(
      URL_RULE,
      "The data collection rule's logs ingestion endpoint or a data collection endpoint: https://….ingest.monitor.azure.com.",
    ),
    rule: v.pipe(
      v.string(must(RULE_RULE)),
      v.regex(/^dcr-[0-9a-fA-F]{32}$/, must(RULE_RULE)),
      v.description(
        "The data collection rule's immutable id (its overview page, or JSON view: immutableId).",
      ),
    ),
    stream: v.pipe(
      v.string(must(STREAM_RULE)),
      v.regex(/^(Custom|Microsoft)-[A-Za-z0-9_-]{1,200}$/, must(STREAM_RULE)),
      v.description(
        "The stream, declared in the rule with the columns TimeGenerated (datetime), id, device, topic (string), data (dynamic).",
      ),
    ),
    scopes: v.optional(
      scopes('The scopes of the token sent; default ["https://monitor.azure.com//.default"].'),
      () => [...AZURE_MONITOR_SCOPES],
    ),
  },
  { required: { type: '"azure-monitor-logs"', endpoint: URL_RULE, rule: RULE_RULE, stream: STREAM_RULE } },
);

/** The three schemas, for the configuration's sink variant (keyed on `type`). */
export const HTTP_FAMILY_SINK_SCHEMAS = [
  HttpSinkSchema,
  EventHubsSinkSchema,
  AzureMonitorLogsSinkSchema,
] as const;

export type HttpSinkConfig = v.InferOutput<typeof HttpSinkSchema>;
export type EventHubsSinkConfig = v.InferOutput<typeof EventHubsSinkSchema>;
export type AzureMonitorLogsSinkConfig = v.InferOutput<typeof AzureMonitorLogsSinkSchema>;
/** A parsed HTTP-family sink configuration. */
export type HttpFamilySinkConfig = HttpSinkConfig | EventHubsSinkConfig | AzureMonitorLogsSinkConfig;
