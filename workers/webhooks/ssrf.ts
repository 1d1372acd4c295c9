// The one way to reach a customer's URL: an HTTP(S) agent whose DNS lookup refuses internal
// addresses at connect time. Checking the URL's name before the request is not enough (the name
// can resolve to something else a moment later: DNS rebinding), so the check is inside the
// socket's own lookup, for every address the name resolves to, and a literal IP in the URL (which
// Node connects to without a lookup) is checked before the request. Redirects are never followed
// (workers/webhooks/http.ts). The ranges are those of app_private.is_internal_address
// (db/functions/600-webhooks/endpoints.sql); a test compares the two lists.

import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";

export const INTERNAL_RANGES: [string, number, "ipv4" | "ipv6"][] = [
  ["0.0.0.0", 8, "ipv4"], ["10.0.0.0", 8, "ipv4"], ["100.64.0.0", 10, "ipv4"], ["127.0.0.0", 8, "ipv4"],
  ["169.254.0.0", 16, "ipv4"], ["172.16.0.0", 12, "ipv4"], ["192.0.0.0", 24, "ipv4"], ["192.0.2.0", 24, "ipv4"],
  ["192.88.99.0", 24, "ipv4"], ["192.168.0.0", 16, "ipv4"], ["198.18.0.0", 15, "ipv4"], ["198.51.100.0", 24, "ipv4"],
  ["203.0.113.0", 24, "ipv4"], ["224.0.0.0", 4, "ipv4"], ["240.0.0.0", 4, "ipv4"],
  ["::", 128, "ipv6"], ["::1", 128, "ipv6"], ["::ffff:0:0", 96, "ipv6"], ["64:ff9b::", 96, "ipv6"], ["64:ff9b:1::", 48, "ipv6"],
  ["100::", 64, "ipv6"], ["2001:db8::", 32, "ipv6"], ["2002::", 16, "ipv6"], ["fc00::", 7, "ipv6"], ["fe80::", 10, "ipv6"],
  ["fec0::", 10, "ipv6"], ["ff00::", 8, "ipv6"],
];

// Two lists: Node's BlockList matches IPv4 addresses against IPv4-mapped IPv6 ranges too, and
// ::ffff:0:0/96 (every mapped address, refused as such) would then cover all of IPv4.
const internal4 = new net.BlockList();
const internal6 = new net.BlockList();
for (const [address, prefix, family] of INTERNAL_RANGES) (family === "ipv4" ? internal4 : internal6).addSubnet(address, prefix, family);

/** Whether an IP address (v4 or v6, any textual form Node accepts) is one a webhook must not reach. */
export function isInternalAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, "");
  const family = net.isIP(bare);
  if (family === 0) return true; // not an address: refuse rather than guess
  return family === 4 ? internal4.check(bare, "ipv4") : internal6.check(bare, "ipv6");
}

export class ForbiddenAddressError extends Error {
  code = "WEBHOOK_ADDRESS_FORBIDDEN";
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/** dns.lookup, refusing (with ForbiddenAddressError) when any resolved address is internal. */
export function safeLookup(allowPrivate: boolean) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, "");
      const list = addresses as dns.LookupAddress[];
      const bad = list.find((a) => isInternalAddress(a.address));
      if (bad && !allowPrivate) {
        return callback(new ForbiddenAddressError(`${hostname} resolves to an internal address (${bad.address}); refused`), "");
      }
      if (options.all) return callback(null, list);
      callback(null, list[0].address, list[0].family);
    });
  };
}

/** Agents for http and https whose connections go through safeLookup; no keep-alive across tenants. */
export function safeAgents(allowPrivate: boolean): { http: http.Agent; https: https.Agent } {
  const lookup = safeLookup(allowPrivate) as unknown as net.LookupFunction;
  return {
    http: new http.Agent({ lookup, keepAlive: false }),
    https: new https.Agent({ lookup, keepAlive: false }),
  };
}

/**
 * The URL parsed, or an error sentence: http(s) only (http only when allowed), no credentials,
 * and a literal IP host (in any form WHATWG URL normalizes: decimal, hex, octal, IPv4-mapped)
 * checked here because Node connects to a literal without a lookup.
 */
export function checkWebhookUrl(raw: string, options: { allowHttp: boolean; allowPrivate: boolean }): { url: URL } | { error: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { error: "The URL is not valid." };
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && options.allowHttp)) {
    return { error: "The URL must use https." };
  }
  if (url.username || url.password) return { error: "The URL must not carry credentials." };
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!options.allowPrivate) {
    if (net.isIP(host) && isInternalAddress(host)) return { error: `${host} is an internal address; refused.` };
    if (host === "localhost" || host.endsWith(".localhost")) return { error: `${host} is a local host; refused.` };
  }
  return { url };
}
