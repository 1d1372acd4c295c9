// `npm run logs:check -- <file>…`: fails if a log file holds anything that looks like a
// secret: a JWT, a bearer token, a password value, a Stripe key or webhook secret, a database
// URL with its password. CI runs it over the JSON logs of the whole test run (LOG_FILE).

import { readFileSync } from "node:fs";

export const SECRET_PATTERNS: { name: string; pattern: RegExp }[] = [
  { name: "JWT", pattern: /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/ },
  { name: "bearer token", pattern: /Bearer\s+[A-Za-z0-9._~+/-]{16,}/i },
  { name: "password value", pattern: /"[a-z_]*password[a-z_]*"\s*:\s*"(?!\[redacted\]")[^"]+"/i },
  { name: "Stripe secret key", pattern: /\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{8,}/ },
  { name: "Stripe webhook secret", pattern: /\bwhsec_[A-Za-z0-9+/=]{8,}/ },
  { name: "Stripe signature header", pattern: /t=\d{9,},v1=[0-9a-f]{32,}/ },
  { name: "database URL with password", pattern: /postgres(?:ql)?:\/\/[^:/\s"@]+:(?!\*\*\*@)[^@\s"]+@/ },
  // a GraphQL source text with a secret typed inline, e.g. authenticate(input: {password: "…"}),
  // raw or escaped inside a JSON string; `password: $password` (a variable) is not one
  { name: "inline password or token argument", pattern: /\b[A-Za-z]*(?:password|token)\s*:\s*\\*"(?!\[redacted\])(?!\\*")/i },
  // the passwords the test suite uses for its accounts
  { name: "test account password", pattern: /correct horse battery/i },
];

export function findSecrets(text: string): { line: number; name: string; excerpt: string }[] {
  const found: { line: number; name: string; excerpt: string }[] = [];
  text.split("\n").forEach((line, index) => {
    for (const { name, pattern } of SECRET_PATTERNS) {
      const match = pattern.exec(line);
      if (match) found.push({ line: index + 1, name, excerpt: line.slice(Math.max(0, match.index - 40), match.index + 20) });
    }
  });
  return found;
}

if (process.argv[1]?.endsWith("check-log-secrets.ts")) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: npm run logs:check -- <log file>…");
    process.exit(2);
  }
  let problems = 0;
  let lines = 0;
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    lines += text.split("\n").length - 1;
    for (const hit of findSecrets(text)) {
      problems += 1;
      // show where, not the secret itself
      console.error(`${file}:${hit.line}: ${hit.name} (near ${JSON.stringify(hit.excerpt.slice(0, 40))}…)`);
    }
  }
  if (problems) {
    console.error(`logs:check: ${problems} secret-looking value(s) in ${lines} log lines`);
    process.exit(1);
  }
  console.log(`logs:check: ${lines} log lines, no tokens, passwords or Stripe secrets`);
}
