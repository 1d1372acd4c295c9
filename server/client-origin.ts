// Where a request comes from, for the attempt limits and the session list: the client's address
// and user agent, handed to SQL as transaction-local settings (tenantbase.client_address,
// tenantbase.user_agent). The address is Express's req.ip: the socket's peer, unless TRUST_PROXY
// says which proxies to trust, and only then the address those proxies put in X-Forwarded-For
// (core/config.ts accountsConfig). A client cannot choose its address by sending the header.

import type { Request } from "express";

/** "::ffff:10.0.0.1" (an IPv4 client on a dual-stack socket) is 10.0.0.1. */
export function normalAddress(address: string | undefined): string | null {
  if (!address) return null;
  const plain = address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
  return plain.length <= 64 ? plain : null;
}

export function clientSettings(req: Request | undefined): Record<string, string> {
  if (!req) return {};
  const settings: Record<string, string> = {};
  const address = normalAddress(req.ip);
  if (address) settings["tenantbase.client_address"] = address;
  const agent = req.headers["user-agent"];
  if (typeof agent === "string" && agent !== "") settings["tenantbase.user_agent"] = agent.slice(0, 512);
  return settings;
}
