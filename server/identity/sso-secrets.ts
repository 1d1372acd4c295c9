// Organizations' SSO client secrets, encrypted here before they reach SQL and decrypted only to
// talk to the organization's issuer: AES-256-GCM with SSO_SECRET_KEY (core/config.ts), a fresh
// 12-byte IV each time, the connection's organization bound in as additional data (a ciphertext
// copied into another organization's row does not decrypt). Stored as one bytea:
// version (1) | IV (12) | tag (16) | ciphertext. Why Node and not pgcrypto with the key passed per
// call: the key would then travel in SQL text and parameters, where statement logs,
// pg_stat_statements and error reports can catch it; here it never leaves this process.

import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const VERSION = 1;

export function encryptSsoSecret(key: Buffer, organizationId: string, secret: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(organizationId, "utf8"));
  const body = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
}

export function decryptSsoSecret(key: Buffer, organizationId: string, stored: Buffer): string {
  if (stored.length < 29 || stored[0] !== VERSION) throw new Error("not an SSO secret of this version");
  const decipher = createDecipheriv("aes-256-gcm", key, stored.subarray(1, 13));
  decipher.setAAD(Buffer.from(organizationId, "utf8"));
  decipher.setAuthTag(stored.subarray(13, 29));
  return Buffer.concat([decipher.update(stored.subarray(29)), decipher.final()]).toString("utf8");
}
