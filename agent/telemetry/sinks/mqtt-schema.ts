import * as v from "valibot";
import { integerIn, must, pathItem, show, strict } from "../../core/schema.ts";

/**
 * `{ "type": "mqtt", … }`: the MQTT sink's part of the configuration file. Defaults live here, so
 * the parsed value has no holes (except the optional files and names). Rules that span fields (a
 * token never over plain TCP to another host, oauth2-jwt only with MQTT 5, mtls with its files)
 * are checked at the end, each at the field to change.
 *
 * Example:
 *   { "type": "mqtt", "url": "mqtts://broker.example.com:8883", "auth": "oauth2-jwt",
 *     "scopes": ["api://telemetry/.default"] }
 */

const URL_RULE = 'a URL "mqtt://host:port", "mqtts://…", "ws://…" or "wss://…" without user name or password';
const SCHEMES: ReadonlySet<string> = new Set(["mqtt:", "mqtts:", "ws:", "wss:"]);

function brokerUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    if (!SCHEMES.has(url.protocol) || url.hostname === "") return undefined;
    if (url.username !== "" || url.password !== "") return undefined;
    return url;
  } catch {
    return undefined;
  }
}

/** Whether a URL's host is this machine (a secret may travel to it without TLS). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}

/** Whether the URL's scheme encrypts (mqtts:, wss:). */
export function isTlsUrl(url: string): boolean {
  return /^(mqtts|wss):/i.test(url);
}

const TOPIC_RULE = "a topic without the wildcards + and #";
const topicTemplate = (description: string) =>
  v.pipe(
    v.string(must(TOPIC_RULE)),
    v.minLength(1, must(TOPIC_RULE)),
    v.check((text) => !/[+#]/.test(text) && !text.includes("\0"), must(TOPIC_RULE)),
    v.description(description),
  );

const FILE_RULE = "a file path";
const file = (description: string) =>
  v.pipe(v.string(must(FILE_RULE)), v.minLength(1, must(FILE_RULE)), v.description(description));

const SCOPES_RULE = "a non-empty list of scopes";

const MqttSinkObject = strict(
  {
    type: v.pipe(v.literal("mqtt", must('"mqtt"')), v.description("Telemetry to an MQTT broker.")),
    url: v.pipe(
      v.string(must(URL_RULE)),
      v.regex(/^(mqtts?|wss?):\/\/[^/]/, must(URL_RULE)),
      v.check((text) => brokerUrl(text) !== undefined, must(URL_RULE)),
      v.description(
        "The broker: mqtt://host:1883, mqtts://host:8883 (TLS), ws://host/mqtt or wss://host/mqtt (WebSocket).",
      ),
    ),
    auth: v.optional(
      v.pipe(
        v.picklist(["token", "oauth2-jwt", "mtls", "none"], must('"token", "oauth2-jwt", "mtls" or "none"')),
        v.description(
          "How the device proves who it is: token (the access token as the MQTT password), oauth2-jwt (MQTT 5 enhanced authentication with the access token), mtls (a client certificate) or none.",
        ),
      ),
      "token",
    ),
    username: v.optional(
      v.pipe(
        v.string(must("a user name")),
        v.minLength(1, must("a user name")),
        v.description("The MQTT user name sent with the token (auth token). Default: the device id."),
      ),
    ),
    method: v.optional(
      v.pipe(
        v.string(must("an authentication method name")),
        v.minLength(1, must("an authentication method name")),
        v.description("The MQTT 5 authentication method (auth oauth2-jwt)."),
      ),
      "OAUTH2-JWT",
    ),
    topic: v.optional(
      topicTemplate("Where each message goes; {device} is the device id and {topic} the message's topic."),
      "entratool/{device}/{topic}",
    ),
    stateTopic: v.optional(
      topicTemplate('The retained state: "online", "awaiting-sign-in", or "offline" (also the Last Will).'),
      "entratool/{device}/state",
    ),
    healthTopic: v.optional(
      topicTemplate("Where the periodic health message goes (JSON, not retained)."),
      "entratool/{device}/health",
    ),
    healthIntervalSeconds: v.optional(
      v.pipe(integerIn(1, 86_400), v.description("Seconds between health messages.")),
      60,
    ),
    protocolVersion: v.optional(
      v.pipe(
        v.picklist([4, 5], must("4 (MQTT 3.1.1) or 5 (MQTT 5)")),
        v.description("4 for MQTT 3.1.1, 5 for MQTT 5."),
      ),
      5,
    ),
    clientId: v.optional(
      v.pipe(
        v.string(must("a client id")),
        v.minLength(1, must("a client id")),
        v.description("The MQTT client id; {device} is the device id."),
      ),
      "entratool-{device}",
    ),
    ca: v.optional(file("PEM file of the CA certificates the broker's certificate is checked against.")),
    cert: v.optional(file("PEM file of the client certificate (auth mtls).")),
    key: v.optional(file("PEM file of the client certificate's private key (auth mtls).")),
    keepaliveSeconds: v.optional(
      v.pipe(integerIn(5, 65_535), v.description("Seconds between keep-alive pings.")),
      30,
    ),
    scopes: v.optional(
      v.pipe(
        v.array(v.pipe(v.string(must("a scope")), v.minLength(1, must("a scope"))), must(SCOPES_RULE)),
        v.minLength(1, must(SCOPES_RULE)),
        v.description("The scopes of the access token; default: the agent's scopes."),
      ),
    ),
    maxBatchMessages: v.optional(
      v.pipe(integerIn(1, 10_000), v.description("Most messages published in one batch.")),
      100,
    ),
  },
  { what: 'an object { "type": "mqtt", "url": … }', required: { url: URL_RULE } },
);

type MqttSinkFields = v.InferOutput<typeof MqttSinkObject>;

/** The rules across fields, each reported at the field to change. */
const consistent = v.rawCheck<MqttSinkFields>(({ dataset, addIssue }) => {
  if (!dataset.typed) return;
  const config = dataset.value;
  const at = (key: keyof MqttSinkFields) => [pathItem(config, key, config[key])] as [v.IssuePathItem];
  const url = brokerUrl(config.url);
  const secret = config.auth === "token" || config.auth === "oauth2-jwt";
  if (url !== undefined && secret && !isTlsUrl(config.url) && !isLoopbackHost(url.hostname)) {
    addIssue({
      message: `must be mqtts:// or wss:// (found ${show(config.url)}): auth ${config.auth} sends the access token, which must not cross the network unencrypted`,
      path: at("url"),
    });
  }
  if (config.auth === "oauth2-jwt" && config.protocolVersion !== 5) {
    addIssue({
      message: `must be 5 for auth oauth2-jwt (found ${show(config.protocolVersion)}): enhanced authentication is MQTT 5`,
      path: at("protocolVersion"),
    });
  }
  if (config.auth === "mtls") {
    if (!isTlsUrl(config.url)) {
      addIssue({
        message: `must be mqtts:// or wss:// for auth mtls (found ${show(config.url)})`,
        path: at("url"),
      });
    }
    for (const key of ["cert", "key"] as const) {
      if (config[key] === undefined)
        addIssue({ message: `is required for auth mtls (${FILE_RULE})`, path: at(key) });
    }
  } else {
    for (const key of ["cert", "key"] as const) {
      if (config[key] !== undefined) addIssue({ message: "is only used with auth mtls", path: at(key) });
    }
  }
  if (config.username !== undefined && config.auth !== "token") {
    addIssue({ message: "is only used with auth token", path: at("username") });
  }
});

/** The MQTT sink's configuration (see the example above). */
export const MqttSinkSchema = v.pipe(MqttSinkObject, consistent);

export type MqttSinkConfig = v.InferOutput<typeof MqttSinkSchema>;
