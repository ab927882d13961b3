import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EntraToolError, ExitCode } from "../../agent/core/errors.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { storeError } from "../../agent/store/errors.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { MachineIdentity } from "../../agent/store/machine.ts";
import { JsonProfileStore } from "../../agent/store/profiles.ts";
import { FileTokenStore } from "../../agent/store/token-store.ts";
import { captureLogger, keyProvider, makeTempDir } from "./helpers.ts";

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`failed: ${code}`), { code });

describe("storeError", () => {
  it("is E_STORE (exit 10) naming the action, the path and the errno code, and keeps the cause", () => {
    const cause = errno("EACCES");
    const error = storeError("/var/lib/entratool/store.key", "read the key file", cause);
    expect(error).toMatchObject({ code: "E_STORE", exitCode: ExitCode.store, cause });
    expect(error.message).toBe(
      "Cannot read the key file /var/lib/entratool/store.key (EACCES). Check that the user running entratool can access it and its directory (entratool's own files should belong to that user).",
    );
  });

  it.each([
    ["EPERM", /user running entratool/],
    ["ENOSPC", /Free some disk space/],
    ["EDQUOT", /quota/],
    ["EROFS", /read-only: set ENTRATOOL_HOME/],
    ["EISDIR", /A directory is in the way/],
    ["ENOTDIR", /A file is in the way/],
    ["EIO", /I\/O error/],
    ["ENOLCK", /does not support locks/],
  ])("gives the fix for %s", (code, fix) => {
    const message = storeError("/s/f", "write the profiles file", errno(code)).message;
    expect(message).toContain(`/s/f (${code}). `);
    expect(message).toMatch(fix);
  });

  it("returns a cause that is already an EntraToolError as it is: it names its own path and fix", () => {
    const cause = new EntraToolError("E_STORE", {
      message: "The directory /s can be written by other users.",
    });
    expect(storeError("/s/f", "write the profiles file", cause)).toBe(cause);
  });

  it("gives the general advice for an unknown code or a cause without one", () => {
    const general = /belong to the user running entratool and that the disk is not full or read-only\.$/;
    expect(storeError("/s/f", "lock", errno("EWEIRD")).message).toMatch(/^Cannot lock \/s\/f \(EWEIRD\)\. /);
    expect(storeError("/s/f", "lock", errno("EWEIRD")).message).toMatch(general);
    expect(storeError("/s/f", "lock", errno("toString")).message).toMatch(general);
    expect(storeError("/s/f", "lock", "not an Error").message).toMatch(/^Cannot lock \/s\/f \(error\)\. .*/);
  });
});

/** Every store component turns its I/O failures into the same E_STORE sentence. */
describe("store I/O failures", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  /** A regular file where a component expects a directory (or reads a directory as a file). */
  let blocker: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    blocker = join(dir, "blocker");
    await writeFile(blocker, "not a directory");
  });
  afterEach(() => cleanup());

  const logger = () => captureLogger().logger;
  const notDir = "A file is in the way where a directory should be: move it aside.";

  it("reading profiles under a file reports the profiles file", async () => {
    const file = join(blocker, "profiles.json");
    const locks = new FlockLockManager({
      locksDir: join(dir, "locks"),
      clock: new VirtualClock(),
      logger: logger(),
    });
    await expect(new JsonProfileStore({ file, logger: logger(), locks }).list()).rejects.toMatchObject({
      code: "E_STORE",
      message: `Cannot read the profiles file ${file} (ENOTDIR). ${notDir}`,
    });
  });

  it("removing tokens from a file reports the token directory", async () => {
    const tokens = new FileTokenStore({
      tokensDir: blocker,
      keyProvider: keyProvider({ keyFile: join(dir, "store.key"), logger: logger() }),
      logger: logger(),
      clock: new VirtualClock(),
    });
    await expect(tokens.remove("work")).rejects.toMatchObject({
      code: "E_STORE",
      message: `Cannot read the token directory ${blocker} (ENOTDIR). ${notDir}`,
    });
  });

  it("locking under a file reports the lock file", async () => {
    const locks = new FlockLockManager({
      locksDir: join(blocker, "locks"),
      clock: new VirtualClock(),
      logger: logger(),
    });
    await expect(locks.acquire("work")).rejects.toMatchObject({
      code: "E_STORE",
      message: `Cannot open the lock file ${join(blocker, "locks", "work.lock")} (ENOTDIR). ${notDir}`,
    });
  });

  it("a state directory others can write is refused with its own sentence, and left as it is", async () => {
    const state = join(dir, "shared-state");
    await mkdir(state);
    await chmod(state, 0o1777);
    // As a STATE_DIRECTORY: the directory named for the state, in which locks/ would be created.
    const locks = new FlockLockManager({
      locksDir: join(state, "locks"),
      clock: new VirtualClock(),
      logger: logger(),
      privateRoot: state,
    });
    await expect(locks.acquire("work")).rejects.toMatchObject({
      code: "E_STORE",
      message: expect.stringMatching(
        new RegExp(`^The directory ${state} can be written by other users \\(mode 1777\\)`),
      ),
    });
    expect((await stat(state)).mode & 0o7777).toBe(0o1777);
  });

  it("an unreadable machine id reports the machine identity file", async () => {
    const identity = new MachineIdentity({
      logger: logger(),
      machineIdFiles: [dir],
      serialNumberFile: join(dir, "none"),
      cpuinfoFile: join(dir, "none"),
    });
    await expect(identity.get()).rejects.toMatchObject({
      code: "E_STORE",
      message: `Cannot read the machine identity file ${dir} (EISDIR). A directory is in the way: move it aside.`,
    });
  });
});
