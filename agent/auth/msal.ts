/**
 * The only module that runs msal-node code. It is loaded on demand (SignInService's `loadMsal`),
 * and the compiled CLI embeds it as an entrypoint of its own (scripts/build.ts): msal-node takes
 * longer to load than the rest of the CLI together, and a cached token needs none of it.
 */
import {
  AuthError,
  type Configuration,
  type ICachePlugin,
  type INetworkModule,
  InteractionRequiredAuthError,
  LogLevel,
  PublicClientApplication,
  ServerError,
} from "@azure/msal-node";
import { EntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Profile } from "../store/types.ts";
import type { MsalAuthority } from "./discovery.ts";
import { classifyTokenError } from "./entra-errors.ts";

export interface MsalClientDeps {
  readonly cachePlugin: ICachePlugin;
  readonly networkClient: INetworkModule;
  readonly logger: Logger;
  /**
   * The authority and its metadata, from the provider's OpenID configuration (./discovery.ts's
   * `msalAuthority`): with them msal-node makes no discovery request of its own.
   */
  readonly authority: MsalAuthority;
}

/** Builds the MSAL client for one profile (a fresh one per operation; see FileTokenStore). */
export type MsalClientFactory = (profile: Profile, deps: MsalClientDeps) => PublicClientApplication;

export const createPublicClient: MsalClientFactory = (
  profile,
  { cachePlugin, networkClient, logger, authority },
) => {
  const verbose = logger.isLevelEnabled("debug");
  const configuration: Configuration = {
    auth: {
      clientId: profile.clientId,
      authority: authority.authority,
      knownAuthorities: authority.knownAuthorities,
      authorityMetadata: authority.authorityMetadata,
      cloudDiscoveryMetadata: authority.cloudDiscoveryMetadata,
    },
    cache: { cachePlugin },
    system: {
      networkClient,
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: verbose ? LogLevel.Verbose : LogLevel.Warning,
        // MSAL's own errors reach the user through our typed errors; its log is for debugging.
        loggerCallback: (level, message, containsPii) => {
          if (!containsPii) logger.debug({ component: "msal", msalLevel: LogLevel[level] }, message);
        },
      },
    },
  };
  return new PublicClientApplication(configuration);
};

/**
 * What an msal-node exception means for the user, or undefined when it is not one of msal-node's.
 * Branches on error classes and codes, never on message text.
 */
export function explainMsalError(thrown: unknown): EntraToolError | undefined {
  if (thrown instanceof InteractionRequiredAuthError) {
    return new EntraToolError("E_SIGN_IN_REQUIRED", { details: { msal: thrown.errorCode } });
  }
  if (thrown instanceof ServerError) {
    return classifyTokenError({ error: thrown.errorCode, suberror: thrown.subError }, "refresh");
  }
  if (thrown instanceof AuthError) {
    if (thrown.errorCode === "network_error") return new EntraToolError("E_NETWORK", { cause: thrown });
    if (thrown.errorCode === "no_tokens_found" || thrown.errorCode === "refresh_token_expired") {
      return new EntraToolError("E_SIGN_IN_REQUIRED", { details: { msal: thrown.errorCode } });
    }
  }
  return undefined;
}

/** This module's shape, as SignInService loads it. */
export interface MsalModule {
  readonly createPublicClient: MsalClientFactory;
  readonly explainMsalError: (thrown: unknown) => EntraToolError | undefined;
}
