import { describe, expect, test } from "vitest";
import { resolvePaths } from "../../agent/core/paths.ts";

describe("where configuration and state live", () => {
  test("ENTRATOOL_HOME holds both, and wins over everything else", () => {
    const paths = resolvePaths(
      { ENTRATOOL_HOME: "/srv/et", STATE_DIRECTORY: "/var/lib/entratool", XDG_CONFIG_HOME: "/x" },
      "/home/pi",
    );
    expect(paths.configDir).toBe("/srv/et/config");
    expect(paths.stateDir).toBe("/srv/et/state");
    expect(paths.profilesFile).toBe("/srv/et/config/profiles.json");
    expect(paths.tokensDir).toBe("/srv/et/state/tokens");
    expect(paths.keyFile).toBe("/srv/et/state/store.key");
  });

  test("under systemd: CONFIGURATION_DIRECTORY and STATE_DIRECTORY (first of a list), credentials", () => {
    const paths = resolvePaths(
      {
        CONFIGURATION_DIRECTORY: "/etc/entratool:/etc/other",
        STATE_DIRECTORY: "/var/lib/entratool",
        CREDENTIALS_DIRECTORY: "/run/credentials/entratool.service",
      },
      "/root",
    );
    expect(paths.configDir).toBe("/etc/entratool");
    expect(paths.stateDir).toBe("/var/lib/entratool");
    expect(paths.credentialKeyFile).toBe("/run/credentials/entratool.service/entratool.key");
  });

  test("for a user: the XDG directories, with their defaults", () => {
    expect(resolvePaths({}, "/home/pi")).toMatchObject({
      configDir: "/home/pi/.config/entratool",
      stateDir: "/home/pi/.local/state/entratool",
      credentialKeyFile: undefined,
    });
    expect(resolvePaths({ XDG_CONFIG_HOME: "/c", XDG_STATE_HOME: "/s" }, "/home/pi")).toMatchObject({
      configDir: "/c/entratool",
      stateDir: "/s/entratool",
    });
  });

  test("config and state resolve independently", () => {
    expect(resolvePaths({ STATE_DIRECTORY: "/var/lib/entratool" }, "/home/pi")).toMatchObject({
      configDir: "/home/pi/.config/entratool",
      stateDir: "/var/lib/entratool",
    });
  });
});

describe("where the agent's control socket lives", () => {
  test("under systemd: $RUNTIME_DIRECTORY/agent.sock (first of a list), over ENTRATOOL_HOME; no other place to look", () => {
    const paths = resolvePaths(
      {
        RUNTIME_DIRECTORY: "/run/entratool:/run/other",
        ENTRATOOL_HOME: "/srv/et",
        XDG_RUNTIME_DIR: "/run/user/0",
      },
      "/root",
      0,
    );
    expect(paths).toMatchObject({
      socketFile: "/run/entratool/agent.sock",
      socketRoot: "/run/entratool",
      socketDirOwned: false,
      systemSocketFile: undefined,
    });
  });

  test("ENTRATOOL_HOME: $ENTRATOOL_HOME/run/agent.sock, private from the home down", () => {
    expect(
      resolvePaths({ ENTRATOOL_HOME: "/srv/et", XDG_RUNTIME_DIR: "/run/user/1000" }, "/home/pi", 1000),
    ).toMatchObject({
      socketFile: "/srv/et/run/agent.sock",
      socketRoot: "/srv/et",
      socketDirOwned: false,
      systemSocketFile: undefined,
    });
  });

  test("a user's shell: $XDG_RUNTIME_DIR/entratool/agent.sock, then the system service's socket", () => {
    expect(resolvePaths({ XDG_RUNTIME_DIR: "/run/user/1000" }, "/home/pi", 1000)).toMatchObject({
      socketFile: "/run/user/1000/entratool/agent.sock",
      socketRoot: "/run/user/1000/entratool",
      socketDirOwned: true,
      systemSocketFile: "/run/entratool/agent.sock",
    });
  });

  test("without a runtime directory: /tmp/entratool-<uid>/agent.sock, which must be the user's own", () => {
    expect(resolvePaths({ TMPDIR: "/var/tmp/long/private/place" }, "/home/pi", 1000)).toMatchObject({
      socketFile: "/tmp/entratool-1000/agent.sock",
      socketRoot: "/tmp/entratool-1000",
      socketDirOwned: true,
      systemSocketFile: "/run/entratool/agent.sock",
    });
    // Empty variables count as unset.
    expect(resolvePaths({ RUNTIME_DIRECTORY: "", XDG_RUNTIME_DIR: "" }, "/root", 0).socketFile).toBe(
      "/tmp/entratool-0/agent.sock",
    );
  });

  test("the uid defaults to this process's", () => {
    expect(resolvePaths({}, "/home/pi").socketFile).toBe(`/tmp/entratool-${process.getuid?.()}/agent.sock`);
  });
});
