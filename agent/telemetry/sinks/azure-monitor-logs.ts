/**
 * The `azure-monitor-logs` sink: Azure Monitor's Logs Ingestion API, into a Log Analytics table
 * through a data collection rule (DCR).
 *
 * `POST {endpoint}/dataCollectionRules/{rule}/streams/{stream}?api-version=2023-01-01`, a JSON
 * array of records, gzipped above 1024 bytes; 204 is the success answer (any 2xx is taken as one).
 * `endpoint` is the DCR's logs ingestion endpoint or a data collection endpoint (DCE), `rule` the
 * DCR's immutable id (`dcr-…`), `stream` the stream it declares. The token is for
 * `https://monitor.azure.com//.default` unless `scopes` says otherwise (the double slash is
 * Azure's: the audience is `https://monitor.azure.com/`); the identity needs the role
 * "Monitoring Metrics Publisher" on the DCR.
 *
 * One record per message, the message flattened to columns:
 *
 *   { "TimeGenerated": "<ts>", "id": "<uuid>", "device": "…", "topic": "…", "data": <any JSON> }
 *
 * so the DCR's stream must declare these columns (a custom table `Telemetry_CL` with the same
 * columns and the transformation `source` takes them as they are):
 *
 *   "streamDeclarations": { "Custom-Telemetry": { "columns": [
 *     { "name": "TimeGenerated", "type": "datetime" }, { "name": "id", "type": "string" },
 *     { "name": "device", "type": "string" }, { "name": "topic", "type": "string" },
 *     { "name": "data", "type": "dynamic" } ] } }
 *
 * Size: the API takes at most 1 MB per call, compressed or not. A record is its message's JSON
 * with `"ts"` renamed `"TimeGenerated"` (11 bytes more), so maxBatchBytes (counted by the runner
 * on the messages' JSON) is 950 000 and a body of at most 500 records stays under 1 000 000
 * bytes before compression (sendWithin splits one that does not, and refuses a single record
 * over the limit without sending it). A 413 from the service is a "reject", 429 a "retry" after
 * its Retry-After.
 */
import type { Message, SendOptions } from "../types.ts";
import { type HttpSinkDeps, RequestSink, sendWithin, trimSlash, utf8 } from "./http-common.ts";
import type { AzureMonitorLogsSinkConfig } from "./http-schema.ts";

export const LOGS_API_VERSION = "2023-01-01";
/** The Logs Ingestion API's 1 MB per call, counted as 10^6 bytes to be safe either way. */
export const LOGS_MAX_BODY_BYTES = 1_000_000;
export const LOGS_MAX_BATCH_BYTES = 950_000;
export const LOGS_MAX_BATCH_MESSAGES = 500;
export const LOGS_GZIP_ABOVE_BYTES = 1024;

/** The records of a batch (see the file's comment). */
export function logsBody(batch: readonly Message[]): Uint8Array<ArrayBuffer> {
  return utf8.encode(
    JSON.stringify(
      batch.map((message) => ({
        TimeGenerated: message.ts,
        id: message.id,
        device: message.device,
        topic: message.topic,
        data: message.data,
      })),
    ),
  );
}

export interface AzureMonitorLogsSinkOptions extends HttpSinkDeps {
  readonly config: AzureMonitorLogsSinkConfig;
}

export class AzureMonitorLogsSink extends RequestSink {
  readonly name: string;
  readonly maxBatchMessages = LOGS_MAX_BATCH_MESSAGES;
  readonly maxBatchBytes = LOGS_MAX_BATCH_BYTES;
  readonly #url: string;
  readonly #scopes: readonly string[];

  constructor(options: AzureMonitorLogsSinkOptions) {
    super(options);
    const { config } = options;
    const rule = encodeURIComponent(config.rule);
    const stream = encodeURIComponent(config.stream);
    this.#url = `${trimSlash(config.endpoint)}/dataCollectionRules/${rule}/streams/${stream}?api-version=${LOGS_API_VERSION}`;
    this.#scopes = config.scopes;
    this.name = `azure-monitor-logs:${config.rule}/${config.stream}`;
  }

  send(batch: readonly Message[], options: SendOptions): Promise<void> {
    return sendWithin(
      batch,
      LOGS_MAX_BODY_BYTES,
      logsBody,
      (body) =>
        this.post(
          {
            url: this.#url,
            scopes: this.#scopes,
            contentType: "application/json",
            body,
            gzipAboveBytes: LOGS_GZIP_ABOVE_BYTES,
          },
          options,
        ),
      "the Logs Ingestion API",
    );
  }

  protected forbidden(): string {
    return 'the signed-in identity needs the role "Monitoring Metrics Publisher" on the data collection rule; the batch waits meanwhile';
  }
}
