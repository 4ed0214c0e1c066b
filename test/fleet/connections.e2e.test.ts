/**
 * One replica's connection policy, seen from a client: a gRPC connection past
 * GRPC_MAX_CONNECTION_AGE_S gets a GOAWAY (the client moves new calls to a new
 * connection) while a stream in flight on it goes on to its end, and the HTTP shim closes
 * idle keep-alive connections after HTTP_KEEPALIVE_TIMEOUT_S.
 */
import { connect } from "node:net";
import { connectivityState, type ChannelInterface } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { FinishReason } from "../../gen/aigateway/v1/chat.js";
import { collect, create, startHarness, userRequest } from "../helpers/harness.js";
import { startHttpHarness } from "../helpers/http.js";

/** Resolves with the channel's next state once it leaves `from` (bounded by `ms`). */
function nextState(channel: ChannelInterface, from: connectivityState, ms: number): Promise<connectivityState> {
  return new Promise((resolve, reject) => {
    channel.watchConnectivityState(from, Date.now() + ms, (err) => (err ? reject(new Error(`the channel stayed ${connectivityState[from]} for ${ms} ms`)) : resolve(channel.getConnectivityState(false))));
  });
}

describe("max connection age", () => {
  it("a connection past its age gets a GOAWAY; the stream in flight on it still finishes, and new calls use a new connection", async () => {
    const h = await startHarness({ env: { GRPC_MAX_CONNECTION_AGE_S: "0.5", GRPC_MAX_CONNECTION_AGE_GRACE_S: "30" } });
    try {
      const channel = h.chat.getChannel();
      const gate = h.fake.holdNext(1);
      const held = collect(h.chat.streamChatCompletion(userRequest("spans the GOAWAY")));
      await gate.reached;
      expect(channel.getConnectivityState(false)).toBe(connectivityState.READY);
      // The GOAWAY: grpc-js takes the connection out of use (READY → IDLE) while the stream goes on.
      expect(await nextState(channel, connectivityState.READY, 5000)).toBe(connectivityState.IDLE);
      gate.release();
      const s = await held;
      expect(s.error).toBeUndefined();
      expect(s.chunks.at(-1)!.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
      expect(h.fake.chatRequests()[0]!.outcome).toBe("completed");
      const res = await create(h.chat, userRequest("on a new connection"));
      expect(res.choices[0]!.message!.content).toBe("Echo: on a new connection");
    } finally {
      await h.close();
    }
  });
});

describe("HTTP keep-alive", () => {
  it("an idle keep-alive connection is closed by the gateway after HTTP_KEEPALIVE_TIMEOUT_S, and says so in keep-alive", async () => {
    const g = await startHttpHarness({ env: { HTTP_KEEPALIVE_TIMEOUT_S: "2" } });
    // A raw socket: node's own Agent would close it first (it honours keep-alive: timeout=N minus 1 s).
    const socket = connect(g.httpPort, "127.0.0.1");
    try {
      let received = "";
      socket.setEncoding("utf8");
      socket.on("data", (t: string) => (received += t));
      const closed = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the idle connection was still open after 10 s")), 10_000);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve(Date.now());
        });
      });
      socket.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
      await new Promise<void>((resolve) => socket.on("data", () => received.includes('{"status":"ok"}') && resolve()));
      const answered = Date.now();
      expect(received).toMatch(/^HTTP\/1\.1 200 /);
      expect(received.toLowerCase()).toContain("keep-alive: timeout=2");
      // Closed by the server's idle timer, not right after the answer.
      expect((await closed) - answered).toBeGreaterThanOrEqual(1500);
    } finally {
      socket.destroy();
      await g.close();
    }
  });
});
