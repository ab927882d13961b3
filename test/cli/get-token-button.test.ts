import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SignInState } from "../../agent/auth/signin.ts";
import type { DisplayModule } from "../../agent/cli/context.ts";
import { getTokenCommand } from "../../agent/cli/get-token.ts";
import { EntraToolError } from "../../agent/core/errors.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import * as DisplayCli from "../../agent/display-cli.ts";
import type { ButtonAction } from "../../display/drivers/leds/button.ts";
import { type World, worldPerTest } from "../auth/world.ts";
import { cliWorld } from "./cli-world.ts";

const start = worldPerTest();

/**
 * get-token --config with a button, in-process: the real display module (the prompt on stderr),
 * except that its button is pressed by `react` when a state arrives; the sign-in itself is real,
 * against the emulator.
 */
async function withButton(
  w: World,
  react: (state: SignInState, press: (action: ButtonAction) => void) => void,
) {
  let listener: ((action: ButtonAction) => void) | undefined;
  const press = (action: ButtonAction): void => queueMicrotask(() => listener?.(action));
  const displays: DisplayModule = {
    displayCommand: DisplayCli.displayCommand,
    openSignInDisplays: async (options) => {
      // The displays get a clock of their own that nobody moves: their countdown ticker must not
      // move the sign-in's virtual time (and the button is the test's, not a GPIO line).
      const real = await DisplayCli.openSignInDisplays({
        ...options,
        configFile: undefined,
        clock: new VirtualClock(w.clock.now(), { auto: false }),
      });
      return {
        onState: (state) => {
          real.onState(state);
          react(state, press);
        },
        onButton: (l) => {
          listener = l;
          return () => undefined;
        },
        close: () => real.close(),
      };
    },
  };
  const { ctx, stdout, stderr } = await cliWorld(w, { loadDisplays: async () => displays });
  const tokens = ctx.tokens;
  const run = getTokenCommand(ctx, ["--config", join(w.dir, "config.json"), "--output", "json"]);
  return { run, stdout, stderr, tokens };
}

describe("the sign-in button during get-token --config", () => {
  it("a short press takes the code away and shows a new one; the new one signs in", async () => {
    const w = await start();
    const codes: string[] = [];
    const { run, stdout, stderr } = await withButton(w, (state, press) => {
      if (state.kind !== "code-issued") return;
      codes.push(state.userCode);
      if (codes.length === 1) press("new-code");
      else w.emulator.approve({ userCode: state.userCode });
    });
    expect(await run).toBe(0);
    expect(codes).toHaveLength(2);
    expect(codes[0]).not.toBe(codes[1]);
    expect(w.requestKinds().filter((kind) => kind === "devicecode")).toHaveLength(2);
    expect(stderr.text).toContain("A new code was asked for with the button.");
    expect(JSON.parse(stdout.text)).toMatchObject({ from_cache: false, profile: "default" });
  });

  it("a long press signs out: the attempt ends, the tokens are removed, and it says so", async () => {
    const w = await start();
    // Signed in first, then a forced refresh that the emulator refuses: a code is shown, and held.
    await w.service().getToken(w.profile(), {
      onState: (state) => {
        if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
      },
    });
    w.emulator.revokeRefreshTokens();
    w.clock.advance(3600 * 1000);
    const { run, tokens } = await withButton(w, (state, press) => {
      if (state.kind === "code-issued") press("sign-out");
    });
    const error = await run.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(EntraToolError);
    expect((error as EntraToolError).code).toBe("E_SIGNED_OUT");
    expect((error as EntraToolError).exitCode).toBe(9);
    expect((error as EntraToolError).message).toBe(
      "Signed out with the button: the saved sign-in of profile 'default' was removed. Run the command again to sign in.",
    );
    expect(await tokens.readCache("default")).toBeUndefined();
  });
});
