/**
 * The bench's stream clients: one stream at a time over gRPC (node:http2, one session,
 * as one grpc-js channel would use) or SSE (a minimal HTTP/1.1 client on keep-alive
 * sockets, one per concurrent stream, as undici's Pool does upstream). They never decode
 * a reply: gRPC messages are counted by their length prefixes and SSE events by blank
 * lines, so their own cost per message stays small. Used by the load generator
 * (bench/loadgen.ts) and by bench/first-message.ts.
 */
import { connect as h2connect, type ClientHttp2Session } from "node:http2";
import { connect, type Socket } from "node:net";
import { GrpcFrameCounter, SseEventCounter } from "./wire.js";

export type Target =
  | { readonly kind: "grpc"; readonly port: number; readonly path: string; readonly bodyBase64: string; readonly sessions: number }
  | { readonly kind: "sse"; readonly port: number; readonly path: string; readonly body: string; readonly headers: Readonly<Record<string, string>> };

export interface StreamOutcome {
  readonly start: number;
  readonly first: number;
  readonly end: number;
  readonly messages: number;
  /** undefined: a complete, successful stream. */
  readonly error: string | undefined;
}

export type OnMessages = (count: number, now: number) => void;

export interface Client {
  stream(onMessages: OnMessages): Promise<StreamOutcome>;
  close(): void;
}

function grpcClient(target: Extract<Target, { kind: "grpc" }>, expect: number): Client {
  const body = Buffer.from(target.bodyBase64, "base64");
  const open = (): ClientHttp2Session => {
    const s = h2connect(`http://127.0.0.1:${target.port}`, {
      // Generous windows and memory: the client must never be what throttles the server.
      settings: { initialWindowSize: 1 << 24 },
      maxSessionMemory: 1024,
    });
    s.on("connect", () => s.setLocalWindowSize(1 << 28));
    s.on("error", () => {}); // surfaced per stream
    return s;
  };
  const sessions: ClientHttp2Session[] = Array.from({ length: Math.max(1, target.sessions) }, open);
  let next = 0;
  /** A live session, round-robin; a closed one (GOAWAY, reset) is replaced, as a grpc-js channel reconnects. */
  const pick = (): ClientHttp2Session => {
    const i = next++ % sessions.length;
    if (sessions[i]!.closed || sessions[i]!.destroyed) sessions[i] = open();
    return sessions[i]!;
  };
  return {
    stream: (onMessages) =>
      new Promise<StreamOutcome>((resolve) => {
        const session = pick();
        const start = performance.now();
        let first = Number.NaN;
        let httpStatus: number | undefined;
        let grpcStatus: string | undefined;
        let grpcMessage: string | undefined;
        let failure: string | undefined;
        const counter = new GrpcFrameCounter();
        let req;
        try {
          req = session.request({ ":method": "POST", ":path": target.path, "content-type": "application/grpc", te: "trailers" });
        } catch (err) {
          resolve({ start, first, end: performance.now(), messages: 0, error: `request: ${err instanceof Error ? err.message : String(err)}` });
          return;
        }
        const status = (h: Record<string, unknown>): void => {
          if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
          if (h["grpc-message"] !== undefined) grpcMessage = decodeURIComponent(String(h["grpc-message"]));
        };
        req.on("response", (h) => {
          httpStatus = Number(h[":status"]);
          status(h);
        });
        req.on("trailers", (h) => status(h));
        req.on("data", (b: Buffer) => {
          const n = counter.push(b);
          if (n > 0) {
            const now = performance.now();
            if (Number.isNaN(first)) first = now;
            onMessages(n, now);
          }
        });
        req.on("error", (err: Error) => (failure ??= err.message));
        req.on("close", () => {
          const end = performance.now();
          let error = failure;
          if (error === undefined && httpStatus !== 200) error = `HTTP ${httpStatus}`;
          if (error === undefined && grpcStatus !== "0") error = `grpc-status ${grpcStatus}: ${grpcMessage ?? ""}`;
          if (error === undefined && counter.messages !== expect) error = `${counter.messages} messages, expected ${expect}`;
          resolve({ start, first, end, messages: counter.messages, error });
        });
        req.end(body);
      }),
    close: () => {
      for (const s of sessions) s.destroy();
    },
  };
}

/**
 * SSE over a minimal HTTP/1.1 client on raw keep-alive sockets: it only needs the status,
 * the framing (chunked or content-length) and the blank lines that end events, and
 * node:http's IncomingMessage machinery would cost the load generator more per event
 * than the fake upstream spends producing it.
 */
function sseClient(target: Extract<Target, { kind: "sse" }>, expect: number): Client {
  const head = [
    `POST ${target.path} HTTP/1.1`,
    `host: 127.0.0.1:${target.port}`,
    ...Object.entries(target.headers).map(([k, v]) => `${k}: ${v}`),
    "content-type: application/json",
    "accept: text/event-stream",
    `content-length: ${Buffer.byteLength(target.body)}`,
    "",
    "",
  ].join("\r\n");
  const request = Buffer.concat([Buffer.from(head, "latin1"), Buffer.from(target.body, "utf8")]);
  const idle: Socket[] = [];
  const all = new Set<Socket>();
  const TERMINATOR = "\r\n0\r\n\r\n";

  return {
    stream: (onMessages) =>
      new Promise<StreamOutcome>((resolve) => {
        const start = performance.now();
        let first = Number.NaN;
        const counter = new SseEventCounter();
        let headText = "";
        let headDone = false;
        let status = 0;
        let chunked = false;
        let remaining = -1;
        let tail = "\r\n"; // so an empty chunked body ("0\r\n\r\n") matches too
        let settled = false;

        let socket = idle.pop();
        if (socket === undefined) {
          socket = connect({ host: "127.0.0.1", port: target.port, noDelay: true });
          all.add(socket);
          const s = socket;
          s.on("close", () => {
            all.delete(s);
            const i = idle.indexOf(s);
            if (i !== -1) idle.splice(i, 1);
          });
          s.on("error", () => {}); // reported through the current stream's close
        }
        const sock = socket;

        const finish = (error: string | undefined, reusable: boolean): void => {
          if (settled) return;
          settled = true;
          sock.off("data", onData);
          sock.off("close", onClose);
          if (reusable) idle.push(sock);
          else sock.destroy();
          // At least: an OpenAI-style server (the HTTP shim) may add a `[DONE]` event.
          if (error === undefined && counter.events < expect) error = `${counter.events} events, expected ${expect}`;
          resolve({ start, first, end: performance.now(), messages: counter.events, error });
        };
        const onClose = (): void => finish("connection closed mid-response", false);
        const onData = (buf: Buffer): void => {
          let body = buf;
          if (!headDone) {
            headText += buf.toString("latin1");
            const end = headText.indexOf("\r\n\r\n");
            if (end === -1) return;
            headDone = true;
            const lines = headText.slice(0, end).split("\r\n");
            status = Number(lines[0]!.split(" ")[1]);
            for (const line of lines.slice(1)) {
              const colon = line.indexOf(":");
              const name = line.slice(0, colon).trim().toLowerCase();
              const value = line.slice(colon + 1).trim().toLowerCase();
              if (name === "transfer-encoding" && value.includes("chunked")) chunked = true;
              else if (name === "content-length") remaining = Number(value);
            }
            body = Buffer.from(headText.slice(end + 4), "latin1");
            headText = "";
          }
          if (status === 200) {
            const n = counter.push(body);
            if (n > 0) {
              const now = performance.now();
              if (Number.isNaN(first)) first = now;
              onMessages(n, now);
            }
          }
          const error = status === 200 ? undefined : `HTTP ${status}`;
          if (chunked) {
            tail = (tail + body.toString("latin1")).slice(-TERMINATOR.length);
            if (tail === TERMINATOR) finish(error, true);
          } else if (remaining >= 0) {
            remaining -= body.length;
            if (remaining <= 0) finish(error, true);
          } else if (headDone) {
            finish(error ?? "response without chunked framing or content-length", false);
          }
        };
        sock.on("data", onData);
        sock.on("close", onClose);
        sock.write(request);
      }),
    close: () => {
      for (const s of all) s.destroy();
    },
  };
}

export function clientFor(target: Target, expect: number): Client {
  return target.kind === "grpc" ? grpcClient(target, expect) : sseClient(target, expect);
}
