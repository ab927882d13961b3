import { GUID } from "../store/names.ts";

/**
 * A read-only look into MSAL's serialized token cache for an access token that MSAL itself would
 * hand out without a network request. It lets a cached `get-token` answer without loading
 * msal-node at all (msal-node costs more start-up time than the rest of the CLI together; see the
 * README's benchmark). MSAL stays the only writer of the cache: whenever this finds nothing
 * certain, the caller goes through MSAL.
 *
 * The format is MSAL's shared cache schema (the same JSON in MSAL .NET, Python, Java, Node):
 * sections `Account` and `AccessToken` of entities keyed by MSAL's cache keys.
 */

/** MSAL renews an access token this long before it expires (`tokenRenewalOffsetSeconds`). */
export const RENEWAL_OFFSET_SECONDS = 300;

/** Scopes of the sign-in itself: MSAL adds them to every request and leaves them out of cache matching. */
export const OIDC_SCOPES: ReadonlySet<string> = new Set(["openid", "profile", "offline_access", "email"]);

export interface CachedTokenQuery {
  readonly clientId: string;
  /** e.g. https://login.microsoftonline.com */
  readonly authorityHost: string;
  /** The profile's tenant: a GUID must match the token's realm; an alias or domain accepts the account's. */
  readonly tenantId: string;
  readonly scopes: readonly string[];
  /** Epoch ms. */
  readonly now: number;
}

export interface CachedToken {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  /** The token's scopes, without the OpenID Connect ones. */
  readonly scopes: readonly string[];
  readonly username: string;
  readonly tenantId: string;
  readonly homeAccountId: string;
}

type Entity = Readonly<Record<string, unknown>>;

function section(cache: unknown, name: string): Entity[] {
  if (typeof cache !== "object" || cache === null) return [];
  const value = (cache as Record<string, unknown>)[name];
  if (typeof value !== "object" || value === null) return [];
  return Object.values(value).filter((e): e is Entity => typeof e === "object" && e !== null);
}

function text(entity: Entity, key: string): string | undefined {
  const value = entity[key];
  return typeof value === "string" ? value : undefined;
}

function seconds(entity: Entity, key: string): number | undefined {
  const value = Number(text(entity, key) ?? entity[key]);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

function scopeSet(scopes: readonly string[]): Set<string> {
  return new Set(scopes.map((s) => s.toLowerCase()).filter((s) => !OIDC_SCOPES.has(s)));
}

/**
 * The access token MSAL's `acquireTokenSilent` would return from cache for this query, or
 * undefined when there is none it would return without asking the identity provider.
 */
export function findCachedAccessToken(
  serializedCache: string,
  query: CachedTokenQuery,
): CachedToken | undefined {
  let cache: unknown;
  try {
    cache = JSON.parse(serializedCache);
  } catch {
    return undefined;
  }
  const environment = new URL(query.authorityHost).host.toLowerCase();
  const wanted = scopeSet(query.scopes);
  const nowSeconds = query.now / 1000;
  const accounts = section(cache, "Account");
  // A profile holds one identity; with more than one, MSAL decides.
  if (accounts.length !== 1) return undefined;
  const account = accounts[0] as Entity;
  const homeAccountId = text(account, "home_account_id");
  if (!homeAccountId) return undefined;

  let best: { entity: Entity; expiresOn: number } | undefined;
  for (const entity of section(cache, "AccessToken")) {
    if (text(entity, "credential_type")?.toLowerCase() !== "accesstoken") continue;
    if (text(entity, "client_id")?.toLowerCase() !== query.clientId.toLowerCase()) continue;
    if (text(entity, "home_account_id") !== homeAccountId) continue;
    if (text(entity, "environment")?.toLowerCase() !== environment) continue;
    const realm = text(entity, "realm") ?? "";
    if (GUID.test(query.tenantId) && realm.toLowerCase() !== query.tenantId.toLowerCase()) continue;
    const tokenType = text(entity, "token_type") ?? "Bearer";
    if (tokenType.toLowerCase() !== "bearer") continue;
    const granted = scopeSet((text(entity, "target") ?? "").split(/\s+/));
    if ([...wanted].some((scope) => !granted.has(scope))) continue;
    const expiresOn = seconds(entity, "expires_on");
    if (expiresOn === undefined || expiresOn - RENEWAL_OFFSET_SECONDS <= nowSeconds) continue;
    const refreshOn = seconds(entity, "refresh_on");
    if (refreshOn !== undefined && refreshOn <= nowSeconds) continue;
    if (!text(entity, "secret")) continue;
    if (!best || expiresOn > best.expiresOn) best = { entity, expiresOn };
  }
  if (!best) return undefined;
  const target = (text(best.entity, "target") ?? "")
    .split(/\s+/)
    .filter((s) => s && !OIDC_SCOPES.has(s.toLowerCase()));
  return {
    accessToken: text(best.entity, "secret") ?? "",
    tokenType: text(best.entity, "token_type") ?? "Bearer",
    expiresAt: best.expiresOn * 1000,
    scopes: target,
    username: text(account, "username") ?? "",
    tenantId: text(best.entity, "realm") ?? text(account, "realm") ?? "",
    homeAccountId,
  };
}
