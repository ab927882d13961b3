import { EntraToolError } from "../core/errors.ts";
import type { CliContext } from "./context.ts";

/** Placeholder while the command is built. */
export async function provisionCommand(_ctx: CliContext, _argv: readonly string[]): Promise<number> {
  throw new EntraToolError("E_USAGE", { message: "entratool provision is not built yet." });
}
