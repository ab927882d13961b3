/**
 * A throwaway certificate authority, for the Entra emulator's HTTPS (scripts/emulator/tls.ts) and
 * the test broker's TLS (scripts/broker/mosquitto.ts): EC P-256, its private key only ever in
 * memory, issuing server and client certificates. Never part of the binary.
 */
import { webcrypto } from "node:crypto";
import type * as X509 from "@peculiar/x509";

export const DAY_MS = 24 * 60 * 60 * 1000;

const EC_PARAMS: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

export interface IssuedCertificate {
  readonly certPem: string;
  /** PKCS #8. */
  readonly keyPem: string;
}

export interface ThrowawayCa {
  readonly caPem: string;
  /** A leaf certificate for `commonName`, for TLS servers or clients, with these subject alternative names. */
  issue(
    commonName: string,
    usage: "serverAuth" | "clientAuth",
    altNames?: readonly { readonly type: "ip" | "dns"; readonly value: string }[],
  ): Promise<IssuedCertificate>;
}

/**
 * A new CA named `CN=<name>`, valid for `days`, back-dated a day so that a peer whose clock lags a
 * little still accepts it and what it issues.
 */
export async function throwawayCa(name: string, now: number, days: number): Promise<ThrowawayCa> {
  // @peculiar/x509 builds on tsyringe, which needs the Reflect metadata polyfill loaded first.
  // Imported late: the polyfill must exist before x509 (through tsyringe) is evaluated.
  await import("reflect-metadata");
  const x509: typeof X509 = await import("@peculiar/x509");
  const crypto = webcrypto as Crypto;
  const notBefore = new Date(now - DAY_MS);
  const notAfter = new Date(now + days * DAY_MS);
  const caKeys = await crypto.subtle.generateKey(EC_PARAMS, true, ["sign", "verify"]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(crypto),
      name: `CN=${name}`,
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

  return {
    caPem: withNewline(ca.toString("pem")),
    async issue(commonName, usage, altNames = []) {
      const keys = await crypto.subtle.generateKey(EC_PARAMS, true, ["sign", "verify"]);
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: randomSerial(crypto),
          subject: `CN=${commonName}`,
          issuer: ca.subject,
          notBefore,
          notAfter,
          publicKey: keys.publicKey,
          signingKey: caKeys.privateKey,
          signingAlgorithm: SIGNING,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage[usage]], false),
            ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension([...altNames], false)] : []),
            await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
            await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
          ],
        },
        crypto,
      );
      const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
      return {
        certPem: withNewline(cert.toString("pem")),
        keyPem: withNewline(x509.PemConverter.encode(pkcs8, "PRIVATE KEY")),
      };
    },
  };
}

function randomSerial(crypto: Crypto): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // A leading zero bit keeps the DER INTEGER positive, as RFC 5280 requires.
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString("hex");
}

function withNewline(pem: string): string {
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}
