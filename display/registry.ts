import type * as v from "valibot";
import { framebuffer } from "./drivers/framebuffer/index.ts";
import { hd44780 } from "./drivers/hd44780/index.ts";
import { leds } from "./drivers/leds/index.ts";
import { png } from "./drivers/png/index.ts";
import { ssd1306 } from "./drivers/ssd1306/index.ts";
import { ssd1680 } from "./drivers/ssd1680/index.ts";
import { terminal } from "./drivers/terminal/index.ts";
import type { Claim, DisplayEntry, DisplaySchema, OpenContext, Opened, Simulation } from "./types.ts";

/**
 * Every display type. A type is one folder, display/drivers/<type>/ (driver, layout, simulator,
 * its part of the configuration, and index.ts with its entry); adding one touches that folder and
 * this list. The order is the order of the configuration's `type` values in messages and help.
 */
export const REGISTRY = [hd44780, ssd1306, ssd1680, framebuffer, leds, terminal, png] as const;

type Entry = (typeof REGISTRY)[number];

/** One configured display: the entry of its type's schema output. */
export type DisplayConfig = Entry extends infer E
  ? E extends DisplayEntry<infer S, unknown>
    ? v.InferOutput<S>
    : never
  : never;

export type DisplayType = DisplayConfig["type"];

export const DISPLAY_TYPES: readonly DisplayType[] = REGISTRY.map((entry) => entry.type);

/** The types `display preview` draws. */
export const PREVIEW_TYPES: readonly DisplayType[] = REGISTRY.filter((entry) => entry.previewable).map(
  (entry) => entry.type,
);

/**
 * An entry seen through the union of every configuration. Each entry is only ever handed its own
 * configuration: callers look it up by the `type` of the configuration they hold.
 */
export interface AnyEntry {
  readonly type: DisplayType;
  readonly schema: DisplaySchema;
  where(config: DisplayConfig): string;
  claims(config: DisplayConfig): readonly Claim[];
  button?(config: DisplayConfig): string | undefined;
  readonly previewable: boolean;
  readonly tickMs?: number;
  open(config: DisplayConfig, context: OpenContext): Promise<Opened>;
  simulation(): Promise<Simulation<DisplayConfig, unknown>>;
}

const ENTRIES: ReadonlyMap<string, AnyEntry> = new Map(
  REGISTRY.map((entry): [string, AnyEntry] => [entry.type, entry]),
);

/** The entry of a type by name; undefined for a name that is none. */
export function entryFor(type: string): AnyEntry | undefined {
  return ENTRIES.get(type);
}

/** The entry of `config`'s type. */
export function entryOf(config: DisplayConfig): AnyEntry {
  const entry = ENTRIES.get(config.type);
  if (entry === undefined) throw new Error(`no display type ${config.type}`);
  return entry;
}
