import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Report } from "../../agent/cli/doctor/report.ts";
import { removeSandboxes, run, sandbox } from "../support/cli.ts";

/**
 * The compiled binary's `entratool doctor` on the machine the tests run on, with its real /proc,
 * /sys, /dev, /etc and real uname, dpkg and systemctl: whatever the machine is, the report is
 * complete, says what the board is (or that it is not a Raspberry Pi), and its exit status follows
 * its summary.
 */

afterAll(removeSandboxes);

/** What the report's second line must say about this machine. */
function expectedHeadline(): RegExp {
  let model = "";
  try {
    model = readFileSync("/proc/device-tree/model", "utf8").split("\0")[0] ?? "";
  } catch {
    // No device tree: a PC, a VM or a container on one.
  }
  return model.startsWith("Raspberry Pi")
    ? new RegExp(`^Board: ${model.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.$`)
    : /not a Raspberry Pi/;
}

describe.concurrent("entratool doctor (compiled)", () => {
  it("prints a complete report on this machine, says whether it is a Raspberry Pi, and exits as its summary says", async () => {
    const box = sandbox();
    const result = await run(["doctor"], box);
    expect(result.stderr).not.toContain("    at ");
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^entratool doctor: entratool \d+\.\d+\.\d+, \d{4}-\d\d-\d\dT/);
    expect(lines[1]).toMatch(expectedHeadline());
    for (const title of [
      "Board",
      "User and groups",
      "Service",
      "Configuration",
      "Buses and devices",
      "display detect",
    ]) {
      expect(lines, title).toContain(title);
    }
    // One finding a line, each ok, warn or fail.
    const findings = lines.filter((line) => line.startsWith("  "));
    expect(findings.length).toBeGreaterThan(10);
    for (const line of findings) expect(line).toMatch(/^ {2}(ok {2}|warn|fail) {2}\S/);
    expect(result.stdout).toMatch(/^ {2}ok {4}64-bit: yes \(userland (x64|arm64), kernel (x86_64|aarch64)/m);
    expect(result.stdout).toMatch(/^ {2}ok {4}entratool \d+\.\d+\.\d+ on Bun \d+\.\d+/m);
    expect(result.stdout).toMatch(
      /^ {2}warn {2}configuration: none \(neither .*config\.json nor \/etc\/entratool\/config\.json\)/m,
    );
    const summary = lines.at(-1) ?? "";
    const failed = Number(
      /^Summary: (?:ok|warn|fail): (\d+) failed, \d+ warnings?, \d+ ok/.exec(summary)?.[1],
    );
    expect(failed, summary).toBe(findings.filter((line) => line.startsWith("  fail")).length);
    expect(result.code).toBe(failed > 0 ? 1 : 0);
  });

  it("--output json gives the same report as one object", async () => {
    const box = sandbox();
    const result = await run(["doctor", "--output", "json"], box);
    const report = JSON.parse(result.stdout) as Report;
    expect(report.machine).toMatch(expectedHeadline());
    expect(report.sections.map((section) => section.id)).toEqual([
      "board",
      "user",
      "service",
      "config",
      "devices",
      "detect",
    ]);
    expect(report.facts).toMatchObject({ arch: { userland: expect.stringMatching(/^(x64|arm64)$/) } });
    expect(result.code).toBe(report.summary.fail > 0 ? 1 : 0);
  });

  it("--draw draws every screen on the displays of the default configuration, and shows no credentials", async () => {
    const box = sandbox();
    const picture = join(box.home, "screen.png");
    mkdirSync(join(box.home, "config"), { recursive: true });
    writeFileSync(
      join(box.home, "config", "config.json"),
      `{
        // as an owner writes it
        "version": 1,
        "profile": { "tenantId": "contoso.onmicrosoft.com", "clientId": "11111111-2222-3333-4444-555555555555" },
        "device": "bench",
        "displays": [{ "type": "png", "file": "${picture}", "as": "hd44780" }, { "type": "terminal" }],
        "sinks": [{ "type": "http", "url": "https://ingest.example.com/t?code=s3cretcode", "headers": { "x-api-key": "s3cretheader" } }]
      }`,
    );
    const result = await run(["doctor", "--draw", "--step", "0"], box);
    expect(result.stdout).toContain(`  ok    displays[0] png as hd44780 to ${picture}: drew every screen\n`);
    expect(result.stdout).toContain("  ok    displays[1] terminal: drew every screen\n");
    expect(result.stdout).toContain("  ok    sinks[0] http https://ingest.example.com/t\n");
    expect(readFileSync(picture).subarray(1, 4).toString()).toBe("PNG");
    expect(`${result.stdout}${result.stderr}`).not.toContain("s3cret");
    expect(result.stderr).not.toContain("    at ");
  });

  it("--help says what the exit status means", async () => {
    const result = await run(["doctor", "--help"], sandbox());
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Exit status: 0 when nothing failed (warnings allowed), 1 when at least");
  });
});
