import { createHash, createPublicKey, generateKeyPair, type KeyObject, sign, verify } from "node:crypto";

/** Microsoft Graph's application id: the audience Entra uses for scopes without a resource prefix. */
export const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";

/** Scopes that ask for the OpenID Connect sign-in itself, not for access to a resource. */
export const OIDC_SCOPES: ReadonlySet<string> = new Set(["openid", "profile", "offline_access", "email"]);

export interface PublicJwk {
  readonly kty: "RSA";
  readonly use: "sig";
  readonly alg: "RS256";
  readonly kid: string;
  readonly x5t: string;
  readonly n: string;
  readonly e: string;
  readonly issuer?: string;
}

/** One RSA key, as Entra signs with: RS256 and a `kid` that the JWKS lists. */
export class TokenSigner {
  readonly kid: string;
  readonly #privateKey: KeyObject;
  readonly #jwk: { n: string; e: string };

  private constructor(privateKey: KeyObject, jwk: { n: string; e: string }) {
    this.#privateKey = privateKey;
    this.#jwk = jwk;
    // RFC 7638 thumbprint: stable for the key, so a cached JWKS stays valid across restarts of the same key.
    this.kid = createHash("sha256")
      .update(JSON.stringify({ e: jwk.e, kty: "RSA", n: jwk.n }))
      .digest("base64url");
  }

  static async create(): Promise<TokenSigner> {
    const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>(
      (resolve, reject) =>
        generateKeyPair("rsa", { modulusLength: 2048 }, (error, publicKeyObject, privateKeyObject) =>
          error ? reject(error) : resolve({ privateKey: privateKeyObject, publicKey: publicKeyObject }),
        ),
    );
    const jwk = publicKey.export({ format: "jwk" });
    if (typeof jwk.n !== "string" || typeof jwk.e !== "string") throw new Error("RSA key export failed");
    return new TokenSigner(privateKey, { n: jwk.n, e: jwk.e });
  }

  publicJwk(issuer?: string): PublicJwk {
    return {
      kty: "RSA",
      use: "sig",
      alg: "RS256",
      kid: this.kid,
      x5t: this.kid,
      n: this.#jwk.n,
      e: this.#jwk.e,
      ...(issuer === undefined ? {} : { issuer }),
    };
  }

  sign(claims: Record<string, unknown>): string {
    const header = base64urlJson({ typ: "JWT", alg: "RS256", kid: this.kid, x5t: this.kid });
    const payload = base64urlJson(claims);
    const signature = sign("sha256", Buffer.from(`${header}.${payload}`), this.#privateKey).toString(
      "base64url",
    );
    return `${header}.${payload}.${signature}`;
  }

  /**
   * The claims of a token this signer issued, or undefined when the signature does not verify or
   * the token is malformed. Expiry is the caller's business (it owns the clock).
   */
  verify(token: string): Record<string, unknown> | undefined {
    const [header, payload, signature, ...rest] = token.split(".");
    if (!header || !payload || !signature || rest.length > 0) return undefined;
    const publicKey = createPublicKey(this.#privateKey);
    const ok = verify(
      "sha256",
      Buffer.from(`${header}.${payload}`),
      publicKey,
      Buffer.from(signature, "base64url"),
    );
    if (!ok) return undefined;
    try {
      const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
      return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
}

export function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

export function parseScopes(value: string): string[] {
  return [...new Set(value.split(/\s+/).filter((scope) => scope.length > 0))];
}

/**
 * The audience and `scp` claim Entra would put in an access token for these scopes. A token has
 * one audience, the resource of the first non-OIDC scope; scopes of other resources are left out
 * of `scp` (Entra refuses such requests with AADSTS28000, which the emulator does not copy).
 */
export function accessTokenTarget(scopes: readonly string[]): { aud: string; scp: string } {
  const resourceScopes = scopes.filter((scope) => !OIDC_SCOPES.has(scope.toLowerCase())).map(splitScope);
  const first = resourceScopes[0];
  if (!first) return { aud: GRAPH_APP_ID, scp: "User.Read" };
  const names = resourceScopes
    .filter((scope) => scope.resource === first.resource && scope.name !== ".default")
    .map((scope) => scope.name);
  // `.default` means "whatever has been consented"; the emulator's consent is a fixed minimum.
  const fallback =
    first.resource === GRAPH_APP_ID || first.resource.includes("graph.microsoft")
      ? "User.Read"
      : "user_impersonation";
  return { aud: first.resource, scp: names.length > 0 ? names.join(" ") : fallback };
}

function splitScope(scope: string): { resource: string; name: string } {
  const slash = scope.lastIndexOf("/");
  if (slash <= 0) return { resource: GRAPH_APP_ID, name: scope };
  return { resource: scope.slice(0, slash), name: scope.slice(slash + 1) };
}
