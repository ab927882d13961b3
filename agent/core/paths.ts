import { join } from "./path.ts";

/**
 * Where configuration and state live. Resolution order:
 *   1. ENTRATOOL_HOME: config in `$ENTRATOOL_HOME/config`, state in `$ENTRATOOL_HOME/state`.
 *   2. systemd: `$CONFIGURATION_DIRECTORY` / `$STATE_DIRECTORY` (first entry of each list).
 *   3. XDG: `$XDG_CONFIG_HOME/entratool` (~/.config) and `$XDG_STATE_HOME/entratool` (~/.local/state).
 * Each of config and state is resolved on its own, so a unit may set only one of them.
 */
export interface Paths {
  readonly configDir: string;
  readonly stateDir: string;
  /**
   * The directories a person named for entratool (ENTRATOOL_HOME when set, else the configuration
   * and state directories themselves): they and everything below them must be private; above
   * them, only that nobody else can replace what is created there (see ensurePrivateDir).
   */
  readonly configRoot: string;
  readonly stateRoot: string;
  /** Profiles (no secrets): plain JSON. */
  readonly profilesFile: string;
  /** One encrypted token cache per profile. */
  readonly tokensDir: string;
  /** One lock file per profile. */
  readonly locksDir: string;
  /** The identity providers' OpenID configurations, one file per authority (no secrets), kept for a day. */
  readonly discoveryDir: string;
  /** The generated key (0600) used when no systemd credential is given. */
  readonly keyFile: string;
  /** `$CREDENTIALS_DIRECTORY/entratool.key` when systemd passes credentials. */
  readonly credentialKeyFile: string | undefined;
}

export type Env = Readonly<Record<string, string | undefined>>;

function firstOfList(value: string | undefined): string | undefined {
  const first = value?.split(":")[0];
  return first ? first : undefined;
}

export function resolvePaths(env: Env, homeDir: string): Paths {
  const home = env.ENTRATOOL_HOME;
  const configDir = home
    ? join(home, "config")
    : (firstOfList(env.CONFIGURATION_DIRECTORY) ??
      join(env.XDG_CONFIG_HOME || join(homeDir, ".config"), "entratool"));
  const stateDir = home
    ? join(home, "state")
    : (firstOfList(env.STATE_DIRECTORY) ??
      join(env.XDG_STATE_HOME || join(homeDir, ".local", "state"), "entratool"));
  const credentials = firstOfList(env.CREDENTIALS_DIRECTORY);
  return {
    configDir,
    stateDir,
    configRoot: home || configDir,
    stateRoot: home || stateDir,
    profilesFile: join(configDir, "profiles.json"),
    tokensDir: join(stateDir, "tokens"),
    locksDir: join(stateDir, "locks"),
    discoveryDir: join(stateDir, "discovery"),
    keyFile: join(stateDir, "store.key"),
    credentialKeyFile: credentials ? join(credentials, "entratool.key") : undefined,
  };
}
