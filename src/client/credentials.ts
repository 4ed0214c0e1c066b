/**
 * Channel credentials from GatewayClientOptions: plaintext by default (the gateway
 * listens on loopback), TLS with the system roots or given PEMs, or the caller's own.
 */
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import type { GatewayClientOptions } from "./options.js";

export function channelCredentials(options: Pick<GatewayClientOptions, "credentials" | "tls">): ChannelCredentials {
  if (options.credentials !== undefined) return options.credentials;
  if (options.tls === undefined || options.tls === false) return credentials.createInsecure();
  const tls = options.tls === true ? {} : options.tls;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new TypeError("GatewayClient: tls.cert and tls.key go together (mutual TLS needs both)");
  }
  return credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

function pem(value: Buffer | string | undefined): Buffer | null {
  if (value === undefined) return null;
  return typeof value === "string" ? Buffer.from(value, "utf8") : value;
}
