/**
 * Starts a node:http(s) server listening; resolves with the bound port (the chosen one
 * when asked for port 0), rejects with the bind error (e.g. EADDRINUSE).
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
