/**
 * The bench's Node load generator for streams (unary load comes from h2load). A process
 * of its own, started by run.ts with one JSON job as its argument; it prints JSON lines:
 * `{"event":"measure-start"}` / `{"event":"measure-end"}` around the measured window (so
 * the orchestrator samples the other processes' CPU over the same window),
 * `{"event":"all-open"}` in hold mode, and last `{"event":"result",…}`.
 *
 * It never decodes a reply: gRPC messages are counted by their length prefixes and SSE
 * events by blank lines, so its own cost per message stays small. gRPC goes over
 * node:http2 (one session, as one grpc-js channel would use), SSE over a minimal
 * HTTP/1.1 client on keep-alive sockets (one per concurrent stream, as undici's Pool
 * does upstream).
 *
 * Every wait is bounded: a job ends by its own deadline, whatever the servers do.
 */
import { connect as h2connect, type ClientHttp2Session } from "node:http2";
import { connect, type Socket } from "node:net";
import { summarise, type Summary } from "./lib/stats.js";
import { GrpcFrameCounter, SseEventCounter } from "./lib/wire.js";

export type Target =
  | { readonly kind: "grpc"; readonly port: number; readonly path: string; readonly bodyBase64: string; readonly sessions: number }
  | { readonly kind: "sse"; readonly port: number; readonly path: string; readonly body: string; readonly headers: Readonly<Record<string, string>> };

export type Job =
  | {
      readonly mode: "streams";
      readonly target: Target;
      readonly concurrency: number;
      readonly warmupMs: number;
      readonly durationMs: number;
      /** Messages (gRPC) or events (SSE) a complete stream has. */
      readonly expectMessages: number;
      /** After the window: how long in-flight streams get to finish. */
      readonly drainMs: number;
    }
  | {
      readonly mode: "hold";
      readonly target: Target;
      readonly streams: number;
      readonly expectMessages: number;
      /** Bound on the whole job. */
      readonly timeoutMs: number;
    };

export interface StreamsResult {
  readonly event: "result";
  readonly mode: "streams";
  /** Streams started inside the window that completed correctly. */
  readonly streams: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  /** ms from request start to the first complete message. */
  readonly ttfm: Summary;
  /** ms from request start to the end of the stream (trailers / end of body). */
  readonly total: Summary;
  /** Messages that arrived inside the window, all streams. */
  readonly windowMessages: number;
  readonly windowMs: number;
  /** Messages received over the whole job, warm-up and drain included. */
  readonly totalMessages: number;
}

export interface HoldResult {
  readonly event: "result";
  readonly mode: "hold";
  readonly opened: number;
  readonly completed: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly ttfm: Summary;
  readonly total: Summary;
  /** ms from the first request to the last stream's first message. */
  readonly allOpenMs: number;
}

interface StreamOutcome {
  readonly start: number;
  readonly first: number;
  readonly end: number;
  readonly messages: number;
  /** undefined: a complete, successful stream. */
  readonly error: string | undefined;
}

type OnMessages = (count: number, now: number) => void;

interface Client {
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

function clientFor(target: Target, expect: number): Client {
  return target.kind === "grpc" ? grpcClient(target, expect) : sseClient(target, expect);
}

function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve("timeout"), ms);
    void p.then((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

async function runStreams(job: Extract<Job, { mode: "streams" }>): Promise<StreamsResult> {
  const client = clientFor(job.target, job.expectMessages);
  const t0 = performance.now();
  const windowStart = t0 + job.warmupMs;
  const windowEnd = windowStart + job.durationMs;
  let windowMessages = 0;
  let totalMessages = 0;
  const onMessages: OnMessages = (n, now) => {
    totalMessages += n;
    if (now >= windowStart && now < windowEnd) windowMessages += n;
  };
  // Each marker once: by its timer, or (end) when the workers finish first, which a
  // stream ending right at the window's end can make them do.
  let started = false;
  let ended = false;
  const markStart = (): void => {
    if (!started) emit({ event: "measure-start" });
    started = true;
  };
  const markEnd = (): void => {
    markStart();
    if (!ended) emit({ event: "measure-end" });
    ended = true;
  };
  const startTimer = setTimeout(markStart, job.warmupMs);
  const endTimer = setTimeout(markEnd, job.warmupMs + job.durationMs);

  const recorded: StreamOutcome[] = [];
  const worker = async (): Promise<void> => {
    while (performance.now() < windowEnd) {
      const r = await client.stream(onMessages);
      if (r.start >= windowStart && r.start < windowEnd) recorded.push(r);
      // A failing target must not turn this loop into a busy spin.
      if (r.error !== undefined) await new Promise((res) => setTimeout(res, 10));
    }
  };
  const workers = Promise.all(Array.from({ length: job.concurrency }, worker));
  const done = await withTimeout(workers, job.warmupMs + job.durationMs + job.drainMs);
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  markEnd();
  client.close();

  const ok = recorded.filter((r) => r.error === undefined);
  const bad = recorded.filter((r) => r.error !== undefined);
  return {
    event: "result",
    mode: "streams",
    streams: ok.length,
    errors: bad.length + (done === "timeout" ? 1 : 0),
    firstError: bad[0]?.error ?? (done === "timeout" ? "streams still open at the drain deadline" : undefined),
    ttfm: summarise(ok.map((r) => r.first - r.start)),
    total: summarise(ok.map((r) => r.end - r.start)),
    windowMessages,
    windowMs: job.durationMs,
    totalMessages,
  };
}

async function runHold(job: Extract<Job, { mode: "hold" }>): Promise<HoldResult> {
  const client = clientFor(job.target, job.expectMessages);
  const t0 = performance.now();
  let open = 0;
  let allOpenMs = Number.NaN;
  const firsts = new Set<number>();
  const outcomes = Array.from({ length: job.streams }, (_, i) =>
    client.stream((_n, now) => {
      if (firsts.has(i)) return;
      firsts.add(i);
      if (++open === job.streams) {
        allOpenMs = now - t0;
        emit({ event: "all-open", ms: allOpenMs });
      }
    }),
  );
  const all = await withTimeout(Promise.all(outcomes), job.timeoutMs);
  client.close();
  if (all === "timeout") {
    return {
      event: "result",
      mode: "hold",
      opened: open,
      completed: 0,
      errors: job.streams,
      firstError: `not finished within ${job.timeoutMs} ms`,
      ttfm: summarise([]),
      total: summarise([]),
      allOpenMs,
    };
  }
  const ok = all.filter((r) => r.error === undefined);
  return {
    event: "result",
    mode: "hold",
    opened: open,
    completed: ok.length,
    errors: all.length - ok.length,
    firstError: all.find((r) => r.error !== undefined)?.error,
    ttfm: summarise(ok.map((r) => r.first - r.start)),
    total: summarise(ok.map((r) => r.end - r.start)),
    allOpenMs,
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as Job;
  const result = job.mode === "streams" ? await runStreams(job) : await runHold(job);
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`loadgen: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
