import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { validateConfig } from "../../agent/config/load.ts";

const README = readFileSync(join(import.meta.dirname, "..", "..", "README.md"), "utf8");

/** The README's configuration examples: the json and jsonc blocks that name the schema. */
function examples(): string[] {
  return [...README.matchAll(/```jsonc?\n([\s\S]*?)```/g)]
    .map((match) => match[1] ?? "")
    .filter((block) => block.includes('"$schema"'));
}

test("every configuration example in the README is valid as it stands", () => {
  const blocks = examples();
  expect(blocks.length).toBeGreaterThanOrEqual(2);
  for (const block of blocks) {
    // jsonc: comments after a value, to the end of the line.
    const json = block.replace(/(^|\s+)\/\/[^\n]*/g, "");
    const checked = validateConfig(JSON.parse(json));
    expect(checked, block).toMatchObject({ ok: true });
  }
});
