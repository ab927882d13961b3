import { EntraToolError } from "../core/errors.ts";
import type { JsonValue } from "../telemetry/types.ts";
import { flag, type OptionSpec, outputFormat, parse, stringOption } from "./args.ts";
import type { CliContext } from "./context.ts";
import { agentAddresses, agentSend } from "./control-client.ts";

export const SEND_HELP = `Usage: entratool send --topic T [JSON] [--output json]

Hands telemetry to the running agent, which keeps it in its outbox until every sink has it.
One JSON value as the argument is one message; without it, standard input is read as NDJSON
(one JSON value per line, blank lines ignored), one message per line. Exits 0 only once the agent
has made every message durable; exits 13 when no agent runs, 2 when a payload is not JSON.

  --topic T        the messages' topic (in MQTT topics: {topic})
  --output json    print {"accepted": N, "ids": [...]} (default: nothing)
`;

const OPTIONS: OptionSpec = {
  topic: { type: "string" },
  output: { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** A topic goes into MQTT topic names: no wildcards, no control characters, bounded. */
function isTopic(topic: string): boolean {
  return topic.length >= 1 && topic.length <= 256 && !/[+#]/.test(topic) && ![...topic].some((c) => c < " ");
}

/** Standard input is read up to this many bytes (the agent takes at most 4 MiB per request). */
const MAX_STDIN_BYTES = 64 * 1024 * 1024;

export async function sendCommand(ctx: CliContext, argv: readonly string[]): Promise<number> {
  const parsed = parse("send", argv, OPTIONS, 1);
  if (flag(parsed, "help")) {
    ctx.io.stdout.write(SEND_HELP);
    return 0;
  }
  const format = outputFormat(parsed, ["text", "json"]);
  const topic = stringOption(parsed, "topic");
  if (topic === undefined) {
    throw new EntraToolError("E_USAGE", {
      message: "send needs --topic T. Run 'entratool send --help' for usage.",
    });
  }
  if (!isTopic(topic)) {
    throw new EntraToolError("E_USAGE", {
      message: `--topic must be 1 to 256 characters without + or # or control characters (got '${topic}').`,
    });
  }
  const [argument] = parsed.positionals;
  const values =
    argument === undefined ? parseNdjson(await readStdin(ctx)) : [parseJson(argument, "The message")];
  if (values.length === 0) {
    throw new EntraToolError("E_PAYLOAD", {
      message: "No message to send: give one JSON value as the argument, or NDJSON on standard input.",
    });
  }
  const result = await agentSend(
    agentAddresses(ctx.paths),
    values.map((data) => ({ topic, data })),
    { signal: ctx.signal, clock: ctx.clock },
  );
  if (format === "json") ctx.io.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

function parseJson(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new EntraToolError("E_PAYLOAD", {
      message: `${what} is not valid JSON (${(error as Error).message}): nothing was sent.`,
    });
  }
}

/** One JSON value per line; blank lines are skipped. Any bad line fails the whole input (nothing is sent). */
export function parseNdjson(text: string): JsonValue[] {
  const values: JsonValue[] = [];
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  lines.forEach((line, index) => {
    if (line.trim() === "") return;
    values.push(parseJson(line, `Line ${index + 1} of standard input`));
  });
  return values;
}

async function readStdin(ctx: CliContext): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of Bun.stdin.stream()) {
    total += chunk.byteLength;
    if (total > MAX_STDIN_BYTES) {
      throw new EntraToolError("E_PAYLOAD", {
        message: `Standard input is larger than ${MAX_STDIN_BYTES / 1024 / 1024} MiB: send it in parts.`,
      });
    }
    chunks.push(chunk);
    if (ctx.signal.aborted) throw new EntraToolError("E_CANCELLED");
  }
  return Buffer.concat(chunks).toString("utf8");
}
