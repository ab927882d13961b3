/**
 * A board without a keyboard gets going again by itself: a damaged key file (cut short by a power
 * cut) is set aside with the token files it encrypted, one warning line says so, and the next
 * get-token shows a new code. And what it refuses: a state directory other users can write.
 * Log level: the default (ENTRATOOL_LOG_LEVEL unset), which is what a user sees.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { run, type Sandbox, start } from "../support/cli.ts";
import {
  approveShown,
  boxFor,
  CODE,
  createProfile,
  DEMO_CLIENT_ID,
  emulatorPerFile,
  expectOneSentence,
  expectPrivateTree,
  filesIn,
  KEY_REPLACED,
  keyFile,
  linesBesidesPrompt,
  logRecords,
  signIn,
  tokenJson,
} from "./harness.ts";

const emulator = emulatorPerFile();

const STAMPED = "\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3}Z(?:-\\d+)?";

/** A sandbox at the default log level with profiles `default` and `lab`, both signed in. */
async function twoSignedIn(): Promise<Sandbox> {
  const box = boxFor(emulator());
  await createProfile(box, "default");
  await createProfile(box, "lab");
  await signIn(emulator(), box);
  await signIn(emulator(), box, ["--profile", "lab"]);
  return box;
}

describe.concurrent("a damaged key file", () => {
  it("cut to 0 bytes: one warning line, a new code, sign-in works; the key and both token files are set aside", async () => {
    const box = await twoSignedIn();
    const key = keyFile(box);
    writeFileSync(key, "");

    const child = start(["get-token", "--output", "json"], box);
    await approveShown(emulator(), child);
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    expect(tokenJson(result.stdout).from_cache).toBe(false);
    // Besides the prompt, stderr is the one warning (a JSON line: stderr is not a terminal).
    const lines = linesBesidesPrompt(result.stderr);
    expect(lines).toHaveLength(1);
    const [warning] = logRecords(result.stderr);
    expect(warning).toMatchObject({ level: "warn" });
    const tokens = join(box.home, "state", "tokens");
    expect(String(warning?.msg)).toMatch(
      new RegExp(
        `^The token store key ${key} was damaged \\(0 bytes instead of 32\\); it was set aside as ${key}\\.corrupt-${STAMPED} with the 2 token files it encrypted, and a new key was created: every profile must sign in again\\.$`,
      ),
    );

    const state = filesIn(join(box.home, "state"));
    const asideKeys = state.filter((name) => name.startsWith("store.key.corrupt-"));
    expect(asideKeys).toHaveLength(1);
    expect(readFileSync(join(box.home, "state", asideKeys[0] as string))).toHaveLength(0);
    expect(readFileSync(key)).toHaveLength(32);
    const tokenFiles = filesIn(tokens);
    expect(
      tokenFiles.filter((name) => new RegExp(`^default\\.cache\\.corrupt-${STAMPED}$`).test(name)),
    ).toHaveLength(1);
    expect(
      tokenFiles.filter((name) => new RegExp(`^lab\\.cache\\.corrupt-${STAMPED}$`).test(name)),
    ).toHaveLength(1);
    expect(tokenFiles).toContain("default.cache");
    expect(tokenFiles).not.toContain("lab.cache");

    // From now on the new key is used: the token just saved is served from the cache, quietly.
    const cached = await run(["get-token", "--output", "json"], box);
    expect(cached).toMatchObject({ code: 0, stderr: "" });
    expect(tokenJson(cached.stdout).from_cache).toBe(true);
    // The other profile signs in again too, with no warning of its own.
    const lab = start(["get-token", "--profile", "lab"], box);
    await approveShown(emulator(), lab);
    const labResult = await lab.done;
    expect(labResult.code, labResult.stderr).toBe(0);
    expect(linesBesidesPrompt(labResult.stderr).filter((line) => line.startsWith("{"))).toEqual([]);
    expectPrivateTree(box.home);
  });

  it("two get-token at once find it cut short: one new key, one warning, one code, both get the token", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    await signIn(emulator(), box);
    writeFileSync(keyFile(box), readFileSync(keyFile(box)).subarray(0, 7));

    const children = [
      start(["get-token", "--output", "json"], box),
      start(["get-token", "--output", "json"], box),
    ];
    // One of them shows the code; the other waits for the profile's lock.
    const shown = await Promise.any(children.map((child) => child.waitFor(CODE)));
    emulator().emulator.approve({ userCode: shown[1] ?? "" });
    const results = await Promise.all(children.map((child) => child.done));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const tokens = results.map((result) => tokenJson(result.stdout).access_token);
    expect(tokens[0]).toBe(tokens[1]);
    const stderr = results.map((result) => result.stderr).join("");
    expect(stderr.match(new RegExp(CODE.source, "g"))).toHaveLength(1);
    const warnings = logRecords(stderr).filter((record) => record.level === "warn");
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]?.msg)).toMatch(KEY_REPLACED);
    expect(String(warnings[0]?.msg)).toContain("(7 bytes instead of 32)");
    const state = filesIn(join(box.home, "state"));
    expect(state.filter((name) => name.startsWith("store.key.corrupt-"))).toHaveLength(1);
  });
});

describe.concurrent("a state directory other users can write", () => {
  it("a 1777 STATE_DIRECTORY is refused with exit 10 and one sentence, and its mode is left alone", async () => {
    const box = boxFor(emulator());
    delete box.env.ENTRATOOL_HOME;
    const base = box.env.HOME as string;
    const etc = join(base, "etc");
    const state = join(base, "shared");
    mkdirSync(etc, { mode: 0o755 });
    mkdirSync(state);
    chmodSync(state, 0o1777);
    Object.assign(box.env, { CONFIGURATION_DIRECTORY: etc, STATE_DIRECTORY: state });
    await createProfile(box, "default");

    const result = await run(["get-token"], box);
    expect(result.code).toBe(10);
    expect(result.stderr).not.toMatch(CODE);
    expectOneSentence(
      result.stderr,
      `The directory ${state} can be written by other users (mode 1777), so entratool will not keep its files there: make it private to this user ('chmod go-w ${state}') or set ENTRATOOL_HOME to a directory of its own.`,
    );
    expect(statSync(state).mode & 0o7777).toBe(0o1777);
    expect(filesIn(state)).toEqual([]);
    // The configuration directory systemd made 0755 is used as it is.
    expect(statSync(etc).mode & 0o777).toBe(0o755);
  });

  it("a 1777 ENTRATOOL_HOME is refused by create-profile too, and nothing is created in it", async () => {
    const box = boxFor(emulator());
    mkdirSync(box.home);
    chmodSync(box.home, 0o1777);
    const result = await run(
      ["create-profile", "--name", "default", "--tenant-id", "common", "--client-id", DEMO_CLIENT_ID],
      box,
    );
    expect(result.code).toBe(10);
    expectOneSentence(
      result.stderr,
      `The directory ${box.home} can be written by other users (mode 1777), so entratool will not keep its files there: make it private to this user ('chmod go-w ${box.home}') or set ENTRATOOL_HOME to a directory of its own.`,
    );
    expect(filesIn(box.home)).toEqual([]);
    expect(statSync(box.home).mode & 0o7777).toBe(0o1777);
  });

  it("an ENTRATOOL_HOME that does not exist yet, in a shared sticky directory like /tmp, is made private and used", async () => {
    const box = boxFor(emulator());
    const shared = join(box.env.HOME as string, "tmp");
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    box.env.ENTRATOOL_HOME = join(shared, "entratool-lab");
    const result = await run(
      ["create-profile", "--name", "default", "--tenant-id", "common", "--client-id", DEMO_CLIENT_ID],
      box,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(statSync(box.env.ENTRATOOL_HOME).mode & 0o777).toBe(0o700);
    expect(statSync(shared).mode & 0o7777).toBe(0o1777);
  });
});
