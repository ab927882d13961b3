/**
 * A certified OpenID provider (panva's oidc-provider) with RFC 8628's device flow, on loopback
 * HTTPS inside the test process, for entratool's sign-in to run against something that is not
 * Entra nor our emulator of it. One Provider per tenant, mounted where Entra has its issuer
 * (`/<tenant>/v2.0`, layout "v2") or at `/<tenant>` (layout "plain", discovery then at the plain
 * OpenID place). A person's approval is acted out through the provider's own pages: the user code
 * form, its confirmation, then the login and consent interactions, answered here.
 */
import { generateKeyPairSync } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import Provider, { type Configuration, type KoaContextWithOIDC } from "oidc-provider";
import { type Clock, systemClock } from "../../agent/core/clock.ts";
import { ensureTls } from "../../scripts/emulator/tls.ts";

/** A public client, as an app registration for the device code flow is (a GUID, as profiles require). */
export const IDP_CLIENT_ID = "8d1e4c2a-6b3f-4a5e-9c7d-0e1f2a3b4c5d";
/** An API whose one scope is `<resource>/.default`, the way Entra names them (resource indicators). */
export const IDP_RESOURCE = "https://api.entratool.test";
export const IDP_SCOPE = `${IDP_RESOURCE}/.default`;
export const IDP_ACCOUNT = {
  sub: "user-1",
  name: "Test User",
  preferred_username: "test.user@idp.example",
  email: "test.user@idp.example",
} as const;

const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

/** What the provider did, in order, stamped with the test's clock. */
export interface IdpEvent {
  readonly at: number;
  readonly tenant: string;
  readonly kind: "device_authorization" | "grant.success" | "grant.error";
  readonly grantType?: string;
  readonly error?: string;
}

export interface OidcIdpOptions {
  /** Where the TLS files live: the emulator's, so that one CA is trusted for both. */
  readonly tlsDir: string;
  /** Stamps events; the test's virtual clock. */
  readonly clock: Clock;
  readonly layout?: "v2" | "plain";
  /** Access token lifetime, seconds. Default 3600. */
  readonly accessTokenTtl?: number;
}

export class OidcIdp {
  readonly events: IdpEvent[] = [];
  /** Request lines (`GET /t/v2.0/.well-known/openid-configuration`), for "no request was made". */
  readonly requests: string[] = [];
  /** Every refresh token issued (their values), oldest first. */
  readonly refreshTokens: string[] = [];
  readonly #options: OidcIdpOptions;
  readonly #providers = new Map<string, { provider: Provider; handle: ReturnType<Provider["callback"]> }>();
  readonly #grants = new Map<string, Provider>();
  readonly #sockets = new Set<Socket>();
  readonly #jwk: Record<string, unknown>;
  #server: Server | undefined;
  #port = 0;
  #caPem = "";

  private constructor(options: OidcIdpOptions) {
    this.#options = options;
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.#jwk = { ...privateKey.export({ format: "jwk" }), kid: "idp-1", use: "sig", alg: "RS256" };
  }

  static async start(options: OidcIdpOptions): Promise<OidcIdp> {
    const idp = new OidcIdp(options);
    // Judged on real time: the test fakes Date (see World), and on its virtual time the emulator's
    // certificate would look not yet valid and be made anew under another CA.
    const realTime: Clock = {
      now: () => performance.timeOrigin + performance.now(),
      sleep: systemClock.sleep,
    };
    const tls = await ensureTls(options.tlsDir, { clock: realTime });
    idp.#caPem = tls.caPem;
    const server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
      void idp.#handle(req, res);
    });
    server.on("connection", (socket: Socket) => {
      idp.#sockets.add(socket);
      socket.once("close", () => idp.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");
    idp.#port = address.port;
    idp.#server = server;
    return idp;
  }

  get authorityHost(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  mountFor(tenant: string): string {
    return (this.#options.layout ?? "v2") === "v2" ? `/${tenant}/v2.0` : `/${tenant}`;
  }

  issuerFor(tenant: string): string {
    return `${this.authorityHost}${this.mountFor(tenant)}`;
  }

  /** Device code polls the provider answered, oldest first. */
  polls(): IdpEvent[] {
    return this.events.filter(
      (event) => event.kind !== "device_authorization" && event.grantType === DEVICE_CODE_GRANT,
    );
  }

  /** Revokes every grant (what an administrator's "sign out everywhere" does): refresh tokens die with them. */
  async revokeGrants(): Promise<number> {
    let revoked = 0;
    for (const [grantId, provider] of this.#grants) {
      const grant = await provider.Grant.find(grantId);
      if (grant) {
        await grant.destroy();
        revoked += 1;
      }
    }
    this.#grants.clear();
    return revoked;
  }

  /**
   * Approves a code as a person in a browser would: opens `url` (the verification URI, or the
   * complete one that carries the code), submits the forms the provider shows (typing `userCode`
   * where a code is asked for), confirms, and follows the login and consent interactions to the
   * provider's success page. Throws when it does not end there.
   */
  async approve(url: string, userCode?: string): Promise<void> {
    const cookies = new Map<string, string>();
    const go = async (target: string, form?: Record<string, string>): Promise<Response> => {
      const response = await fetch(target, {
        method: form ? "POST" : "GET",
        redirect: "manual",
        headers: {
          cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join("; "),
          ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}),
        },
        ...(form ? { body: new URLSearchParams(form).toString() } : {}),
        tls: { ca: this.#caPem },
      });
      for (const cookie of response.headers.getSetCookie()) {
        const [pair = ""] = cookie.split(";");
        const at = pair.indexOf("=");
        cookies.set(pair.slice(0, at), pair.slice(at + 1));
      }
      return response;
    };
    let response = await go(url);
    for (let step = 0; step < 12; step++) {
      if (response.status === 302 || response.status === 303) {
        response = await go(new URL(response.headers.get("location") ?? "", url).href);
        continue;
      }
      const html = await response.text();
      if (response.status !== 200)
        throw new Error(`the provider answered ${response.status}: ${html.slice(0, 300)}`);
      if (/<title>Sign-in Success<\/title>/.test(html)) return;
      const form = parseForm(html, url);
      if (!form) throw new Error(`no form and no success page: ${html.slice(0, 300)}`);
      if ("user_code" in form.fields && form.fields.user_code === "" && userCode)
        form.fields.user_code = userCode;
      // The confirmation page asks "continue?" with a submit button named confirm.
      if (form.confirm) form.fields.confirm = "yes";
      response = await go(form.action, form.fields);
    }
    throw new Error("the approval did not end on the provider's success page");
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.authorityHost);
    this.requests.push(`${req.method} ${url.pathname}`);
    const layout = this.#options.layout ?? "v2";
    const match = /^\/([^/]+)(\/v2\.0)?(\/.*)?$/.exec(url.pathname);
    const tenant = match?.[1];
    if (!match || !tenant || (layout === "v2") !== (match[2] !== undefined)) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not_found"}');
      return;
    }
    const { provider, handle } = this.#providerFor(tenant);
    const rest = match[3] ?? "/";
    try {
      if (rest.startsWith("/interaction/")) {
        await this.#interaction(provider, req, res);
        return;
      }
      // As when mounted in Express: the provider routes on the path below the mount and reads the
      // mount from originalUrl.
      Object.assign(req, { originalUrl: req.url });
      req.url = rest + url.search;
      await handle(req, res);
    } catch (error) {
      res.writeHead(500).end(String(error));
    }
  }

  /** Login as the one account, then consent to whatever the client asked for. */
  async #interaction(provider: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { prompt, params, session, grantId } = await provider.interactionDetails(req, res);
    if (prompt.name === "login") {
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: IDP_ACCOUNT.sub } },
        {
          mergeWithLastSubmission: true,
        },
      );
      return;
    }
    const grant =
      (grantId ? await provider.Grant.find(grantId) : undefined) ??
      new provider.Grant({
        accountId: session?.accountId ?? IDP_ACCOUNT.sub,
        clientId: String(params.client_id),
      });
    const details = prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(" "));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(" "));
    }
    const saved = await grant.save();
    this.#grants.set(saved, provider);
    await provider.interactionFinished(
      req,
      res,
      { consent: { grantId: saved } },
      { mergeWithLastSubmission: true },
    );
  }

  #providerFor(tenant: string): { provider: Provider; handle: ReturnType<Provider["callback"]> } {
    const existing = this.#providers.get(tenant);
    if (existing) return existing;
    const mount = this.mountFor(tenant);
    const ttl = this.#options.accessTokenTtl ?? 3600;
    const configuration: Configuration = {
      clients: [
        {
          client_id: IDP_CLIENT_ID,
          token_endpoint_auth_method: "none",
          grant_types: [DEVICE_CODE_GRANT, "refresh_token"],
          response_types: [],
          redirect_uris: [],
        },
      ],
      features: {
        deviceFlow: { enabled: true },
        devInteractions: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => IDP_RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, indicator) => {
            if (indicator !== IDP_RESOURCE) throw new Error(`unknown resource ${indicator}`);
            return {
              scope: IDP_SCOPE,
              audience: IDP_RESOURCE,
              accessTokenFormat: "jwt",
              accessTokenTTL: ttl,
              jwt: { sign: { alg: "RS256" } },
            };
          },
        },
      },
      interactions: { url: (_ctx, interaction) => `${mount}/interaction/${interaction.uid}` },
      findAccount: async (_ctx, sub) => ({
        accountId: sub,
        claims: async () => ({ ...IDP_ACCOUNT, sub, tid: tenant }),
      }),
      claims: {
        openid: ["sub", "tid"],
        profile: ["name", "preferred_username"],
        email: ["email"],
      },
      // Profile claims in the ID token itself, as Entra puts them (msal-node reads the account there).
      conformIdTokenClaims: false,
      ttl: {
        AccessToken: ttl,
        IdToken: 3600,
        DeviceCode: 600,
        RefreshToken: 14 * 86400,
        Grant: 14 * 86400,
        Session: 86400,
        Interaction: 600,
      },
      cookies: { keys: ["entratool-test-cookie-key-0123456789"] },
      jwks: { keys: [this.#jwk] },
    };
    const provider = new Provider(this.issuerFor(tenant), configuration);
    const stamp = (event: Omit<IdpEvent, "at" | "tenant">): void => {
      this.events.push({ at: this.#options.clock.now(), tenant, ...event });
    };
    provider.on("device_authorization.success", () => stamp({ kind: "device_authorization" }));
    provider.on("grant.success", (ctx: KoaContextWithOIDC) =>
      stamp({ kind: "grant.success", grantType: String(ctx.oidc.params?.grant_type) }),
    );
    provider.on("grant.error", (ctx: KoaContextWithOIDC, error: { error?: string }) =>
      stamp({
        kind: "grant.error",
        grantType: String(ctx.oidc.params?.grant_type),
        error: String(error.error),
      }),
    );
    provider.on("refresh_token.saved", (token: { jti: string; grantId?: string }) => {
      this.refreshTokens.push(token.jti);
      if (token.grantId) this.#grants.set(token.grantId, provider);
    });
    const entry = { provider, handle: provider.callback() };
    this.#providers.set(tenant, entry);
    return entry;
  }
}

/** The first form of a page: where it posts, its fields (hidden ones with values, inputs empty), and whether it confirms. */
function parseForm(
  html: string,
  base: string,
): { action: string; fields: Record<string, string>; confirm: boolean } | undefined {
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return undefined;
  const fields: Record<string, string> = {};
  for (const input of form[2]?.matchAll(/<input([^>]*)>/gi) ?? []) {
    const attributes = input[1] ?? "";
    const name = /name="([^"]*)"/.exec(attributes)?.[1];
    if (name) fields[name] = /value="([^"]*)"/.exec(attributes)?.[1] ?? "";
  }
  const confirm = /name="confirm"/.test(form[2] ?? "");
  delete fields.confirm;
  delete fields.abort;
  return {
    action: new URL(decodeHtml(form[1] ?? ""), base).href,
    fields: mapValues(fields, decodeHtml),
    confirm,
  };
}

function decodeHtml(text: string): string {
  return text
    .replace(/&amp;/g, "&")
    .replace(/&quot;/g, '"')
    .replace(/&#x2F;/g, "/")
    .replace(/&#39;/g, "'");
}

function mapValues(record: Record<string, string>, map: (value: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, map(value)]));
}
