// Development secrets, generated once and kept in DATA_DIR/secrets.json (mode 0600) so that a
// second `npm start` reuses them: tokens stay valid and the database roles keep their passwords.
// Production sets JWT_SECRET and the role passwords explicitly (see core/config.ts).
//
// Several processes may start together on one DATA_DIR (servers and workers of one machine).
// The file is therefore never written in place: a complete copy is written under a private name
// and then linked to secrets.json, which fails if another process got there first; that process's
// secrets are then read and used, so every process agrees on one set.

import { randomBytes } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface LocalSecrets {
  jwtSecret: string;
  ownerPassword: string;
  authenticatorPassword: string;
  embeddedSuperuserPassword: string;
  /** 32 random bytes, base64url: the development SSO_SECRET_KEY. */
  ssoSecretKey: string;
}

const KEYS = ["jwtSecret", "ownerPassword", "authenticatorPassword", "embeddedSuperuserPassword", "ssoSecretKey"] as const;

function fresh(): string {
  return randomBytes(32).toString("base64url");
}

/** The values of `existing`, with a new one for each that is missing. */
function filledIn(existing: Partial<LocalSecrets>): LocalSecrets {
  return Object.fromEntries(KEYS.map((key) => [key, existing[key] || fresh()])) as unknown as LocalSecrets;
}

function writePrivateCopy(dataDir: string, secrets: LocalSecrets): string {
  const temp = path.join(dataDir, `.secrets.${process.pid}.${randomBytes(6).toString("hex")}.json`);
  writeFileSync(temp, JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  return temp;
}

export function loadLocalSecrets(dataDir: string): LocalSecrets {
  const file = path.join(dataDir, "secrets.json");
  mkdirSync(dataDir, { recursive: true });
  if (!existsSync(file)) {
    const temp = writePrivateCopy(dataDir, filledIn({}));
    try {
      linkSync(temp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // Another process created it first: use its secrets (read below).
    } finally {
      unlinkSync(temp);
    }
  }
  const existing = JSON.parse(readFileSync(file, "utf8")) as Partial<LocalSecrets>;
  const filled = filledIn(existing);
  if (KEYS.every((key) => filled[key] === existing[key])) return filled;
  // A file from an older version lacks a key: add the missing ones, keeping every existing value,
  // and replace the file in one step so no reader sees half of it.
  renameSync(writePrivateCopy(dataDir, filled), file);
  return JSON.parse(readFileSync(file, "utf8")) as LocalSecrets;
}
