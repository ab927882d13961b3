/**
 * The systemd units as systemd reads them: `systemd-analyze verify` finds nothing, and the
 * hardening scores an exposure of at most 2.0 (`systemd-analyze security --offline=yes`). The
 * unit names the packaged binary (/usr/bin/entratool); the check runs on a copy that names the
 * one built here, since verify also checks that ExecStart can be executed.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BINARY, ROOT } from "../support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "entratool-units-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const units = readdirSync(join(ROOT, "systemd")).filter((name) => name.endsWith(".service"));

/** A copy to check; a template is checked as an instance of it ("lab"). */
function copy(name: string): string {
  const text = readFileSync(join(ROOT, "systemd", name), "utf8")
    .replaceAll("/usr/bin/entratool", BINARY)
    // verify runs `man` on it, and the man page is installed by the package, not on this machine.
    .replace(/^Documentation=man:entratool\(1\)\n/m, "");
  const path = join(dir, name.replace("@.", "@lab."));
  writeFileSync(path, text);
  return path;
}

describe("systemd units", () => {
  it("there is an agent unit, a template for several profiles on one board, and first-boot provisioning", () => {
    expect(units).toContain("entratool-agent.service");
    expect(units).toContain("entratool-agent@.service");
    expect(units).toContain("entratool-provision.service");
  });

  it("provisioning runs only when the boot partition has the file, and before the agent", () => {
    const unit = readFileSync(join(ROOT, "systemd", "entratool-provision.service"), "utf8");
    expect(unit).toMatch(/^ConditionPathExists=\|\/boot\/firmware\/entratool\.json$/m);
    expect(unit).toMatch(/^ConditionPathExists=\|\/boot\/entratool\.json$/m);
    expect(unit).toMatch(/^Before=entratool-agent\.service$/m);
    expect(unit).toMatch(/^Type=oneshot$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/entratool provision /m);
  });

  for (const name of units) {
    it(`${name}: systemd-analyze verify is clean`, () => {
      const result = spawnSync("systemd-analyze", ["verify", copy(name)], { encoding: "utf8" });
      expect(result.stderr + result.stdout).toBe("");
      expect(result.status).toBe(0);
    });

    it(`${name}: hardening exposure at most 2.0`, () => {
      const result = spawnSync("systemd-analyze", ["security", "--offline=yes", "--no-pager", copy(name)], {
        encoding: "utf8",
      });
      const exposure = Number(/Overall exposure level for \S+: ([0-9.]+)/.exec(result.stdout)?.[1]);
      expect(exposure, result.stdout.slice(-2000)).toBeLessThanOrEqual(2.0);
    });
  }

  it("the agent unit is Type=notify with a watchdog, and never forbids the JIT", () => {
    const unit = readFileSync(join(ROOT, "systemd", "entratool-agent.service"), "utf8");
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^WatchdogSec=/m);
    expect(unit).toMatch(/^UMask=0077$/m);
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=yes/m);
  });

  it("the agent units keep what the system source reads, stop on a bad configuration, and keep instances apart", () => {
    for (const name of ["entratool-agent.service", "entratool-agent@.service"]) {
      const unit = readFileSync(join(ROOT, "systemd", name), "utf8");
      // ProcSubset=pid hides /proc/loadavg, stat, meminfo, uptime and net.
      expect(unit).not.toMatch(/^ProcSubset=/m);
      expect(unit).toMatch(/^RestartPreventExitStatus=2$/m);
    }
    const template = readFileSync(join(ROOT, "systemd", "entratool-agent@.service"), "utf8");
    // Beside /run/entratool, not inside: stopping the main agent removes its runtime directory.
    expect(template).toMatch(/^RuntimeDirectory=entratool@%i$/m);
    expect(template).toMatch(/^StateDirectory=entratool@%i$/m);
  });
});
