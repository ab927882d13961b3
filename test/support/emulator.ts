import { createPublicKey, verify } from "node:crypto";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { type EmulatorOptions, EntraEmulator } from "../../scripts/emulator/server.ts";

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed body when it is JSON, else null. */
  json: Record<string, unknown> | null;
}

/** An emulator on virtual time plus HTTPS helpers that trust its CA (Bun's `fetch` `tls.ca`). */
export class EmulatorHarness {
  readonly clock: VirtualClock;
  readonly emulator: EntraEmulator;
  host = "";
  caPem = "";
  caPath = "";

  constructor(options: Omit<EmulatorOptions, "clock">, clock = new VirtualClock()) {
    this.clock = clock;
    this.emulator = new EntraEmulator({ ...options, clock });
  }

  async start(): Promise<this> {
    const started = await this.emulator.start();
    this.host = started.authorityHost;
    this.caPem = started.caPem;
    this.caPath = started.caPath;
    return this;
  }

  stop(): Promise<void> {
    return this.emulator.stop();
  }

  async request(path: string, init: RequestInit = {}): Promise<HttpResult> {
    const response = await fetch(`${this.host}${path}`, { ...init, tls: { ca: this.caPem } });
    const text = await response.text();
    let json: Record<string, unknown> | null = null;
    if ((response.headers.get("content-type") ?? "").includes("application/json")) {
      json = JSON.parse(text) as Record<string, unknown>;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  get(path: string): Promise<HttpResult> {
    return this.request(path);
  }

  postForm(
    path: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<HttpResult> {
    return this.request(path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(form).toString(),
    });
  }

  control(operation: string, body: unknown = {}): Promise<HttpResult> {
    return this.request(`/_emulator/${operation}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  deviceCode(
    tenant: string,
    clientId: string,
    scope = "User.Read openid profile offline_access",
  ): Promise<HttpResult> {
    return this.postForm(`/${tenant}/oauth2/v2.0/devicecode`, { client_id: clientId, scope });
  }

  poll(tenant: string, clientId: string, deviceCode: string, grantType = "device_code"): Promise<HttpResult> {
    return this.postForm(`/${tenant}/oauth2/v2.0/token`, {
      client_id: clientId,
      grant_type: grantType,
      device_code: deviceCode,
      client_info: "1",
    });
  }

  refresh(
    tenant: string,
    clientId: string,
    refreshToken: string,
    scope = "User.Read openid profile offline_access",
  ) {
    return this.postForm(`/${tenant}/oauth2/v2.0/token`, {
      client_id: clientId,
      grant_type: "refresh_token",
      refresh_token: refreshToken,
      scope,
      client_info: "1",
    });
  }
}

export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

export function decodeJwt(token: string): DecodedJwt {
  const [header = "", payload = ""] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(header, "base64url").toString("utf8")) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>,
  };
}

/** Verifies an RS256 JWT against a JWKS document with node:crypto alone. */
export function verifyJwt(token: string, jwks: { keys: Array<Record<string, unknown>> }): boolean {
  const [header = "", payload = "", signature = ""] = token.split(".");
  const { kid } = decodeJwt(token).header;
  const jwk = jwks.keys.find((key) => key.kid === kid);
  if (!jwk || typeof jwk.n !== "string" || typeof jwk.e !== "string") return false;
  const key = createPublicKey({ key: { kty: "RSA", n: jwk.n, e: jwk.e }, format: "jwk" });
  return verify("sha256", Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, "base64url"));
}

export function str(value: unknown): string {
  if (typeof value !== "string") throw new Error(`expected a string, got ${JSON.stringify(value)}`);
  return value;
}
