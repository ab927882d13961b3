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
  /**
   * The agent's control socket (`send`, `status` and `get-token` talk to the running agent there):
   *   1. systemd: `$RUNTIME_DIRECTORY/agent.sock` (first entry of the list).
   *   2. ENTRATOOL_HOME: `$ENTRATOOL_HOME/run/agent.sock`.
   *   3. `$XDG_RUNTIME_DIR/entratool/agent.sock` (the user's own 0700 runtime directory).
   *   4. `/tmp/entratool-<uid>/agent.sock`: /tmp and not $TMPDIR, so that a service and a shell
   *      with different TMPDIRs still meet; anyone could have made that directory first, so the
   *      agent and its clients check that it is this user's own (`socketDirOwned`).
   * RUNTIME_DIRECTORY wins over ENTRATOOL_HOME: a unit that sets both wants the socket where systemd
   * made room for it. Too long a path (more than 107 bytes) is refused where the socket is used.
   */
  readonly socketFile: string;
  /**
   * The directory named for the socket (RUNTIME_DIRECTORY, ENTRATOOL_HOME, the XDG or /tmp
   * directory above): from it down to the socket's directory, every directory must be private
   * (ensurePrivateDir's `privateRoot`).
   */
  readonly socketRoot: string;
  /**
   * true when the socket's directory must be owned by this user and private (0700): the XDG and
   * /tmp places, which nobody but this user should have made. false for RUNTIME_DIRECTORY (systemd
   * made it for the service's user, and its group's members connect from their own accounts) and
   * ENTRATOOL_HOME (named by the person).
   */
  readonly socketDirOwned: boolean;
  /**
   * Where a client also looks when no agent of this user answers: the system service's socket
   * (`RuntimeDirectory=entratool` of a system unit). undefined when RUNTIME_DIRECTORY or
   * ENTRATOOL_HOME names one place on purpose.
   */
  readonly systemSocketFile: string | undefined;
}

export type Env = Readonly<Record<string, string | undefined>>;

function firstOfList(value: string | undefined): string | undefined {
  const first = value?.split(":")[0];
  return first ? first : undefined;
}

/** The system service's socket: systemd's RuntimeDirectory=entratool of a system unit. */
export const SYSTEM_SOCKET_FILE = "/run/entratool/agent.sock";

/** `uid`: this process's user, for the /tmp fallback of the socket (default: process.getuid()). */
export function resolvePaths(env: Env, homeDir: string, uid: number = process.getuid?.() ?? 0): Paths {
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
  const runtime = firstOfList(env.RUNTIME_DIRECTORY);
  const xdgRuntime = env.XDG_RUNTIME_DIR;
  const socketRoot = runtime
    ? runtime
    : home
      ? home
      : xdgRuntime
        ? join(xdgRuntime, "entratool")
        : `/tmp/entratool-${uid}`;
  const socketDir = !runtime && home ? join(home, "run") : socketRoot;
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
    socketFile: join(socketDir, "agent.sock"),
    socketRoot,
    socketDirOwned: !runtime && !home,
    systemSocketFile: runtime || home ? undefined : SYSTEM_SOCKET_FILE,
  };
}
