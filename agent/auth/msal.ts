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
import { classifyTokenError } from "./entra-errors.ts";

/**
 * Entra's v2.0 endpoints for an authority host and tenant. They follow one pattern in every
 * cloud (public, US Gov, China), so we give them to MSAL instead of letting it discover them:
 * no discovery request at start-up, and a cached token is served with no network at all.
 */
export function authorityMetadata(authorityHost: string, tenant: string) {
  const base = `${authorityHost}/${tenant}`;
  const host = new URL(authorityHost).host;
  return {
    authority: base,
    knownAuthority: host,
    openIdConfiguration: {
      issuer: `${authorityHost}/{tenantid}/v2.0`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      token_endpoint: `${base}/oauth2/v2.0/token`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
    },
    cloudDiscovery: {
      tenant_discovery_endpoint: `${base}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    },
  };
}

export interface MsalClientDeps {
  readonly cachePlugin: ICachePlugin;
  readonly networkClient: INetworkModule;
  readonly logger: Logger;
}

/** Builds the MSAL client for one profile (a fresh one per operation; see FileTokenStore). */
export type MsalClientFactory = (profile: Profile, deps: MsalClientDeps) => PublicClientApplication;

export const createPublicClient: MsalClientFactory = (profile, { cachePlugin, networkClient, logger }) => {
  const meta = authorityMetadata(profile.authorityHost, profile.tenantId);
  const verbose = logger.isLevelEnabled("debug");
  const configuration: Configuration = {
    auth: {
      clientId: profile.clientId,
      authority: meta.authority,
      knownAuthorities: [meta.knownAuthority],
      authorityMetadata: JSON.stringify(meta.openIdConfiguration),
      cloudDiscoveryMetadata: JSON.stringify(meta.cloudDiscovery),
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
