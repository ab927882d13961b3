import { createPrivateKey, X509Certificate as NodeX509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Clock, systemClock } from "../../agent/core/clock.ts";
import { DAY_MS, throwawayCa } from "../pki.ts";

export interface EmulatorTls {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** Absolute or cwd-relative path of `ca.pem`, for NODE_EXTRA_CA_CERTS. */
  readonly caPath: string;
}

export interface EnsureTlsOptions {
  /**
   * Certificate validity is judged by the TLS peer against its real clock, so this must be real
   * time; it is injectable only so that the reuse rule can be tested.
   */
  readonly clock?: Clock;
}

const CA_FILE = "ca.pem";
const CERT_FILE = "server-cert.pem";
const KEY_FILE = "server-key.pem";
const SERVER_IPS = ["127.0.0.1", "::1"] as const;
const SERVER_DNS = "localhost";

/**
 * Returns a CA and a loopback server certificate in `dir`, creating them when missing or when they
 * would expire within a day. The CA's private key is never written: when the server certificate
 * needs renewing, a new CA is made, and whoever trusts `ca.pem` re-reads the same path.
 */
export async function ensureTls(dir: string, options: EnsureTlsOptions = {}): Promise<EmulatorTls> {
  const clock = options.clock ?? systemClock;
  const caPath = join(dir, CA_FILE);
  const existing = await readExisting(dir, clock.now());
  if (existing) return { ...existing, caPath };

  const created = await createTls(clock.now());
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeAtomic(join(dir, KEY_FILE), created.keyPem, 0o600);
  await writeAtomic(join(dir, CERT_FILE), created.certPem, 0o644);
  // ca.pem last: a reader that finds it can rely on the server files belonging to it.
  await writeAtomic(caPath, created.caPem, 0o644);
  return { ...created, caPath };
}

async function readExisting(
  dir: string,
  now: number,
): Promise<{ caPem: string; certPem: string; keyPem: string } | null> {
  let caPem: string;
  let certPem: string;
  let keyPem: string;
  try {
    [caPem, certPem, keyPem] = await Promise.all([
      readFile(join(dir, CA_FILE), "utf8"),
      readFile(join(dir, CERT_FILE), "utf8"),
      readFile(join(dir, KEY_FILE), "utf8"),
    ]);
  } catch {
    return null;
  }
  try {
    const ca = new NodeX509Certificate(caPem);
    const cert = new NodeX509Certificate(certPem);
    const mustLastUntil = now + DAY_MS;
    const valid =
      ca.ca &&
      cert.verify(ca.publicKey) &&
      cert.checkPrivateKey(createPrivateKey(keyPem)) &&
      SERVER_IPS.every((ip) => cert.checkIP(ip) !== undefined) &&
      cert.checkHost(SERVER_DNS) !== undefined &&
      Date.parse(cert.validFrom) <= now &&
      Date.parse(ca.validFrom) <= now &&
      Date.parse(cert.validTo) >= mustLastUntil &&
      Date.parse(ca.validTo) >= mustLastUntil;
    return valid ? { caPem, certPem, keyPem } : null;
  } catch {
    return null;
  }
}

async function createTls(now: number): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const ca = await throwawayCa("entratool Entra emulator CA (throwaway)", now, 30);
  const server = await ca.issue("127.0.0.1", "serverAuth", [
    ...SERVER_IPS.map((value) => ({ type: "ip" as const, value })),
    { type: "dns", value: SERVER_DNS },
  ]);
  return { caPem: ca.caPem, ...server };
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
}
