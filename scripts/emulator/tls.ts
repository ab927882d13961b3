import { createPrivateKey, X509Certificate as NodeX509Certificate, webcrypto } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type * as X509 from "@peculiar/x509";
import { type Clock, systemClock } from "../../agent/core/clock.ts";

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

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_FILE = "ca.pem";
const CERT_FILE = "server-cert.pem";
const KEY_FILE = "server-key.pem";
const SERVER_IPS = ["127.0.0.1", "::1"] as const;
const SERVER_DNS = "localhost";

const EC_PARAMS: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

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
  // @peculiar/x509 builds on tsyringe, which needs the Reflect metadata polyfill loaded first.
  await import("reflect-metadata");
  // Imported late: the polyfill must exist before x509 (through tsyringe) is evaluated, and reused
  // certificates need no x509 at all.
  const x509: typeof X509 = await import("@peculiar/x509");
  const crypto = webcrypto as Crypto;
  // Back-dated a day so that a peer whose clock lags a little still accepts the certificate.
  const notBefore = new Date(now - DAY_MS);
  const notAfter = new Date(now + 30 * DAY_MS);

  const caKeys = await crypto.subtle.generateKey(EC_PARAMS, true, ["sign", "verify"]);
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(crypto),
      name: "CN=entratool Entra emulator CA (throwaway)",
      notBefore,
      notAfter,
      keys: caKeys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const serverKeys = await crypto.subtle.generateKey(EC_PARAMS, true, ["sign", "verify"]);
  const serverCert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(crypto),
      subject: "CN=127.0.0.1",
      issuer: caCert.subject,
      notBefore,
      notAfter,
      publicKey: serverKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(
          [
            ...SERVER_IPS.map((value) => ({ type: "ip" as const, value })),
            { type: "dns", value: SERVER_DNS },
          ],
          false,
        ),
        await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const pkcs8 = await crypto.subtle.exportKey("pkcs8", serverKeys.privateKey);
  return {
    caPem: withNewline(caCert.toString("pem")),
    certPem: withNewline(serverCert.toString("pem")),
    keyPem: withNewline(x509.PemConverter.encode(pkcs8, "PRIVATE KEY")),
  };
}

function randomSerial(crypto: Crypto): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // A leading zero bit keeps the DER INTEGER positive, as RFC 5280 requires.
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString("hex");
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
}

function withNewline(pem: string): string {
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}
