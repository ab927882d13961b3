import type { Sink } from "../types.ts";
import { createHttpFamilySink } from "./http.ts";
import type { HttpSinkDeps } from "./http-common.ts";
import type { HttpFamilySinkConfig } from "./http-schema.ts";
import { MqttSink, type MqttSinkOptions } from "./mqtt.ts";
import type { MqttSinkConfig } from "./mqtt-schema.ts";

/** Any sink's parsed configuration (the configuration file's `sinks` entries). */
export type AnySinkConfig = MqttSinkConfig | HttpFamilySinkConfig;

/** Every seam any sink takes; each sink uses its part. */
export type AnySinkDeps = HttpSinkDeps & Pick<MqttSinkOptions, "state" | "health">;

/** The sink a configuration entry describes, built with its seams: one line per type. */
export function createSink(config: AnySinkConfig, _index: number, deps: AnySinkDeps): Sink {
  if (config.type === "mqtt") return new MqttSink({ ...deps, config });
  return createHttpFamilySink(config, deps);
}

/**
 * The same sink under another name: two sinks of one configuration that would share a name (two
 * HTTP sinks to one host) must not share a cursor in the outbox.
 */
export function renamed(sink: Sink, name: string): Sink {
  return {
    name,
    maxBatchMessages: sink.maxBatchMessages,
    maxBatchBytes: sink.maxBatchBytes,
    start: () => sink.start(),
    send: (batch, options) => sink.send(batch, options),
    connected: () => sink.connected(),
    ...(sink.onConnected
      ? { onConnected: (listener: () => void) => sink.onConnected?.(listener) ?? (() => {}) }
      : {}),
    stop: () => sink.stop(),
  };
}
