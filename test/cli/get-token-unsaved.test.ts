import { describe, expect, it } from "vitest";
import { getTokenCommand } from "../../agent/cli/get-token.ts";
import { writeFileAtomic } from "../../agent/core/atomic.ts";
import { type World, worldPerTest } from "../auth/world.ts";
import { cliWorld } from "./cli-world.ts";

const start = worldPerTest();

/** A disk that is full for the next `failures` writes of the token file. */
function fullFor(failures: { left: number }) {
  return async (path: string, data: Uint8Array, mode: number): Promise<void> => {
    if (failures.left > 0) {
      failures.left -= 1;
      throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), {
        code: "ENOSPC",
        path,
      });
    }
    await writeFileAtomic(path, data, mode);
  };
}

/** Signed in once, normally; then a forced refresh is what the test runs. */
async function signedIn(w: World): Promise<void> {
  await w.service().getToken(w.profile(), {
    onState: (state) => {
      if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
    },
  });
}

describe("get-token when the refreshed tokens cannot be saved (disk full)", () => {
  it("prints the token, keeps trying the save, and is quiet once it succeeds", async () => {
    const w = await start();
    await signedIn(w);
    const failures = { left: 3 };
    const { ctx, stdout, stderr } = await cliWorld(w, {
      tokens: w.tokenStore({ writeFile: fullFor(failures) }),
    });
    expect(await getTokenCommand(ctx, ["--force-refresh", "--output", "json"])).toBe(0);
    const printed = JSON.parse(stdout.text) as { access_token: string; from_cache: boolean };
    expect(printed.from_cache).toBe(false);
    expect(failures.left).toBe(0);
    expect(stderr.text).toBe("");
    // The rotated refresh token is on disk: the next call needs no new sign-in.
    const [, current] = w.refreshTokens();
    expect(await w.storedCache()).toContain(current);
  });

  it("still prints the token when the disk stays full, and says in one sentence what that means", async () => {
    const w = await start();
    await signedIn(w);
    const failures = { left: Number.POSITIVE_INFINITY };
    const { ctx, stdout, stderr } = await cliWorld(w, {
      tokens: w.tokenStore({ writeFile: fullFor(failures) }),
    });
    expect(await getTokenCommand(ctx, ["--force-refresh", "--output", "raw"])).toBe(0);
    expect(stdout.text.trim().length).toBeGreaterThan(20);
    expect(stderr.text.trim().split("\n")).toHaveLength(1);
    expect(stderr.text).toMatch(
      /^The new sign-in of profile 'default' could not be saved: .*ENOSPC.*works until/,
    );
    expect(stderr.text).not.toContain(stdout.text.trim());
  });
});
