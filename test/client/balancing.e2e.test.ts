/**
 * Client-side load balancing over several real gateways on 127.0.0.1, through an
 * `ipv4:` target listing them (what a `dns:` name with several addresses resolves to):
 * round_robin spreads the calls, the default pick_first does not, an address with
 * nothing behind it is skipped, and grpc-js' retry policy moves a call that a replica
 * refused before answering to another replica.
 */
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatServiceService, type ChatCompletion, type ChatCompletionRequest, type ChatServiceServer } from "../../gen/aigateway/v1/chat.js";
import { GatewayClient } from "../../src/client/gateway-client.js";
import { fleetServiceConfig } from "../../src/client/service-config.js";
import { Code, GatewayError } from "../../src/core/errors.js";
import { startHarness, userRequest, type Harness } from "../helpers/harness.js";

let gateways: Harness[] = [];
beforeAll(async () => {
  gateways = await Promise.all([startHarness(), startHarness(), startHarness()]);
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
});

const ipv4 = (ports: readonly number[]) => `ipv4:${ports.map((p) => `127.0.0.1:${p}`).join(",")}`;
/** Chat requests each gateway's fake upstream received: which replica served how many calls. */
const served = () => gateways.map((g) => g.fake.chatRequests().length);
const delta = (before: number[], after: number[]) => after.map((n, i) => n - before[i]!);

/** A free port with nothing listening on it (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = new Server();
  const port = await new Promise<number>((resolve, reject) => s.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
  return port;
}

/**
 * A replica that refuses every call before its handler answers: UNAVAILABLE with no
 * response headers (a trailers-only response), as a call cut on its way in looks.
 */
async function refusingReplica(): Promise<{ port: number; refused: () => number; stop: () => void }> {
  let refused = 0;
  const server = new Server();
  const impl: ChatServiceServer = {
    createChatCompletion: (_call: ServerUnaryCall<ChatCompletionRequest, ChatCompletion>, callback: sendUnaryData<ChatCompletion>) => {
      refused++;
      callback({ code: status.UNAVAILABLE, details: "refused before the handler answered" });
    },
    streamChatCompletion: (call) => {
      refused++;
      call.emit("error", { code: status.UNAVAILABLE, details: "refused before the handler answered" });
    },
  };
  server.addService(ChatServiceService, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, refused: () => refused, stop: () => server.forceShutdown() };
}

describe("client-side load balancing", () => {
  it("round_robin spreads calls over every replica the target lists", async () => {
    const client = new GatewayClient({ target: ipv4(gateways.map((g) => g.gateway.grpcPort)), loadBalancing: true });
    try {
      const before = served();
      for (let i = 0; i < 30; i++) await client.createChatCompletion(userRequest(`call ${i}`));
      for await (const _ of client.streamChatCompletion(userRequest("a stream too"))) void _;
      const spread = delta(before, served());
      expect(spread.reduce((a, b) => a + b)).toBe(31);
      // Each replica got a share; once all three are connected, calls take turns.
      for (const n of spread) expect(n).toBeGreaterThanOrEqual(5);
    } finally {
      client.close();
    }
  });

  it("without loadBalancing (grpc-js' pick_first) every call goes to one replica", async () => {
    const client = new GatewayClient({ target: ipv4(gateways.map((g) => g.gateway.grpcPort)) });
    try {
      const before = served();
      for (let i = 0; i < 12; i++) await client.createChatCompletion(userRequest(`call ${i}`));
      expect(delta(before, served()).sort()).toEqual([0, 0, 12]);
    } finally {
      client.close();
    }
  });

  it("an address with nothing listening is skipped: every call succeeds on the others", async () => {
    const client = new GatewayClient({ target: ipv4([await closedPort(), gateways[0]!.gateway.grpcPort, gateways[1]!.gateway.grpcPort]), loadBalancing: true });
    try {
      const before = served();
      for (let i = 0; i < 10; i++) await client.createChatCompletion(userRequest(`call ${i}`));
      const spread = delta(before, served());
      expect(spread[0]! + spread[1]!).toBe(10);
    } finally {
      client.close();
    }
  });

  it("grpc-js' retry policy moves a call a replica refused before answering to another replica", async () => {
    const refusing = await refusingReplica();
    const client = new GatewayClient({ target: ipv4([refusing.port, gateways[2]!.gateway.grpcPort]), loadBalancing: { maxAttempts: 3 } });
    try {
      // Until the refusing replica has had its share (bounded): each of its refusals was retried.
      for (let i = 0; i < 50 && refusing.refused() < 3; i++) {
        const res = await client.createChatCompletion(userRequest(`call ${i}`));
        expect(res.choices[0]!.message!.content).toBe(`Echo: call ${i}`);
      }
      expect(refusing.refused()).toBeGreaterThanOrEqual(3);
    } finally {
      client.close();
      refusing.stop();
    }
  });

  it("with maxAttempts: 1 the same refusal reaches the caller as UNAVAILABLE", async () => {
    const refusing = await refusingReplica();
    const client = new GatewayClient({ target: ipv4([refusing.port, gateways[2]!.gateway.grpcPort]), loadBalancing: { maxAttempts: 1 } });
    try {
      let failure: unknown;
      for (let i = 0; i < 50 && failure === undefined; i++) {
        failure = await client.createChatCompletion(userRequest(`call ${i}`)).then(() => undefined, (e: unknown) => e);
      }
      expect(failure).toBeInstanceOf(GatewayError);
      expect((failure as GatewayError).code).toBe(Code.UNAVAILABLE);
    } finally {
      client.close();
      refusing.stop();
    }
  });
});

describe("fleetServiceConfig", () => {
  it("names both services, retries only UNAVAILABLE, and is what the client sets", () => {
    expect(fleetServiceConfig()).toEqual({
      loadBalancingConfig: [{ round_robin: {} }],
      methodConfig: [
        {
          name: [{ service: "aigateway.v1.ChatService" }, { service: "aigateway.v1.ModelService" }],
          retryPolicy: { maxAttempts: 3, initialBackoff: "0.05s", maxBackoff: "1s", backoffMultiplier: 2, retryableStatusCodes: ["UNAVAILABLE"] },
        },
      ],
    });
    expect(fleetServiceConfig({ policy: "pick_first", maxAttempts: 1 })).toEqual({ loadBalancingConfig: [{ pick_first: {} }], methodConfig: [] });
  });

  it("refuses attempts grpc-js would not honour and unknown policies", () => {
    expect(() => fleetServiceConfig({ maxAttempts: 6 })).toThrow(/maxAttempts must be an integer from 1 to 5/);
    expect(() => fleetServiceConfig({ maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => new GatewayClient({ loadBalancing: { policy: "least_request" as "round_robin" } })).toThrow(/round_robin or pick_first/);
  });
});
