/**
 * Slow senders hold only their own connection. An HTTP call takes its in-flight slot
 * once its body is whole, so MAX_IN_FLIGHT callers dribbling bodies lock no one out (on
 * either transport; half-sent gRPC messages never held slots). A body that stops
 * arriving is answered 408 and its connection closed after REQUEST_BODY_TIMEOUT_S, and
 * headers that never end are dropped in the same bound, not after Node's 300 s.
 *
 * "The server has the request" is observed, not waited for: the slow requests send
 * `Expect: 100-continue`, and node:http writes `100 Continue` just before it hands the
 * request to the gateway, in the same tick.
 */
import { connect, type Socket } from "node:net";
import { Metadata } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { create, userRequest } from "../helpers/harness.js";
import { startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { frame, open, session } from "../helpers/raw-grpc.js";

/** A raw TCP connection to the shim, with everything it receives. */
interface RawConnection {
  readonly socket: Socket;
  received(): string;
  /** Resolves once `text` has been received. */
  waitFor(text: string): Promise<void>;
  /** Resolves when the server has closed the connection. */
  readonly closed: Promise<void>;
}

const connections: RawConnection[] = [];
afterEach(() => {
  for (const c of connections.splice(0)) c.socket.destroy();
});

function rawConnection(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    const waiters: Array<{ text: string; resolve: () => void }> = [];
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      text += d;
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (text.includes(waiters[i]!.text)) waiters.splice(i, 1)[0]!.resolve();
      }
    });
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("error", () => {});
    socket.once("connect", () => {
      const c: RawConnection = {
        socket,
        received: () => text,
        waitFor: (t) => (text.includes(t) ? Promise.resolve() : new Promise((r) => waiters.push({ text: t, resolve: r }))),
        closed,
      };
      connections.push(c);
      resolve(c);
    });
    socket.once("error", reject);
  });
}

/** Starts a chat request whose body (declared `length` bytes) is sent only in part; resolves when the gateway has the request. */
async function slowChatRequest(port: number, length = 1000): Promise<RawConnection> {
  const c = await rawConnection(port);
  c.socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`,
  );
  await c.waitFor("HTTP/1.1 100 Continue");
  c.socket.write('{"model": "gpt-oss-120b", "messages": [');
  return c;
}

let h: HttpHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("slow bodies hold no in-flight slot", () => {
  it("MAX_IN_FLIGHT dribbling HTTP bodies (and half-sent gRPC messages) leave room for normal gRPC and HTTP callers", async () => {
    h = await startHttpHarness({ env: { MAX_IN_FLIGHT: "2", REQUEST_BODY_TIMEOUT_S: "30" } });
    await slowChatRequest(h.httpPort);
    await slowChatRequest(h.httpPort);
    const grpc = await session(h.address);
    try {
      for (let i = 0; i < 2; i++) {
        const half = frame(ChatCompletionRequest.encode(userRequest("x".repeat(10_000))).finish()).subarray(0, 5_000);
        open(grpc, "/aigateway.v1.ChatService/CreateChatCompletion").write(half);
      }
      expect((await create(h.chat, userRequest("gRPC gets through"), {}, new Metadata())).choices[0]!.message!.content).toBe("Echo: gRPC gets through");
      const res = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "HTTP gets through" }] });
      expect(res.choices[0]!.message.content).toBe("Echo: HTTP gets through");
    } finally {
      grpc.destroy();
    }
  });
});

describe("a body that stops arriving", () => {
  it("is answered 408 (request_timeout) and its connection closed after REQUEST_BODY_TIMEOUT_S", async () => {
    h = await startHttpHarness({ env: { REQUEST_BODY_TIMEOUT_S: "0.3" } });
    const c = await slowChatRequest(h.httpPort);
    await c.closed;
    const text = c.received();
    expect(text).toMatch(/HTTP\/1\.1 408 /);
    expect(text).toContain('"code":"request_timeout"');
    expect(text).toContain("REQUEST_BODY_TIMEOUT_S");
    // The gateway is fine, and counted nothing in flight for it.
    const res = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "after" }] });
    expect(res.choices[0]!.message.content).toBe("Echo: after");
  });

  it("headers that never end are dropped in the same bound", async () => {
    h = await startHttpHarness({ env: { REQUEST_BODY_TIMEOUT_S: "0.3" } });
    const c = await rawConnection(h.httpPort);
    c.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    await c.closed;
    expect(c.received()).toMatch(/^(HTTP\/1\.1 408 |$)/);
  });

  it("REQUEST_BODY_TIMEOUT_S: default 10 s, validated", async () => {
    const { loadConfig } = await import("../../src/config.js");
    expect(loadConfig({}).requestBodyTimeoutMs).toBe(10_000);
    expect(loadConfig({ REQUEST_BODY_TIMEOUT_S: "2.5" }).requestBodyTimeoutMs).toBe(2_500);
    expect(() => loadConfig({ REQUEST_BODY_TIMEOUT_S: "0" })).toThrow(/REQUEST_BODY_TIMEOUT_S: must be positive/);
  });
});
