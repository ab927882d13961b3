import type { LevelWithSilent } from "pino";
import { describe, expect, it } from "vitest";
import { EntraToolError } from "../../agent/core/errors.ts";
import { createLogger } from "../../agent/pino-logger.ts";

/** A logger at `level` whose lines are kept. */
function logAt(level: LevelWithSilent): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger({ level, destination: { write: (line: string) => void lines.push(line) } });
  return { lines, logger };
}

/** One error of each kind the CLI logs: ours with a cause, a plain one, and one with several inside. */
function errors(): Error[] {
  const cause = new Error("socket hang up");
  return [
    new EntraToolError("E_NETWORK", { cause }),
    new TypeError("fetch failed"),
    new AggregateError([new Error("first"), new Error("second")], "several"),
  ];
}

const STACK_FRAME = /\s+at \S/;

describe("stack traces in the log", () => {
  it.each(["warn", "info"] as const)("are left out at %s, the message and type stay", (level) => {
    const { lines, logger } = logAt(level);
    for (const err of errors()) {
      logger.error({ err, code: "E_X" }, "command failed");
      logger.warn({ err }, "state listener failed");
    }
    expect(lines).toHaveLength(6);
    for (const line of lines) {
      expect(line).not.toMatch(STACK_FRAME);
      expect(line).not.toContain('"stack"');
    }
    const first = JSON.parse(lines[0] ?? "{}");
    expect(first.err).toMatchObject({ type: "EntraToolError", code: "E_NETWORK" });
    expect(first.err.message).toContain("socket hang up");
    const aggregate = JSON.parse(lines[4] ?? "{}");
    expect(aggregate.err.aggregateErrors.map((e: { message: string }) => e.message)).toEqual([
      "first",
      "second",
    ]);
  });

  it.each(["debug", "trace"] as const)("are kept at %s", (level) => {
    const { lines, logger } = logAt(level);
    logger.error({ err: errors()[0] }, "command failed");
    const record = JSON.parse(lines[0] ?? "{}");
    expect(record.err.stack).toMatch(STACK_FRAME);
    expect(record.err.stack).toContain("socket hang up");
  });

  it("follows the level when it changes", () => {
    const { lines, logger } = logAt("warn");
    logger.level = "debug";
    logger.error({ err: new Error("later") }, "x");
    expect(JSON.parse(lines[0] ?? "{}").err.stack).toMatch(STACK_FRAME);
  });
});
