/**
 * The `eventhubs` sink: Azure Event Hubs' REST "send batch events".
 *
 * `POST {base}/{hub}/messages?api-version=2014-01` with
 * `Content-Type: application/vnd.microsoft.servicebus.json` and a JSON array with one element per
 * message: `{"Body": "<the message as JSON text>", "UserProperties": {"topic": "<topic>"}}`. The
 * Body is a string (Event Hubs takes each element's Body as the event's bytes), so a consumer
 * reads exactly the JSON message the other sinks send; the topic as a property lets a consumer
 * route without parsing. 201 is the success answer (any 2xx is taken as one).
 *
 * `{base}`: `https://{namespace}.servicebus.windows.net` for a bare namespace name, `https://{host}`
 * for a host name, or a full URL as given (private endpoints, emulators, sovereign clouds).
 * The token is for `https://eventhubs.azure.net/.default` unless `scopes` says otherwise; the
 * identity needs the role "Azure Event Hubs Data Sender" on the hub or its namespace.
 *
 * Size: Event Hubs Standard takes at most 1 MB per batch. A message's JSON text grows when put in
 * a string (each `"` and `\` gains a backslash: at most twice its length) and each element adds
 * its envelope, so maxBatchBytes (counted by the runner on the messages' own JSON) is 400 000 and
 * a body is kept under 1 000 000 bytes (sendWithin splits a batch that still grows past it).
 * Bodies are not compressed: the REST endpoint does not document gzip.
 */
import { type Message, type SendOptions, wireMessage } from "../types.ts";
import { type HttpSinkDeps, RequestSink, sendWithin, trimSlash, utf8 } from "./http-common.ts";
import type { EventHubsSinkConfig } from "./http-schema.ts";

export const EVENTHUBS_API_VERSION = "2014-01";
export const EVENTHUBS_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json";
/** Under Event Hubs Standard's 1 MB (1 048 576 bytes) per batch, with room for the framing. */
export const EVENTHUBS_MAX_BODY_BYTES = 1_000_000;
export const EVENTHUBS_MAX_BATCH_BYTES = 400_000;
export const EVENTHUBS_MAX_BATCH_MESSAGES = 500;

/** A bare namespace name: letters, digits and hyphens (Azure: 6-50, starting with a letter). */
const BARE_NAME = /^[A-Za-z][A-Za-z0-9-]*$/;

/** The namespace's base URL, without a trailing slash. */
export function eventHubsBase(namespace: string): string {
  if (namespace.includes("://")) return trimSlash(namespace);
  if (BARE_NAME.test(namespace)) return `https://${namespace}.servicebus.windows.net`;
  return `https://${trimSlash(namespace)}`;
}

/** The body of a batch (see the file's comment). */
export function eventHubsBody(batch: readonly Message[]): Uint8Array<ArrayBuffer> {
  return utf8.encode(
    JSON.stringify(
      batch.map((message) => ({
        Body: JSON.stringify(wireMessage(message)),
        UserProperties: { topic: message.topic },
      })),
    ),
  );
}

export interface EventHubsSinkOptions extends HttpSinkDeps {
  readonly config: EventHubsSinkConfig;
}

export class EventHubsSink extends RequestSink {
  readonly name: string;
  readonly maxBatchMessages = EVENTHUBS_MAX_BATCH_MESSAGES;
  readonly maxBatchBytes = EVENTHUBS_MAX_BATCH_BYTES;
  readonly #url: string;
  readonly #scopes: readonly string[];

  constructor(options: EventHubsSinkOptions) {
    super(options);
    const { config } = options;
    const base = eventHubsBase(config.namespace);
    this.#url = `${base}/${encodeURIComponent(config.hub)}/messages?api-version=${EVENTHUBS_API_VERSION}`;
    this.#scopes = config.scopes;
    this.name = `eventhubs:${new URL(base).host}/${config.hub}`;
  }

  send(batch: readonly Message[], options: SendOptions): Promise<void> {
    return sendWithin(
      batch,
      EVENTHUBS_MAX_BODY_BYTES,
      eventHubsBody,
      (body) =>
        this.post(
          {
            url: this.#url,
            scopes: this.#scopes,
            contentType: EVENTHUBS_CONTENT_TYPE,
            body,
            gzipAboveBytes: undefined,
          },
          options,
        ),
      "Event Hubs",
    );
  }

  protected forbidden(): string {
    return 'the signed-in identity needs the role "Azure Event Hubs Data Sender" on the event hub or its namespace; the batch waits meanwhile';
  }
}
