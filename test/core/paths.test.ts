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
