/**
 * What the client puts on the wire, seen by a recording ChatService on 127.0.0.1:
 * the bearer key and x-request-id metadata, the deadline, and TLS with a private CA
 * (certificates in fixtures/, for localhost and 127.0.0.1, valid until 2126).
 */
import { readFileSync } from "node:fs";
import { ServerCredentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { GatewayClient } from "../../src/client/gateway-client.js";
import { Code, GatewayError } from "../../src/core/errors.js";
import { userRequest } from "../helpers/harness.js";
import { recordingServer } from "./recording-server.js";
import { rejection } from "./support.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe("request metadata", () => {
  it("sends authorization: Bearer <apiKey>, x-request-id and the caller's metadata; deadline from defaultDeadlineMs", async () => {
    const s = await recordingServer(ServerCredentials.createInsecure());
    cleanups.push(s.stop);
    const client = new GatewayClient({ target: `127.0.0.1:${s.port}`, apiKey: "aigw-key-123", defaultDeadlineMs: 60_000 });
    cleanups.push(() => client.close());
    const before = Date.now();
    await client.createChatCompletion(userRequest("x"), { requestId: "req-1", metadata: { "x-caller": "svc-a" } });
    const { metadata, deadline } = s.seen[0]!;
    expect(metadata.get("authorization")).toEqual(["Bearer aigw-key-123"]);
    expect(metadata.get("x-request-id")).toEqual(["req-1"]);
    expect(metadata.get("x-caller")).toEqual(["svc-a"]);
    expect(deadline).toBeGreaterThan(before + 55_000);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it("a caller's own authorization header wins; no key, no header", async () => {
    const s = await recordingServer(ServerCredentials.createInsecure());
    cleanups.push(s.stop);
    const keyed = new GatewayClient({ target: `127.0.0.1:${s.port}`, apiKey: "default-key" });
    const plain = new GatewayClient({ target: `127.0.0.1:${s.port}` });
    cleanups.push(() => keyed.close(), () => plain.close());
    await keyed.createChatCompletion(userRequest("x"), { metadata: { authorization: "Bearer per-call" } });
    await plain.createChatCompletion(userRequest("x"));
    expect(s.seen[0]!.metadata.get("authorization")).toEqual(["Bearer per-call"]);
    expect(s.seen[1]!.metadata.get("authorization")).toEqual([]);
  });

  it("replaces a request id the gateway would not accept", async () => {
    const s = await recordingServer(ServerCredentials.createInsecure());
    cleanups.push(s.stop);
    const client = new GatewayClient({ target: `127.0.0.1:${s.port}` });
    cleanups.push(() => client.close());
    await client.createChatCompletion(userRequest("x"), { requestId: "has spaces\nand newlines" });
    expect(s.seen[0]!.metadata.get("x-request-id")[0]).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("TLS", () => {
  const serverCreds = () => ServerCredentials.createSsl(null, [{ cert_chain: fixture("server.pem"), private_key: fixture("server.key") }], false);

  it("connects with tls.ca trusting the server's CA", async () => {
    const s = await recordingServer(serverCreds());
    cleanups.push(s.stop);
    const client = new GatewayClient({ target: `localhost:${s.port}`, tls: { ca: fixture("ca.pem") }, apiKey: "over-tls" });
    cleanups.push(() => client.close());
    const res = await client.createChatCompletion(userRequest("x"));
    expect(res.id).toBe("recorded");
    expect(s.seen[0]!.metadata.get("authorization")).toEqual(["Bearer over-tls"]);
  });

  it("refuses a server its roots do not trust → UNAVAILABLE", async () => {
    const s = await recordingServer(serverCreds());
    cleanups.push(s.stop);
    const client = new GatewayClient({ target: `localhost:${s.port}`, tls: true, defaultDeadlineMs: 5000 });
    cleanups.push(() => client.close());
    const e = await rejection(client.createChatCompletion(userRequest("x")));
    expect(e).toBeInstanceOf(GatewayError);
    expect((e as GatewayError).code).toBe(Code.UNAVAILABLE);
    expect(s.seen).toHaveLength(0);
  });

  it("rejects half a client certificate", () => {
    expect(() => new GatewayClient({ tls: { cert: fixture("server.pem") } })).toThrow(/cert and tls.key/);
  });
});
