import { validateConfig } from "../../agent/config/load.ts";
import type { DisplayConfig } from "../../display/config.ts";

/** The displays of a configuration document's `displays`, checked as the agent checks them. */
export function displaysOf(displays: unknown[]): DisplayConfig[] {
  const checked = validateConfig({ version: 1, displays });
  if (!checked.ok) throw new Error(checked.errors.join("; "));
  return [...checked.config.displays];
}

/** Lets every queued callback run (a timer's continuation, a display's drawing). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
