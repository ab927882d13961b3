import { ensurePrivateDir, writeFileAtomic } from "../core/atomic.ts";
import type { Clock } from "../core/clock.ts";
import { EntraToolError, isEntraToolError } from "../core/errors.ts";
import { readFileCapped } from "../core/files.ts";
import { shownUrl } from "../core/http.ts";
import { isRecord } from "../core/json.ts";
import type { Logger } from "../core/log.ts";
import { join } from "../core/path.ts";
import { setAside } from "../core/set-aside.ts";
import { authorityError, httpsUrl, type ProviderEndpoints } from "./network.ts";

/**
 * The identity provider's OpenID configuration (OpenID Connect Discovery 1.0, RFC 8414): where
 * its token and device authorization endpoints are. Read where Entra and msal-node look for it,
 * `{authorityHost}/{tenant}/v2.0/.well-known/openid-configuration`, else (on a 404) at the plain
 * OpenID place under the authority, `{authorityHost}/{tenant}/.well-known/openid-configuration`.
 * So Entra in every cloud, and any provider that implements discovery and RFC 8628 with an issuer
 * at one of those places, works with `--authority-host`.
 *
 * The document is kept in the state directory for DISCOVERY_MAX_AGE_MS, so a refresh costs no
 * extra request; a stale copy is used (and the log says so) while the provider is unreachable.
 * A cached token needs none of this: the engine answers it before asking for the configuration.
 */

/** How long a fetched OpenID configuration is used before it is fetched again. */
export const DISCOVERY_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** Hosts of Microsoft Entra ID's clouds (public, US Government, China, and their older names). */
const ENTRA_HOSTS = new Set([
  "login.microsoftonline.com",
  "login.microsoft.com",
  "login.windows.net",
  "sts.windows.net",
  "login.microsoftonline.us",
  "login.usgovcloudapi.net",
  "login.chinacloudapi.cn",
  "login.partner.microsoftonline.cn",
]);

/** What entratool takes from an OpenID configuration; every URL is https. */
export interface ProviderMetadata extends ProviderEndpoints {
  /** `{authorityHost}/{tenant}`: the authority msal-node is given. */
  readonly authority: string;
  readonly issuer: string;
  readonly tokenEndpoint: string;
  readonly deviceAuthorizationEndpoint: string;
  /** true when the document named no device_authorization_endpoint and Entra's path was derived. */
  readonly deviceAuthorizationDerived: boolean;
  readonly authorizationEndpoint: string;
  readonly jwksUri: string;
  readonly endSessionEndpoint: string;
  /** Microsoft Entra ID (by its document's `cloud_instance_name` or its host). */
  readonly entra: boolean;
  /** The URL the document was read from. */
  readonly source: string;
  /** Epoch ms when it was fetched. */
  readonly fetchedAt: number;
}

/** The fields kept on disk, as the provider named them (validated again when read back). */
interface StoredDocument {
  readonly issuer: string;
  readonly token_endpoint: string;
  readonly device_authorization_endpoint?: string;
  readonly authorization_endpoint?: string;
  readonly jwks_uri?: string;
  readonly end_session_endpoint?: string;
  readonly cloud_instance_name?: string;
}

interface CacheFile {
  readonly version: 1;
  readonly authority: string;
  readonly source: string;
  readonly fetchedAt: number;
  readonly document: StoredDocument;
}

/** Fetches a JSON document (EntraNetworkClient.getDocument): any status; `body` undefined when not JSON. */
export type FetchDocument = (url: string) => Promise<{ readonly status: number; readonly body: unknown }>;

export interface ProviderDiscoveryOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Paths.discoveryDir. Absent: documents are kept in memory only (one process). */
  readonly dir?: string;
  /** Paths.stateRoot: from there down to `dir`, every directory must be private (ensurePrivateDir). */
  readonly privateRoot?: string;
  /** Default DISCOVERY_MAX_AGE_MS. */
  readonly maxAgeMs?: number;
}

/** `{authorityHost}/{tenant}` as msal-node and the cache key name it. */
export function authorityOf(authorityHost: string, tenant: string): string {
  return `${authorityHost.replace(/\/+$/, "")}/${tenant}`;
}

/**
 * 12 hex digits that tell apart authorities whose readable file names are the same. Not for
 * security (the file holds nothing secret), and not node:crypto, which costs the CLI's start-up
 * time even when a cached token needs no discovery at all: two 32-bit FNV-1a passes.
 */
function nameHash(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    a = Math.imul(a ^ code, 0x01000193) >>> 0;
    b = Math.imul(b ^ code ^ (i & 0xff), 0x01000193) >>> 0;
  }
  return `${a.toString(16).padStart(8, "0")}${b.toString(16).padStart(8, "0")}`.slice(0, 12);
}

/**
 * Where Entra's device code endpoint is, from its token endpoint: the last path segment `token`
 * becomes `devicecode` (only that one: a tenant named `tokens.example.com` stays as it is).
 */
export function derivedDeviceEndpoint(tokenEndpoint: string): string | undefined {
  const url = new URL(tokenEndpoint);
  if (!/\/token$/.test(url.pathname)) return undefined;
  url.pathname = url.pathname.replace(/\/token$/, "/devicecode");
  return url.href;
}

/**
 * The metadata in an OpenID configuration, or why there is none. Missing optional endpoints are
 * filled (msal-node insists on an authorization, JWKS and logout endpoint, none of which the
 * device code flow or a refresh ever requests) from the token endpoint's directory.
 */
export function parseOpenIdConfiguration(
  document: unknown,
  authority: string,
  source: string,
  fetchedAt: number,
): ProviderMetadata | string {
  if (!isRecord(document)) return "not a JSON object";
  const optionalUrl = (name: string): string | undefined | false => {
    const value = document[name];
    if (value === undefined || value === null) return undefined;
    return httpsUrl(value) ?? false;
  };
  // Entra's multi-tenant issuer holds a `{tenantid}` placeholder: an https URL all the same.
  const issuer =
    typeof document.issuer === "string"
      ? httpsUrl(document.issuer.replace("{tenantid}", "tenantid"))
      : undefined;
  if (issuer === undefined) return "no https issuer";
  const tokenEndpoint = optionalUrl("token_endpoint");
  if (!tokenEndpoint) return "no https token_endpoint";
  const named = {
    device_authorization_endpoint: optionalUrl("device_authorization_endpoint"),
    authorization_endpoint: optionalUrl("authorization_endpoint"),
    jwks_uri: optionalUrl("jwks_uri"),
    end_session_endpoint: optionalUrl("end_session_endpoint"),
  };
  for (const [name, value] of Object.entries(named)) {
    if (value === false) return `${name} is not an https URL`;
  }
  const deviceAuthorizationEndpoint =
    named.device_authorization_endpoint || derivedDeviceEndpoint(tokenEndpoint);
  if (!deviceAuthorizationEndpoint) return "no device_authorization_endpoint (no device code flow)";
  const sibling = (name: string): string => new URL(name, tokenEndpoint).href;
  const entra =
    typeof document.cloud_instance_name === "string" || ENTRA_HOSTS.has(new URL(authority).hostname);
  return {
    authority,
    issuer: String(document.issuer),
    tokenEndpoint,
    deviceAuthorizationEndpoint,
    deviceAuthorizationDerived: !named.device_authorization_endpoint,
    authorizationEndpoint: named.authorization_endpoint || sibling("authorize"),
    jwksUri: named.jwks_uri || sibling("keys"),
    endSessionEndpoint: named.end_session_endpoint || sibling("logout"),
    entra,
    source,
    fetchedAt,
  };
}

/** What msal-node's configuration needs so that it makes no discovery request of its own. */
export interface MsalAuthority {
  readonly authority: string;
  readonly knownAuthorities: string[];
  readonly authorityMetadata: string;
  readonly cloudDiscoveryMetadata: string;
}

export function msalAuthority(provider: ProviderMetadata): MsalAuthority {
  const host = new URL(provider.authority).host;
  return {
    authority: provider.authority,
    knownAuthorities: [host],
    authorityMetadata: JSON.stringify({
      issuer: provider.issuer,
      authorization_endpoint: provider.authorizationEndpoint,
      token_endpoint: provider.tokenEndpoint,
      device_authorization_endpoint: provider.deviceAuthorizationEndpoint,
      jwks_uri: provider.jwksUri,
      end_session_endpoint: provider.endSessionEndpoint,
    }),
    cloudDiscoveryMetadata: JSON.stringify({
      tenant_discovery_endpoint: provider.source,
      "api-version": "1.1",
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    }),
  };
}

function stored(document: Record<string, unknown>): StoredDocument {
  const pick = (name: string): Record<string, string> =>
    typeof document[name] === "string" ? { [name]: document[name] as string } : {};
  return {
    issuer: String(document.issuer),
    token_endpoint: String(document.token_endpoint),
    ...pick("device_authorization_endpoint"),
    ...pick("authorization_endpoint"),
    ...pick("jwks_uri"),
    ...pick("end_session_endpoint"),
    ...pick("cloud_instance_name"),
  };
}

/**
 * Finds and keeps identity providers' OpenID configurations: in memory, and (with `dir`) in one
 * 0600 file per authority in a 0700 directory, written atomically. No secrets are in them.
 */
export class ProviderDiscovery {
  readonly #options: ProviderDiscoveryOptions;
  readonly #memory = new Map<string, ProviderMetadata>();

  constructor(options: ProviderDiscoveryOptions) {
    this.#options = options;
  }

  /**
   * The provider behind `{authorityHost}/{tenant}`: a copy younger than the maximum age, else the
   * document fetched with `fetchDocument` (and kept), else, when the provider cannot be reached,
   * an older copy. Throws E_AUTHORITY for an answer that is no OpenID configuration, E_NETWORK
   * or E_TLS when it cannot be fetched and no copy exists.
   */
  async resolve(
    authorityHost: string,
    tenant: string,
    fetchDocument: FetchDocument,
  ): Promise<ProviderMetadata> {
    const { clock, logger } = this.#options;
    const authority = authorityOf(authorityHost, tenant);
    const maxAge = this.#options.maxAgeMs ?? DISCOVERY_MAX_AGE_MS;
    const now = clock.now();
    const fresh = (copy: ProviderMetadata | undefined): boolean =>
      copy !== undefined && copy.fetchedAt <= now && now - copy.fetchedAt < maxAge;
    let copy = this.#memory.get(authority);
    if (!fresh(copy)) copy = (await this.#read(authority)) ?? copy;
    if (copy && fresh(copy)) {
      this.#memory.set(authority, copy);
      return copy;
    }
    try {
      const fetched = await this.#fetch(authority, fetchDocument);
      this.#memory.set(authority, fetched.metadata);
      await this.#write(authority, fetched.metadata, fetched.document);
      return fetched.metadata;
    } catch (error) {
      if (!copy || !(isEntraToolError(error, "E_NETWORK") || isEntraToolError(error, "E_TLS"))) throw error;
      logger.warn(
        { authority, fetchedAt: new Date(copy.fetchedAt).toISOString(), reason: error.message },
        "the identity provider's OpenID configuration could not be fetched; using the copy kept earlier",
      );
      return copy;
    }
  }

  async #fetch(
    authority: string,
    fetchDocument: FetchDocument,
  ): Promise<{ metadata: ProviderMetadata; document: StoredDocument }> {
    const primary = `${authority}/v2.0/.well-known/openid-configuration`;
    const fallback = `${authority}/.well-known/openid-configuration`;
    let source = primary;
    let answer = await fetchDocument(primary);
    if (answer.status === 404) {
      source = fallback;
      answer = await fetchDocument(fallback);
      // Both absent: the place Entra (and most users' expectation) has it is the one to name.
      if (answer.status === 404) throw authorityError(primary, 404);
    }
    const body = answer.body;
    if (answer.status !== 200) {
      const codes = isRecord(body) && Array.isArray(body.error_codes) ? body.error_codes : [];
      if ((isRecord(body) && body.error === "invalid_tenant") || codes.includes(90002)) {
        throw new EntraToolError("E_APP_REGISTRATION", {
          message: `The identity provider does not know the tenant in ${shownUrl(source)}: check --tenant-id in the profile.`,
          details: { url: shownUrl(source), status: answer.status, error_codes: codes },
        });
      }
      throw authorityError(
        source,
        answer.status,
        body === undefined ? " with something that is not JSON" : "",
      );
    }
    if (body === undefined) throw authorityError(source, 200, " with something that is not JSON");
    const metadata = parseOpenIdConfiguration(body, authority, source, this.#options.clock.now());
    if (typeof metadata === "string") {
      throw authorityError(source, 200, ` with no usable OpenID configuration (${metadata})`);
    }
    if (metadata.deviceAuthorizationDerived) {
      this.#options.logger.info(
        { authority, deviceAuthorizationEndpoint: shownUrl(metadata.deviceAuthorizationEndpoint) },
        "the OpenID configuration names no device_authorization_endpoint; using Entra's path",
      );
    }
    return { metadata, document: stored(body as Record<string, unknown>) };
  }

  #file(authority: string): string | undefined {
    const dir = this.#options.dir;
    if (dir === undefined) return undefined;
    const url = new URL(authority);
    const readable = `${url.host}${url.pathname}`.replace(/[^A-Za-z0-9.-]+/g, "_").slice(0, 80);
    return join(dir, `${readable}-${nameHash(authority)}.json`);
  }

  /** The copy kept on disk, if there is a usable one; a damaged one is set aside (and logged). */
  async #read(authority: string): Promise<ProviderMetadata | undefined> {
    const file = this.#file(authority);
    if (file === undefined) return undefined;
    let text: string;
    try {
      text = (await readFileCapped(file)).toString("utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return undefined;
      if (code !== "EFBIG") {
        this.#options.logger.warn(
          { file, code },
          "cannot read the kept OpenID configuration; fetching it again",
        );
        return undefined;
      }
      return this.#setAside(file, "larger than any OpenID configuration");
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.#setAside(file, "not JSON");
    }
    if (
      !isRecord(parsed) ||
      parsed.version !== 1 ||
      parsed.authority !== authority ||
      typeof parsed.source !== "string" ||
      typeof parsed.fetchedAt !== "number" ||
      !Number.isFinite(parsed.fetchedAt)
    ) {
      return this.#setAside(file, "not an entratool discovery file for this authority");
    }
    const metadata = parseOpenIdConfiguration(parsed.document, authority, parsed.source, parsed.fetchedAt);
    if (typeof metadata === "string") return this.#setAside(file, metadata);
    return metadata;
  }

  async #setAside(file: string, reason: string): Promise<undefined> {
    const { clock, logger } = this.#options;
    try {
      const aside = await setAside(file, { clock });
      logger.warn({ file, aside, reason }, "Unusable OpenID configuration file set aside; fetching it again");
    } catch (error) {
      logger.warn(
        { file, reason, code: (error as NodeJS.ErrnoException).code },
        "cannot set aside an unusable OpenID configuration file",
      );
    }
    return undefined;
  }

  /** Keeps the document on disk; a failure costs only a later request, so it is logged, not thrown. */
  async #write(authority: string, metadata: ProviderMetadata, document: StoredDocument): Promise<void> {
    const file = this.#file(authority);
    const dir = this.#options.dir;
    if (file === undefined || dir === undefined) return;
    const content: CacheFile = {
      version: 1,
      authority,
      source: metadata.source,
      fetchedAt: metadata.fetchedAt,
      document,
    };
    try {
      await ensurePrivateDir(dir, this.#options.privateRoot);
      await writeFileAtomic(file, `${JSON.stringify(content, null, 2)}\n`, 0o600);
    } catch (error) {
      this.#options.logger.warn(
        { file, code: (error as NodeJS.ErrnoException).code },
        "cannot keep the OpenID configuration on disk; it will be fetched again next time",
      );
    }
  }
}
