/**
 * How get-token ends when it does not get a token: Ctrl+C and SIGTERM, an expired code, --timeout,
 * a sign-in refused on the other device or by the tenant, no network, an untrusted certificate.
 * Each ends with its exit code and one sentence on stderr (besides the prompt), never a stack trace.
 * Log level: the default (ENTRATOOL_LOG_LEVEL unset), which is what a user sees.
 */
import { describe, expect, it } from "vitest";
import { ERRORS } from "../../agent/core/errors.ts";
import { runScript, start } from "../support/cli.ts";
import {
  approveShown,
  boxFor,
  CODE,
  closedPort,
  createProfile,
  emulatorPerFile,
  expectOneSentence,
  linesBesidesPrompt,
  logRecords,
  seedBlock,
} from "./harness.ts";

const emulator = emulatorPerFile();

describe("cancelling, expiry and --timeout", () => {
  it.each(["SIGINT", "SIGTERM"] as const)(
    "%s while a poll is in flight ends within 1 s with exit 130; a new run gets a fresh code",
    async (signal) => {
      const box = boxFor(emulator());
      await createProfile(box, "default");
      // The first poll hangs for 10 s in the emulator: the signal must not wait for it.
      emulator().emulator.injectFaults("token", [{ type: "latency", ms: 10_000 }]);
      const polled = emulator().emulator.waitForRequest((entry) => entry.path.endsWith("/oauth2/v2.0/token"));
      const child = start(["get-token", "--flow", "device-code"], box);
      const first = (await child.waitFor(CODE))[1];
      await polled;
      const sentAt = performance.now();
      child.child.kill(signal);
      const result = await child.done;
      const elapsedMs = performance.now() - sentAt;
      expect(result.code).toBe(130);
      expect(elapsedMs).toBeLessThan(1000);
      expectOneSentence(result.stderr, "Authentication cancelled by user");

      // The seed's "Cancelled Authentication" advice: start over with a fresh code.
      const again = runScript("bash", seedBlock("Cancelled Authentication"), box);
      const fresh = await approveShown(emulator(), again);
      expect(fresh).not.toBe(first);
      expect((await again.done).code).toBe(0);
    },
  );

  it("a code nobody approves expires with exit 4; the seed's 'Code Expired' advice works", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    emulator().emulator.setSettings({ expiresIn: 2 });
    try {
      const child = start(["get-token", "--flow", "device-code"], box);
      expect((await child.waitFor(CODE))[1]).toBeTruthy();
      const result = await child.done;
      expect(result.code).toBe(4);
      expectOneSentence(result.stderr, "Device code expired. Please try again.");
    } finally {
      emulator().emulator.setSettings({ expiresIn: 900 });
    }
    const again = runScript("bash", seedBlock("Code Expired"), box);
    await approveShown(emulator(), again);
    expect((await again.done).code).toBe(0);
  });

  it("--timeout 1 gives up after a second with exit 4", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const startedAt = performance.now();
    const result = await start(["get-token", "--flow", "device-code", "--timeout", "1"], box).done;
    const elapsedMs = performance.now() - startedAt;
    expect(result.stderr).toMatch(CODE);
    expect(result.code).toBe(4);
    expectOneSentence(
      result.stderr,
      "Timed out waiting for sign-in. Run the command again (or raise --timeout).",
    );
    expect(elapsedMs).toBeGreaterThanOrEqual(1000);
    expect(elapsedMs).toBeLessThan(5000);
  });
});

describe.concurrent("refusals and unreachable identity providers", () => {
  it.each([
    { outcome: "declined", exit: 5, sentence: ERRORS.E_DECLINED.message },
    { outcome: "policy_blocked", exit: 7, sentence: ERRORS.E_POLICY_BLOCKED.message },
    { outcome: "not_public_client", exit: 8, sentence: ERRORS.E_NOT_PUBLIC_CLIENT.message },
    { outcome: "consent_required", exit: 8, sentence: ERRORS.E_CONSENT_REQUIRED.message },
  ] as const)("$outcome on the other device: exit $exit", async ({ outcome, exit, sentence }) => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const child = start(["get-token", "--flow", "device-code"], box);
    const userCode = (await child.waitFor(CODE))[1] ?? "";
    if (outcome === "declined") emulator().emulator.decline({ userCode });
    else emulator().emulator.approve({ userCode, outcome });
    const result = await child.done;
    expect(result.code).toBe(exit);
    expectOneSentence(result.stderr, sentence);
  });

  it("an identity provider nobody listens for: exit 3", async () => {
    const box = boxFor(emulator());
    const port = await closedPort();
    await createProfile(box, "default", { extra: ["--authority-host", `https://127.0.0.1:${port}`] });
    const result = await start(["get-token", "--flow", "device-code"], box).done;
    expect(result.code).toBe(3);
    expect(result.stderr).not.toMatch(CODE);
    expect(result.stderr).not.toContain("    at ");
    // Retries are logged at info, below the default level: the failure is one sentence and nothing else.
    expect(linesBesidesPrompt(result.stderr)).toEqual([ERRORS.E_NETWORK.message]);
    expect(logRecords(result.stderr)).toHaveLength(0);
  });

  it("a certificate from a CA that is not trusted (no NODE_EXTRA_CA_CERTS): exit 3", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    delete box.env.NODE_EXTRA_CA_CERTS;
    const result = await start(["get-token", "--flow", "device-code"], box).done;
    expect(result.code).toBe(3);
    expectOneSentence(result.stderr, ERRORS.E_TLS.message);
  });
});
