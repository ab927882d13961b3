import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERRORS } from "../../agent/core/errors.ts";
import { BINARY, inTerminal, run, runScript, start } from "../support/cli.ts";
import {
  approveShown,
  boxFor,
  CODE,
  cacheFile,
  createProfile,
  emulatorPerFile,
  linesBesidesPrompt,
  seedBlock,
  signIn,
  startEmulator,
  tokenJson,
} from "./harness.ts";

const emulator = emulatorPerFile();

describe.concurrent("changes to a profile while another process uses it", () => {
  it("logout during a refresh waits for it, and the tokens stay gone", async ({ onTestFinished }) => {
    // An emulator of its own: the latency fault below and the wait for "the next request to /token"
    // must not be taken by another test's sign-in running at the same time.
    const emu = await startEmulator();
    onTestFinished(() => emu.stop());
    const box = boxFor(emu);
    await createProfile(box, "default");
    await signIn(emu, box);
    // The refresh holds the profile's lock while its request hangs for 2 s.
    emu.emulator.injectFaults("token", [{ type: "latency", ms: 2000 }]);
    // After the sign-in, the next request to /token is the refresh ("received" comes before the form is read).
    const received = emu.emulator.waitForRequest(
      (entry) => entry.path.endsWith("/oauth2/v2.0/token"),
      "received",
    );
    const refresh = start(["get-token", "--force-refresh", "--output", "json"], box);
    await received;

    const logout = await run(["logout"], box);

    expect(logout.code).toBe(0);
    expect(logout.stderr).toContain("Another entratool process is using profile 'default'; waiting");
    expect(logout.stdout).toBe("Signed out: tokens of profile 'default' removed.\n");
    expect((await refresh.done).code).toBe(0);
    // The refresh finished first; it did not write its tokens back after the logout.
    expect(existsSync(cacheFile(box))).toBe(false);
    const next = start(["get-token", "--timeout", "1"], box);
    await next.waitFor(CODE);
    expect((await next.done).code).toBe(ERRORS.E_TIMEOUT.exit);
  });
});

describe.concurrent("signals and time limits", () => {
  it("SIGTERM at a create-profile question ends it at once with exit 130", async () => {
    const box = boxFor(emulator());
    // `exec` keeps the shell's pid, so the pid printed is entratool's.
    const child = inTerminal(`sh -c 'echo pid=$$; exec entratool create-profile'; echo exit=$?`, box, null);
    const pid = Number((await child.waitFor(/pid=(\d+)/, "stdout"))[1]);
    await child.waitFor(/Profile name: /, "stdout");
    process.kill(pid, "SIGTERM");
    const result = await child.done;
    expect(result.stdout).toContain("Cancelled by user.");
    expect(result.stdout).toMatch(/exit=130/);
  });

  it("a --timeout longer than a timer can hold does not fire at once", async () => {
    const emu = emulator();
    const box = boxFor(emu);
    await createProfile(box, "default");
    const child = start(["get-token", "--timeout", "99999999999", "--output", "json"], box);
    await approveShown(emu, child);
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    expect(tokenJson(result.stdout).from_cache).toBe(false);
    expect(result.stderr).not.toContain("TimeoutOverflowWarning");
  });
});

describe.concurrent("where the code is shown", () => {
  it("a script that captures stderr: the code still reaches the person's terminal", async () => {
    const emu = emulator();
    const box = boxFor(emu);
    await createProfile(box, "default");
    // The seed's IoT example captures entratool's stdout and stderr; run from a terminal, the
    // person must still see the code there.
    const block = seedBlock("IoT Devices");
    const functions = block.slice(0, block.indexOf("# Main IoT application"));
    const python = `${functions}\nprint("token length", len(authenticate_device()))\n`;
    const child = inTerminal(`python3 -c '${python.replaceAll("'", "'\\''")}'`, box, null);
    await approveShown(emu, child, { stream: "stdout" });
    const result = await child.done;
    expect(result.stdout).toContain("Device Code Authentication");
    expect(result.stdout).toMatch(/token length \d{3,}/);
  });

  it("without a terminal at all (a service), the prompt goes to stderr only", async () => {
    const emu = emulator();
    const box = boxFor(emu);
    await createProfile(box, "default");
    const child = start(["get-token"], box);
    await approveShown(emu, child);
    const result = await child.done;
    expect(result.code).toBe(0);
    expect(result.stderr).toContain("Device Code Authentication");
    expect(linesBesidesPrompt(result.stderr)).toEqual([]);
  });

  it("stdout on a full disk: exit 1 and one sentence that says so, not an internal error", async () => {
    const box = boxFor(emulator());
    const result = await runScript("bash", 'exec "$0" list-profiles --output json > /dev/full', box, {}, [
      BINARY,
    ]).done;
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "Cannot write the output (ENOSPC): check where stdout goes (a full disk, a closed file).\n",
    );
  });

  it("entratool with no command prints its usage on stderr with exit 2", async () => {
    const result = await run([], boxFor(emulator()));
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("Usage: entratool <command> [options]");
  });
});
