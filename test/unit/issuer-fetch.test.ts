// server/identity/issuer-fetch.ts: organizations' issuers cannot be internal addresses (the check
// is in the socket's lookup, as for webhooks); local issuers only where allowed (development).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { issuerFetch } from "../../server/identity/issuer-fetch.ts";

test("internal addresses and local names are refused in production mode; allowed in development; answers are passed on", async () => {
  const server = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, path: req.url }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  try {
    const strict = issuerFetch({ allowPrivate: false, allowHttp: true });
    const init = { method: "GET", headers: {}, body: undefined, redirect: "manual" as const };
    for (const url of [`http://127.0.0.1:${port}/`, `http://localhost:${port}/`, "http://169.254.169.254/latest", "http://[::1]/", "http://0x7f000001/", "ftp://x.test/"]) {
      await expect(strict(url, init)).rejects.toThrow();
    }
    await expect(issuerFetch({ allowPrivate: false, allowHttp: false })("http://issuer.example.org/", init)).rejects.toThrow(/https/);
    const local = issuerFetch({ allowPrivate: true, allowHttp: true });
    const response = await local(`http://127.0.0.1:${port}/.well-known/openid-configuration`, { ...init, method: "POST", body: new URLSearchParams({ a: "1" }) });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ method: "POST", path: "/.well-known/openid-configuration" });
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
