import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, test } from "vitest";
import { GOLDEN_CASES, GOLDEN_DIR, pixelDifference, render } from "../../../scripts/golden.ts";

/**
 * Every screen of the pixel displays and the LCD glass, rendered now through the drivers and their
 * simulators, against the golden PNG a person looked at. Compared as decoded pixels, not bytes.
 */
describe("golden images", () => {
  test("every PNG in test/display/golden is one the script generates, and each exists", () => {
    const committed = readdirSync(GOLDEN_DIR)
      .filter((name) => name.endsWith(".png"))
      .sort();
    const expected = GOLDEN_CASES.map((image) => basename(image.file)).sort();
    expect(committed).toEqual(expected);
  });

  test.each(GOLDEN_CASES.map((image) => [basename(image.file), image] as const))(
    "%s",
    async (name, image) => {
      const golden = readFileSync(join(GOLDEN_DIR, name));
      const difference = pixelDifference(golden, await render(image));
      expect(
        difference,
        `${name}: ${difference}. If the change is intended, run \`bun scripts/golden.ts\`, ` +
          "look at the new images yourself, and commit them only if they are right.",
      ).toBeUndefined();
    },
  );
});
