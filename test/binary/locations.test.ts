/**
 * Where the compiled binary keeps its files when ENTRATOOL_HOME is not set: the directories
 * systemd hands a service (and its key credential), the XDG base directories, their defaults
 * under ~; and how it reaches the identity provider through HTTPS_PROXY (or not, per NO_PROXY).
 * Log level: the default (ENTRATOOL_LOG_LEVEL unset), which is what a user sees.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ERRORS } from "../../agent/core/errors.ts";
import { run, type Sandbox } from "../support/cli.ts";
import { ConnectProxy } from "../support/proxy.ts";
import {
  boxFor,
  CODE,
  CORRUPT_FILE,
  closedPort,
  createProfile,
  type Emulator,
  emulatorPerFile,
  expectOneSentence,
  expectPrivateTree,
  filesIn,
  signIn,
  signInAgainAfterSetAside,
  tokenJson,
  walk,
} from "./harness.ts";

const emulator = emulatorPerFile();

/** A sandbox pointed at the emulator, without ENTRATOOL_HOME; `base` is its HOME (a fresh directory). */
function boxWithoutHome(emu: Emulator, env: Record<string, string> = {}): Sandbox & { base: string } {
  const box = boxFor(emu, { env });
  delete box.env.ENTRATOOL_HOME;
  const base = box.env.HOME;
  if (base === undefined) throw new Error("a sandbox sets HOME");
  return { ...box, base };
}

/** Paths of everything under `root` (itself included as ""), relative to it. */
function tree(root: string): string[] {
  return walk(root).map((entry) => entry.path.slice(root.length));
}

/** `get-token --output json` that must be served from the saved sign-in. */
async function cachedToken(box: Sandbox): Promise<string> {
  const result = await run(["get-token", "--output", "json"], box);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).not.toMatch(CODE);
  const json = tokenJson(result.stdout);
  expect(json.from_cache).toBe(true);
  return json.access_token;
}

describe.concurrent("where files go without ENTRATOOL_HOME", () => {
  it("systemd: profiles in CONFIGURATION_DIRECTORY, tokens in STATE_DIRECTORY, keyed by the credential", async () => {
    const box = boxWithoutHome(emulator());
    const etc = join(box.base, "etc");
    const state = join(box.base, "state");
    const cred = join(box.base, "cred");
    // As systemd prepares them before the service starts.
    mkdirSync(etc, { mode: 0o755 });
    mkdirSync(state, { mode: 0o755 });
    mkdirSync(cred, { mode: 0o700 });
    const credential = join(cred, "entratool.key");
    writeFileSync(credential, randomBytes(32), { mode: 0o400 });
    Object.assign(box.env, {
      CONFIGURATION_DIRECTORY: etc,
      STATE_DIRECTORY: state,
      CREDENTIALS_DIRECTORY: cred,
    });

    await createProfile(box, "default");
    expect(tree(etc)).toEqual(["", "/profiles.json"]);
    const signedIn = await signIn(emulator(), box, ["--output", "json"]);
    const token = tokenJson(signedIn.stdout).access_token;
    // No store.key: the credential is the key material.
    // (discovery: the identity provider's OpenID configuration, kept for a day.)
    expect(tree(state)).toEqual([
      "",
      "/discovery",
      expect.stringMatching(/^\/discovery\/127\.0\.0\.1_\d+_.+\.json$/),
      "/locks",
      "/locks/default.lock",
      "/tokens",
      "/tokens/default.cache",
    ]);
    expectPrivateTree(join(state, "tokens"));
    expect(filesIn(cred)).toEqual(["entratool.key"]);
    expect(filesIn(box.base).sort()).toEqual(["bin", "cred", "etc", "state"]);
    expect(await cachedToken(box)).toBe(token);

    // Without the credential the key is another one: the cache does not decrypt, is set aside,
    // and the next get-token asks for a new sign-in.
    rmSync(credential);
    await signInAgainAfterSetAside(emulator(), box, /^authentication failed/);
    const files = filesIn(join(state, "tokens"));
    expect(files).toHaveLength(2);
    expect(files[0]).toBe("default.cache");
    expect(files[1]).toMatch(CORRUPT_FILE);
    // The fallback key file is generated in STATE_DIRECTORY.
    expect(existsSync(join(state, "store.key"))).toBe(true);
  });

  it("XDG: $XDG_CONFIG_HOME/entratool and $XDG_STATE_HOME/entratool", async () => {
    const box = boxWithoutHome(emulator());
    const configHome = join(box.base, "xdg-config");
    const stateHome = join(box.base, "xdg-state");
    Object.assign(box.env, { XDG_CONFIG_HOME: configHome, XDG_STATE_HOME: stateHome });

    await createProfile(box, "default");
    const token = tokenJson((await signIn(emulator(), box, ["--output", "json"])).stdout).access_token;
    expect(tree(join(configHome, "entratool"))).toEqual(["", "/profiles.json"]);
    expect(tree(join(stateHome, "entratool"))).toEqual([
      "",
      "/discovery",
      expect.stringMatching(/^\/discovery\/127\.0\.0\.1_\d+_.+\.json$/),
      "/locks",
      "/locks/default.lock",
      "/store.key",
      "/tokens",
      "/tokens/default.cache",
    ]);
    expectPrivateTree(join(configHome, "entratool"));
    expectPrivateTree(join(stateHome, "entratool"));
    expect(filesIn(box.base)).toEqual(["bin", "xdg-config", "xdg-state"]);
    expect(await cachedToken(box)).toBe(token);
  });

  it("XDG unset: ~/.config/entratool and ~/.local/state/entratool", async () => {
    const box = boxWithoutHome(emulator());
    expect(box.env.XDG_CONFIG_HOME).toBeUndefined();
    expect(box.env.XDG_STATE_HOME).toBeUndefined();

    await createProfile(box, "default");
    const token = tokenJson((await signIn(emulator(), box, ["--output", "json"])).stdout).access_token;
    expect(tree(join(box.base, ".config"))).toEqual(["", "/entratool", "/entratool/profiles.json"]);
    expect(tree(join(box.base, ".local"))).toEqual([
      "",
      "/state",
      "/state/entratool",
      "/state/entratool/discovery",
      expect.stringMatching(/^\/state\/entratool\/discovery\/127\.0\.0\.1_\d+_.+\.json$/),
      "/state/entratool/locks",
      "/state/entratool/locks/default.lock",
      "/state/entratool/store.key",
      "/state/entratool/tokens",
      "/state/entratool/tokens/default.cache",
    ]);
    expectPrivateTree(join(box.base, ".config", "entratool"));
    expectPrivateTree(join(box.base, ".local", "state", "entratool"));
    expect(filesIn(box.base)).toEqual([".config", ".local", "bin"]);
    expect(await cachedToken(box)).toBe(token);
  });
});

describe.concurrent("HTTPS_PROXY and NO_PROXY", () => {
  /** Runs `body` with a CONNECT proxy of its own, stopped afterwards (the tests run at once). */
  async function withProxy(body: (proxy: ConnectProxy, url: string) => Promise<void>): Promise<void> {
    const proxy = new ConnectProxy();
    const url = await proxy.start();
    try {
      await body(proxy, url);
    } finally {
      await proxy.stop();
    }
  }

  const hostPort = (): string => emulator().host.replace(/^https:\/\//, "");

  it("HTTPS_PROXY: the sign-in goes through CONNECT tunnels to the identity provider", () =>
    withProxy(async (proxy, url) => {
      const box = boxWithoutHome(emulator(), { HTTPS_PROXY: url });
      await createProfile(box, "default");
      await signIn(emulator(), box);
      expect(proxy.targets.length).toBeGreaterThanOrEqual(1);
      expect(new Set(proxy.targets)).toEqual(new Set([hostPort()]));
    }));

  it("NO_PROXY=127.0.0.1: the sign-in goes direct, no tunnel", () =>
    withProxy(async (proxy, url) => {
      const box = boxWithoutHome(emulator(), { HTTPS_PROXY: url, NO_PROXY: "127.0.0.1" });
      await createProfile(box, "default");
      await signIn(emulator(), box);
      expect(proxy.targets).toEqual([]);
    }));

  it("HTTPS_PROXY on a port nobody listens on: exit 3 with one sentence", async () => {
    const port = await closedPort();
    const box = boxWithoutHome(emulator(), { HTTPS_PROXY: `http://127.0.0.1:${port}` });
    await createProfile(box, "default");
    const result = await run(["get-token", "--flow", "device-code"], box);
    expect(result.code).toBe(3);
    expect(result.stderr).not.toMatch(CODE);
    expectOneSentence(result.stderr, ERRORS.E_NETWORK.message);
  });
});
