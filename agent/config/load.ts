import * as v from "valibot";
import { EntraToolError } from "../core/errors.ts";
import { MAX_CONFIG_FILE_BYTES, readFileCapped } from "../core/files.ts";
import { parseJsonWithComments } from "../core/jsonc.ts";
import { formatIssues } from "../core/schema.ts";
import { type AgentConfig, AgentConfigSchema } from "./schema.ts";

export type ConfigValidation =
  | { readonly ok: true; readonly config: AgentConfig }
  | { readonly ok: false; readonly errors: readonly string[] };

/**
 * Checks a parsed configuration document: every problem at once, each starting with the JSON path
 * of the field it is about (`displays[1].address: must be …`), so that one edit fixes a whole file
 * instead of one error per run.
 */
export function validateConfig(input: unknown): ConfigValidation {
  const result = v.safeParse(AgentConfigSchema, input);
  if (result.success) return { ok: true, config: result.output };
  return { ok: false, errors: formatIssues(byDisplay(result.issues)) };
}

/**
 * The issues with those of each display together, in the order of the list: a resource claimed
 * twice is found after every display was checked, but reads best next to the display's other problems.
 */
function byDisplay<T extends v.BaseIssue<unknown>>(issues: readonly T[]): T[] {
  const index = (issue: T): number | undefined => {
    const [first, second] = issue.path ?? [];
    return first?.key === "displays" && typeof second?.key === "number" ? second.key : undefined;
  };
  const slots = issues.flatMap((issue, at) => (index(issue) === undefined ? [] : [at]));
  const sorted = slots.map((at) => issues[at] as T).sort((a, b) => (index(a) ?? 0) - (index(b) ?? 0));
  const out = [...issues];
  slots.forEach((at, i) => {
    out[at] = sorted[i] as T;
  });
  return out;
}

export interface LoadOptions {
  /** The file was not named by the user but is the default one: a missing file says so. */
  readonly isDefault?: boolean;
}

/**
 * Reads and validates the configuration file. Every failure is an E_CONFIG error whose one
 * sentence names the file, with all schema problems listed (and in `details.errors`). At most
 * 1 MiB is read, so `--config /dev/zero` fails at once.
 */
export async function loadConfig(file: string, options: LoadOptions = {}): Promise<AgentConfig> {
  let text: string;
  try {
    text = (await readFileCapped(file)).toString("utf8");
  } catch (error) {
    throw new EntraToolError("E_CONFIG", {
      message: `The configuration file ${file} ${unreadable(error, options)}`,
      cause: error,
      details: { file },
    });
  }
  let parsed: unknown;
  try {
    // A byte order mark (some Windows editors write one) is not JSON. Comments are allowed.
    parsed = parseJsonWithComments(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new EntraToolError("E_CONFIG", {
      message: `The configuration file ${file} is not valid JSON (${(error as Error).message}): fix it and try again.`,
      cause: error,
      details: { file },
    });
  }
  const checked = validateConfig(parsed);
  if (!checked.ok) {
    const count = checked.errors.length;
    throw new EntraToolError("E_CONFIG", {
      message: `The configuration file ${file} has ${count} ${count === 1 ? "error" : "errors"}: ${checked.errors.join("; ")}.`,
      details: { file, errors: checked.errors },
    });
  }
  return checked.config;
}

/** The rest of the sentence for a file that cannot be read. */
function unreadable(error: unknown, options: LoadOptions): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case "ENOENT":
      return options.isDefault
        ? "does not exist: create it (README, Displays), or name another with --config FILE."
        : "does not exist: check the --config path.";
    case "EACCES":
    case "EPERM":
      return "cannot be read (permission denied): let this user read it.";
    case "EISDIR":
      return "is a directory: name the file itself.";
    case "EFBIG":
      return `is larger than ${MAX_CONFIG_FILE_BYTES / 1024 / 1024} MiB: name the configuration file itself.`;
    default:
      return `cannot be read (${(error as Error).message}): check the --config path.`;
  }
}
