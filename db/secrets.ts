// Development secrets, generated once and kept in DATA_DIR/secrets.json (mode 0600) so that a
// second `npm start` reuses them: tokens stay valid and the database roles keep their passwords.
// Production sets JWT_SECRET and the role passwords explicitly (see core/config.ts).

import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";

export interface LocalSecrets {
  jwtSecret: string;
  ownerPassword: string;
  authenticatorPassword: string;
  embeddedSuperuserPassword: string;
}

function fresh(): string {
  return randomBytes(32).toString("base64url");
}

export function loadLocalSecrets(dataDir: string): LocalSecrets {
  const file = path.join(dataDir, "secrets.json");
  const existing: Partial<LocalSecrets> = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  const secrets: LocalSecrets = {
    jwtSecret: existing.jwtSecret ?? fresh(),
    ownerPassword: existing.ownerPassword ?? fresh(),
    authenticatorPassword: existing.authenticatorPassword ?? fresh(),
    embeddedSuperuserPassword: existing.embeddedSuperuserPassword ?? fresh(),
  };
  if (JSON.stringify(existing) !== JSON.stringify(secrets)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600 });
  }
  return secrets;
}
