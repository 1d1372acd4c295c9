// Connection strings for the project's roles are derived from the superuser's URL: same host
// and port, another user, password and database.

export function withCredentials(baseUrl: string, user: string, password: string | null, database: string): string {
  const url = new URL(baseUrl);
  url.username = encodeURIComponent(user);
  url.password = password === null ? "" : encodeURIComponent(password);
  url.pathname = "/" + database;
  return url.toString();
}

export function withDatabase(baseUrl: string, database: string): string {
  const url = new URL(baseUrl);
  url.pathname = "/" + database;
  return url.toString();
}

export function databaseNameOf(connectionString: string): string {
  return decodeURIComponent(new URL(connectionString).pathname.slice(1));
}

/** For log lines: the URL without its password. */
export function redact(connectionString: string): string {
  const url = new URL(connectionString);
  if (url.password) url.password = "***";
  return url.toString();
}
