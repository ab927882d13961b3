/**
 * The Raspberry Pi binary (dist/entratool-linux-arm64, built by the global setup) on this x86_64
 * machine under qemu-user: it starts, and it reads the token store the host binary wrote, so the
 * store format, the key derivation and flock work the same on arm64. The two binaries share one
 * ENTRATOOL_HOME on one machine, hence one key.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import pkg from "../../package.json" with { type: "json" };
import { Running } from "../support/cli.ts";
import {
  ARM64_BINARY,
  boxFor,
  CODE,
  createProfile,
  emulatorPerFile,
  QEMU,
  requireQemu,
  signIn,
  tokenJson,
} from "./harness.ts";

/** ELF e_machine of AArch64. */
const EM_AARCH64 = 0xb7;

const emulator = emulatorPerFile();

describe("linux-arm64 binary under qemu-user", () => {
  it("is an AArch64 executable that prints its version", async () => {
    const header = readFileSync(ARM64_BINARY).subarray(0, 20);
    expect(header.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(header.readUInt16LE(18)).toBe(EM_AARCH64);
    requireQemu();
    const box = boxFor(emulator());
    const result = await new Running(QEMU, [ARM64_BINARY, "--version"], box.env).done;
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`entratool ${pkg.version}\n`);
    expect(result.code).toBe(0);
  });

  it("serves the token the x64 binary saved (from_cache) from the same ENTRATOOL_HOME", async () => {
    requireQemu();
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const signedIn = tokenJson((await signIn(emulator(), box, ["--output", "json"])).stdout);
    const result = await new Running(QEMU, [ARM64_BINARY, "get-token", "--output", "json"], box.env).done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(CODE);
    expect(tokenJson(result.stdout)).toMatchObject({
      from_cache: true,
      access_token: signedIn.access_token,
      profile: "default",
    });
  });
});
