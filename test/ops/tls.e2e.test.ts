/**
 * TLS and mutual TLS on both listeners, with the test CA in test/fixtures/tls.
 */
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { fileURLToPath } from "node:url";
import { credentials, status, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ChatServiceClient } from "../../gen/aigateway/v1/chat.js";
import { create, startHarness, userRequest } from "../helpers/harness.js";

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
const pem = (name: string): Buffer => readFileSync(fixture(name));

const TLS_ENV = { TLS_CERT_FILE: fixture("server.pem"), TLS_KEY_FILE: fixture("server.key"), HTTP_PORT: "0" };
const MTLS_ENV = { ...TLS_ENV, TLS_CLIENT_CA_FILE: fixture("ca.pem") };

/** One unary call with the given credentials on a fresh channel; resolves with the status code. */
async function callWith(address: string, creds: ChannelCredentials): Promise<number> {
  const client = new ChatServiceClient(address, creds);
  try {
    await create(client, userRequest("over tls"), { deadline: Date.now() + 5000 });
    return status.OK;
  } catch (err) {
    return (err as ServiceError).code;
  } finally {
    client.close();
  }
}

/** GET /healthz over HTTPS; resolves with the status, or the TLS error's code. */
function httpsGet(port: number, options: { ca?: Buffer; cert?: Buffer; key?: Buffer }): Promise<number | string> {
  return new Promise((resolve) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path: "/healthz", method: "GET", servername: "localhost", agent: false, timeout: 5000, ...options }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

describe("TLS", () => {
  it("serves gRPC and HTTPS to clients that trust the CA, and nothing to plaintext clients", async () => {
    const h = await startHarness({ env: TLS_ENV, clientCredentials: credentials.createSsl(pem("ca.pem")) });
    try {
      expect((await create(h.chat, userRequest("secure"))).choices[0]!.message!.content).toBe("Echo: secure");
      expect(await callWith(h.address, credentials.createInsecure())).toBe(status.UNAVAILABLE);
      expect(await httpsGet(h.gateway.httpPort!, { ca: pem("ca.pem") })).toBe(200);
      expect(await httpsGet(h.gateway.httpPort!, {})).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    } finally {
      await h.close();
    }
  });
});

describe("mutual TLS", () => {
  it("admits only clients with a certificate from TLS_CLIENT_CA_FILE", async () => {
    const good = credentials.createSsl(pem("ca.pem"), pem("client.key"), pem("client.pem"));
    const h = await startHarness({ env: MTLS_ENV, clientCredentials: good });
    try {
      expect((await create(h.chat, userRequest("mutual"))).choices[0]!.message!.content).toBe("Echo: mutual");
      expect(await callWith(h.address, credentials.createSsl(pem("ca.pem")))).toBe(status.UNAVAILABLE);
      expect(await callWith(h.address, credentials.createSsl(pem("ca.pem"), pem("rogue.key"), pem("rogue.pem")))).toBe(status.UNAVAILABLE);

      const port = h.gateway.httpPort!;
      expect(await httpsGet(port, { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client.key") })).toBe(200);
      expect(await httpsGet(port, { ca: pem("ca.pem") })).not.toBe(200);
      expect(await httpsGet(port, { ca: pem("ca.pem"), cert: pem("rogue.pem"), key: pem("rogue.key") })).not.toBe(200);
    } finally {
      await h.close();
    }
  });

  it("rejects half a TLS configuration at start-up, naming the variable", async () => {
    const { loadConfig } = await import("../../src/config.js");
    expect(() => loadConfig({ TLS_CERT_FILE: fixture("server.pem") })).toThrow(/TLS_KEY_FILE: is required with TLS_CERT_FILE/);
    expect(() => loadConfig({ TLS_CLIENT_CA_FILE: fixture("ca.pem") })).toThrow(/TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE/);
    expect(() => loadConfig({ TLS_CERT_FILE: "/nonexistent.pem", TLS_KEY_FILE: fixture("server.key") })).toThrow(/TLS_CERT_FILE: cannot read \/nonexistent.pem \(ENOENT\)/);
  });
});
