import type { DestinationStream } from "pino";
import { describe, expect, test } from "vitest";
import { deferredLogger, humanDestination, type LoggerOptions, parseLevel } from "../../agent/core/log.ts";
import { createLogger } from "../../agent/pino-logger.ts";

const deferred = (options: LoggerOptions) => deferredLogger(options, createLogger);

function capture(): { lines: string[]; destination: DestinationStream } {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => void lines.push(line) } };
}

const SECRETS = {
  access_token: "AT-1",
  refresh_token: "RT-1",
  id_token: "ID-1",
  device_code: "DC-1",
  nested: { accessToken: "AT-2", refresh_token: "RT-2", headers: { authorization: "Bearer AT-3" } },
};

describe("logger", () => {
  test.each([
    ["createLogger", createLogger],
    ["deferredLogger", deferred],
  ])("%s never writes token material, at any depth we log", (_name, make) => {
    const { lines, destination } = capture();
    const logger = make({ level: "trace", destination });
    logger.info(SECRETS, "tokens received");
    logger.debug({ response: SECRETS }, "response");
    const text = lines.join("");
    for (const secret of ["AT-1", "RT-1", "ID-1", "DC-1", "AT-2", "RT-2"]) expect(text).not.toContain(secret);
    expect(text).toContain("[redacted]");
    expect(text).toContain("tokens received");
  });

  test("the user code is not a secret: it is meant to be shown", () => {
    const { lines, destination } = capture();
    createLogger({ level: "info", destination }).info({ userCode: "ABCD-EFGH" }, "device code issued");
    expect(lines.join("")).toContain("ABCD-EFGH");
  });

  test("deferredLogger writes nothing below its level and everything at or above it", () => {
    const { lines, destination } = capture();
    const logger = deferred({ level: "warn", destination });
    logger.debug("quiet");
    logger.info("quiet");
    expect(lines).toHaveLength(0);
    expect(logger.isLevelEnabled("info")).toBe(false);
    expect(logger.isLevelEnabled("error")).toBe(true);
    logger.warn({ path: "/x" }, "loud");
    logger.error("louder");
    expect(lines.map((l) => (JSON.parse(l) as { msg: string; level: string }).level)).toEqual([
      "warn",
      "error",
    ]);
  });

  test("deferredLogger children log with their bindings", () => {
    const { lines, destination } = capture();
    deferred({ level: "info", destination }).child({ component: "store" }).info("hello");
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({ component: "store", msg: "hello", level: "info" });
  });

  test("humanDestination turns JSON lines into one readable line", () => {
    const out: string[] = [];
    const logger = createLogger({ level: "warn", destination: humanDestination((t) => void out.push(t)) });
    logger.warn({ err: new Error("disk full") }, "cannot save");
    expect(out).toEqual(["entratool: warn: cannot save (disk full)\n"]);
  });

  test("parseLevel accepts pino levels and falls back otherwise", () => {
    expect(parseLevel("debug", "warn")).toBe("debug");
    expect(parseLevel("silent", "warn")).toBe("silent");
    expect(parseLevel("loud", "warn")).toBe("warn");
    expect(parseLevel(undefined, "info")).toBe("info");
  });
});
