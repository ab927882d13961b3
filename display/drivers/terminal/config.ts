import * as v from "valibot";
import { strict } from "../../../agent/core/schema.ts";

/**
 * `{ "type": "terminal" }`: the device code prompt on stderr (and on the controlling terminal when
 * a script captures stderr). The CLI always has it; the list names it to give it to the agent.
 */
export const TerminalSchema = strict({
  type: v.pipe(v.literal("terminal"), v.description("The device code prompt on stderr.")),
});

export type TerminalConfig = v.InferOutput<typeof TerminalSchema>;
