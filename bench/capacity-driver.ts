/**
 * The capacity scenario's driver (bench/scenarios/capacity.ts): the paced upstream AND the
 * clients, in one process on the load generator's core, so every token's latency is
 * measured on one clock, from the moment the upstream was due to send it to the moment the
 * client had it.
 *
 * - The upstream: a Cerebras-shaped `POST /v1/chat/completions` on raw sockets
 *   (HTTP/1.1, keep-alive, chunked SSE). A stream answers a role chunk at once, then one
 *   content token per SSE event at `rate` tokens/s on an absolute schedule (token i is due
 *   at t0 + i/rate: no drift), then the finish chunk with usage and time_info. A token
 *   is written as soon as it is due; when the driver's loop is late, every token already
 *   due goes out in the same write (as a TCP stream would carry them). Its lateness (write
 *   time − due time) is measured: a late driver is reported, and stops the ramp.
 *   Unary requests and `GET /v1/models` get small fixed answers (preflights, warm-up).
 * - The clients: SSE over raw HTTP/1.1 keep-alive sockets (direct to this upstream, or to
 *   the gateway's HTTP shim), and gRPC over a minimal HTTP/2 client (frames parsed by hand:
 *   one socket read carries many messages, and no node:http2 stream object sits between a
 *   frame and the count). Each message is walked far enough to count its tokens (merged
 *   deltas carry several: every token is TOKEN_TEXT, so bytes ÷ 4) and to find the
 *   stream's id in its first message (which names the upstream stream, hence t0).
 *
 * Controlled over stdin, one JSON command a line; answers on stdout, one JSON line each:
 *   {"cmd":"step","target":…,"streams":N,"warmupMs":…,"measureMs":…,"spreadMs":…}
 *     → {"event":"measure-start"}, {"event":"measure-end"}, {"event":"step",…figures}
 *   {"cmd":"exit"}
 * Every wait is bounded: a step ends by its own deadline whatever the servers do.
 */
import { randomUUID } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { summarise, type Summary } from "./lib/stats.js";

/** Every content token: 4 bytes, no JSON escapes, so a merged delta's bytes ÷ 4 is its token count. */
export const TOKEN_TEXT = " tok";
const TOKEN_BYTES = 4;
const MODEL = "gpt-oss-120b";

export type CapacityTarget =
  | { readonly kind: "sse"; readonly port: number; readonly path: string; readonly body: string; readonly headers: Readonly<Record<string, string>> }
  | {
      readonly kind: "grpc";
      readonly port: number;
      readonly path: string;
      readonly bodyBase64: string;
      readonly streamsPerConnection: number;
      /** What a message holds: a ChatCompletionChunk (the gateway), or the upstream's SSE event as it was (the floor). */
      readonly payload: "proto" | "sse";
    };

export interface StepCommand {
  readonly cmd: "step";
  readonly target: CapacityTarget;
  readonly streams: number;
  /** Tokens due before this are not measured (connection set-up, JIT). */
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Streams start spread over this long (not all in one instant). */
  readonly spreadMs: number;
}

export interface StepResult {
  readonly event: "step";
  readonly streams: number;
  /** Streams that delivered every token and their finish chunk, and ended cleanly. */
  readonly completed: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  /** Tokens due inside the measured window, as the clients received them. */
  readonly tokens: number;
  /** ms from the token's due time at the upstream to its arrival at the client. */
  readonly delay: Summary & { readonly p999: number; readonly max: number };
  /** ms between a token's arrival and the previous token's, same stream (tokens of one message: 0). */
  readonly gap: Summary;
  /** Messages (gRPC) or events (SSE) the clients received per token: < 1 when deltas were merged. */
  readonly messagesPerToken: number;
  /** The upstream's own lateness: ms from a token's due time to its write. */
  readonly upstreamLag: Summary & { readonly max: number };
  /** Upstream events per socket write (1 when the driver keeps up). */
  readonly eventsPerWrite: number;
  /** The driver's CPU over the measured window, % of one core. */
  readonly driverCpu: number;
}

const job = JSON.parse(process.argv[2] ?? "{}") as { rate?: number };
const RATE = job.rate ?? 2000;
const INTERVAL = 1000 / RATE;

// ---------------------------------------------------------------------------------------
// Measurement state of the step in progress.

interface Window {
  start: number;
  end: number;
  delays: number[];
  gaps: number[];
  lags: number[];
  messages: number;
  tokens: number;
  writes: number;
  events: number;
}
let win: Window = { start: Infinity, end: -Infinity, delays: [], gaps: [], lags: [], messages: 0, tokens: 0, writes: 0, events: 0 };
const inWindow = (t: number): boolean => t >= win.start && t < win.end;

// ---------------------------------------------------------------------------------------
// The upstream.

/** Tokens per stream for the next streamed request (set by each step). */
let streamTokens = 100;

interface UpStream {
  readonly socket: Socket;
  readonly t0: number;
  /** Content tokens written so far. */
  sent: number;
  readonly total: number;
  readonly event: Buffer;
  readonly finalFrame: Buffer;
  readonly frames: Buffer[];
  done: boolean;
}

/** id → the stream's start (t0): how a client finds the schedule of the tokens it receives. */
const schedule = new Map<string, number>();
const active: UpStream[] = [];
let pacing = false;

function sseEvent(json: unknown): string {
  return `data: ${JSON.stringify(json)}\n\n`;
}

function chunked(text: string | Buffer): Buffer {
  const body = typeof text === "string" ? Buffer.from(text) : text;
  return Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from("\r\n")]);
}

function startStream(socket: Socket): void {
  const id = `chatcmpl-${randomUUID()}`;
  const base = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: MODEL, system_fingerprint: "fp_capacity" };
  const t0 = performance.now();
  schedule.set(id, t0);
  const total = streamTokens;
  const head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
  socket.write(Buffer.concat([Buffer.from(head), chunked(sseEvent({ ...base, choices: [{ delta: { role: "assistant" }, index: 0 }] }))]));
  const final = sseEvent({
    ...base,
    choices: [{ delta: {}, finish_reason: "stop", index: 0 }],
    usage: { prompt_tokens: 10, completion_tokens: total, total_tokens: total + 10 },
    time_info: { queue_time: 0.0001, prompt_time: 0.0001, completion_time: total / RATE, total_time: total / RATE, created: Date.now() / 1000 },
  });
  active.push({ socket, t0, sent: 0, total, event: Buffer.from(sseEvent({ ...base, choices: [{ delta: { content: TOKEN_TEXT }, index: 0 }] })), finalFrame: Buffer.concat([chunked(final), Buffer.from("0\r\n\r\n")]), frames: [], done: false });
  if (!pacing) {
    pacing = true;
    setImmediate(pace);
  }
}

/** Chunked frames of k copies of a stream's token event (k = 1, 2, …), made on first use. */
function tokens(s: UpStream, k: number): Buffer {
  let f = s.frames[k];
  if (f === undefined) {
    const parts: Buffer[] = [Buffer.from(`${(s.event.length * k).toString(16)}\r\n`)];
    for (let i = 0; i < k; i++) parts.push(s.event);
    parts.push(CRLF);
    f = s.frames[k] = Buffer.concat(parts);
  }
  return f;
}

/** Sleeps of the pacing loop between due tokens (Atomics.wait: sub-millisecond, unlike timers). */
const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Longest sleep: socket reads (the clients' arrivals) wait for the loop, so this bounds how late one is seen. */
const MAX_SLEEP_MS = 0.05;

/**
 * The pacing loop: every token already due, per stream, in one write; then a short sleep
 * until the next is due (not a spin, so the driver's CPU figure is its work, and other
 * processes on its core are not starved).
 */
function pace(): void {
  const now = performance.now();
  let open = 0;
  let nextDue = Infinity;
  for (let i = 0; i < active.length; i++) {
    const s = active[i]!;
    if (s.done) continue;
    if (s.socket.destroyed) {
      s.done = true;
      continue;
    }
    // Tokens 1..total are due at t0 + k·INTERVAL.
    const due = Math.min(s.total, Math.floor((now - s.t0) / INTERVAL));
    const n = due - s.sent;
    if (n > 0) {
      for (let k = s.sent + 1; k <= due; k++) {
        const dueAt = s.t0 + k * INTERVAL;
        if (inWindow(dueAt)) record(win.lags, now - dueAt);
      }
      if (inWindow(now)) {
        win.writes++;
        win.events += n;
      }
      s.sent = due;
      if (s.sent === s.total) {
        s.socket.write(Buffer.concat([tokens(s, n), s.finalFrame]));
        s.done = true;
      } else {
        s.socket.write(tokens(s, n));
      }
    }
    if (!s.done) {
      open++;
      const d = s.t0 + (s.sent + 1) * INTERVAL;
      if (d < nextDue) nextDue = d;
    }
  }
  if (open === 0) {
    active.length = 0;
    pacing = false;
    return;
  }
  if (active.length > 64 && active.length > open * 2) {
    const still = active.filter((s) => !s.done);
    active.length = 0;
    active.push(...still);
  }
  const wait = nextDue - performance.now();
  if (wait > 0.005) Atomics.wait(sleeper, 0, 0, Math.min(wait, MAX_SLEEP_MS));
  setImmediate(pace);
}

/** A growable sample list without per-push reallocation churn (numbers only). */
function record(list: number[], v: number): void {
  list.push(v);
}

const CRLF = Buffer.from("\r\n");

function unaryReply(): Buffer {
  const body = JSON.stringify({
    id: `chatcmpl-${randomUUID()}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: MODEL,
    system_fingerprint: "fp_capacity",
    choices: [{ index: 0, message: { role: "assistant", content: `token${TOKEN_TEXT}${TOKEN_TEXT}` }, finish_reason: "stop" }],
    usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 },
    time_info: { queue_time: 0.0001, prompt_time: 0.0001, completion_time: 0.001, total_time: 0.001, created: Date.now() / 1000 },
  });
  return Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function plainReply(status: number, body: string): Buffer {
  return Buffer.from(`HTTP/1.1 ${status} ${status === 200 ? "OK" : "Not Found"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

const MODELS = JSON.stringify({ object: "list", data: [{ id: MODEL, object: "model", created: 0, owned_by: "Cerebras" }] });

/** HTTP/1.1 requests on one keep-alive socket, one at a time (undici does not pipeline streams). */
function serve(socket: Socket): void {
  socket.setNoDelay(true);
  let buf: Buffer = Buffer.alloc(0);
  socket.on("error", () => {});
  socket.on("data", (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    for (;;) {
      const headEnd = buf.indexOf("\r\n\r\n");
      if (headEnd === -1) return;
      const head = buf.toString("latin1", 0, headEnd);
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const length = m === null ? 0 : Number(m[1]);
      if (buf.length < headEnd + 4 + length) return;
      const body = buf.toString("utf8", headEnd + 4, headEnd + 4 + length);
      buf = buf.subarray(headEnd + 4 + length);
      const [method, path] = head.split(" ", 2);
      if (method === "POST" && path?.endsWith("/chat/completions")) {
        if (/"stream"\s*:\s*true/.test(body)) startStream(socket);
        else socket.write(unaryReply());
      } else if (method === "GET" && path?.endsWith("/models")) {
        socket.write(plainReply(200, MODELS));
      } else {
        socket.write(plainReply(404, '{"message":"not found","type":"not_found_error","param":null,"code":"not_found"}'));
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Per-stream accounting at the client (both transports).

class ClientStream {
  t0 = Number.NaN;
  tokens = 0;
  last = Number.NaN;
  finished = false;
  error: string | undefined;
  constructor(readonly expect: number) {}

  /** A message (event) arrived carrying `tokens` content tokens (and maybe the stream's id or its finish). */
  arrived(now: number, tokens: number): void {
    if (inWindow(now)) win.messages++;
    for (let k = 0; k < tokens; k++) {
      const index = ++this.tokens;
      const due = this.t0 + index * INTERVAL;
      if (inWindow(due)) {
        win.tokens++;
        record(win.delays, now - due);
        if (!Number.isNaN(this.last)) record(win.gaps, now - this.last);
      }
      this.last = now;
    }
  }

  identify(id: string): void {
    const t0 = schedule.get(id);
    if (t0 === undefined) this.error ??= `unknown stream id ${id}`;
    else this.t0 = t0;
    schedule.delete(id);
  }

  outcome(): string | undefined {
    if (this.error !== undefined) return this.error;
    if (this.tokens !== this.expect) return `${this.tokens} tokens, expected ${this.expect}`;
    if (!this.finished) return "no finish chunk";
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// SSE client: raw HTTP/1.1 keep-alive sockets, chunked bodies.

const idleSse = new Map<number, Socket[]>();

const CONTENT_KEY = Buffer.from('"content":"');
const ID_KEY = Buffer.from('"id":"');
const FINISH_KEY = Buffer.from('"finish_reason":"');

/** One SSE event's data bytes: its tokens, its id (first), its finish. */
function sseData(s: ClientStream, data: Buffer, now: number): void {
  if (Number.isNaN(s.t0)) {
    const i = data.indexOf(ID_KEY);
    if (i !== -1) {
      const from = i + ID_KEY.length;
      s.identify(data.toString("latin1", from, data.indexOf(0x22, from)));
    }
  }
  let tokens = 0;
  const c = data.indexOf(CONTENT_KEY);
  if (c !== -1) {
    const from = c + CONTENT_KEY.length;
    tokens = (data.indexOf(0x22, from) - from) / TOKEN_BYTES;
  }
  if (data.indexOf(FINISH_KEY) !== -1) s.finished = true;
  s.arrived(now, tokens);
}

function sseStream(t: Extract<CapacityTarget, { kind: "sse" }>, expect: number): Promise<string | undefined> {
  const s = new ClientStream(expect);
  const head = [`POST ${t.path} HTTP/1.1`, `host: 127.0.0.1:${t.port}`, ...Object.entries(t.headers).map(([k, v]) => `${k}: ${v}`), "content-type: application/json", "accept: text/event-stream", `content-length: ${Buffer.byteLength(t.body)}`, "", ""].join("\r\n");
  const request = Buffer.concat([Buffer.from(head, "latin1"), Buffer.from(t.body)]);
  return new Promise((resolve) => {
    const pool = idleSse.get(t.port) ?? [];
    idleSse.set(t.port, pool);
    let sock = pool.pop();
    if (sock === undefined || sock.destroyed) {
      sock = connect({ host: "127.0.0.1", port: t.port, noDelay: true });
      sock.on("error", () => {});
    }
    const socket = sock;
    let headDone = false;
    let status = 0;
    let pending: Buffer = Buffer.alloc(0); // unparsed bytes (head or chunked framing)
    let chunkLeft = 0; // body bytes left in the current chunk
    let sse: Buffer = Buffer.alloc(0); // body bytes of an unfinished event
    let settled = false;
    const finish = (error: string | undefined, reuse: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (reuse) pool.push(socket);
      else socket.destroy();
      resolve(error ?? s.outcome());
    };
    const timer = setTimeout(() => finish("stream timed out", false), 120_000);
    const body = (part: Buffer, now: number): void => {
      let b = sse.length === 0 ? part : Buffer.concat([sse, part]);
      let at = 0;
      for (let end = b.indexOf("\n\n", at); end !== -1; end = b.indexOf("\n\n", at)) {
        if (b[at] === 0x64 /* d */) sseData(s, b.subarray(at, end), now);
        at = end + 2;
      }
      b = b.subarray(at);
      sse = b.length === 0 ? b : Buffer.from(b);
    };
    const onData = (d: Buffer): void => {
      const now = performance.now();
      let b = pending.length === 0 ? d : Buffer.concat([pending, d]);
      if (!headDone) {
        const end = b.indexOf("\r\n\r\n");
        if (end === -1) {
          pending = Buffer.from(b);
          return;
        }
        status = Number(b.toString("latin1", 9, 12));
        headDone = true;
        b = b.subarray(end + 4);
        if (status !== 200) return finish(`HTTP ${status}`, false);
      }
      let i = 0;
      while (i < b.length) {
        if (chunkLeft > 0) {
          const take = Math.min(chunkLeft, b.length - i);
          body(b.subarray(i, i + take), now);
          i += take;
          chunkLeft -= take;
          if (chunkLeft === 0) chunkLeft = -2; // its CRLF follows
          continue;
        }
        if (chunkLeft < 0) {
          const skip = Math.min(-chunkLeft, b.length - i);
          i += skip;
          chunkLeft += skip;
          continue;
        }
        const eol = b.indexOf("\r\n", i);
        if (eol === -1) break;
        const size = parseInt(b.toString("latin1", i, eol), 16);
        i = eol + 2;
        if (size === 0) {
          // Last chunk: its CRLF (no trailers are sent).
          pending = Buffer.alloc(0);
          return finish(undefined, b.length - i >= 2);
        }
        chunkLeft = size;
      }
      pending = i < b.length ? Buffer.from(b.subarray(i)) : Buffer.alloc(0);
    };
    const onClose = (): void => finish("connection closed mid-stream", false);
    socket.on("data", onData);
    socket.on("close", onClose);
    socket.write(request);
  });
}

// ---------------------------------------------------------------------------------------
// gRPC client: HTTP/2 frames by hand. Request headers are HPACK literals (no Huffman, no
// table); response header blocks are not decoded (HPACK's Huffman table is not worth the
// code here): a stream is good when every token and its finish chunk arrived and it ended
// with a trailers HEADERS frame, bad on RST_STREAM, GOAWAY or a short count. The server is
// asked for no dynamic table, and is given windows large enough never to throttle it.

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const MAX_WINDOW = 2 ** 31 - 1;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream, 5);
  payload.copy(out, 9);
  return out;
}

function literal(name: string, value: string): Buffer {
  // Literal header field without indexing, new name (RFC 7541 §6.2.2); lengths < 127.
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, "latin1"), Buffer.from([value.length]), Buffer.from(value, "latin1")]);
}

interface H2Stream {
  readonly s: ClientStream;
  readonly done: (error: string | undefined) => void;
  /** Bytes of a gRPC message split across frames. */
  partial: Buffer | undefined;
  need: number;
  sawTrailers: boolean;
}

class H2Connection {
  private readonly socket: Socket;
  private readonly streams = new Map<number, H2Stream>();
  private nextId = 1;
  private buf: Buffer = Buffer.alloc(0);
  private consumed = 0;
  private dead: string | undefined;
  private readonly headerBlock: Buffer;
  private readonly body: Buffer;

  constructor(
    readonly port: number,
    path: string,
    bodyBase64: string,
    private readonly payload: "proto" | "sse",
  ) {
    this.socket = connect({ host: "127.0.0.1", port, noDelay: true });
    this.socket.on("error", (err) => this.fail(err.message));
    this.socket.on("close", () => this.fail("connection closed"));
    this.socket.on("data", (d: Buffer) => this.onData(d));
    const settings = Buffer.alloc(18);
    settings.writeUInt16BE(0x1, 0); // HEADER_TABLE_SIZE
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x2, 6); // ENABLE_PUSH
    settings.writeUInt32BE(0, 8);
    settings.writeUInt16BE(0x4, 12); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(MAX_WINDOW, 14);
    const increment = Buffer.alloc(4);
    increment.writeUInt32BE(MAX_WINDOW - 65_535, 0);
    this.socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, settings), frame(0x8, 0, 0, increment)]));
    this.headerBlock = Buffer.concat([
      Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table)
      Buffer.concat([Buffer.from([0x04, path.length]), Buffer.from(path, "latin1")]), // :path, literal value
      Buffer.concat([Buffer.from([0x01, `127.0.0.1:${port}`.length]), Buffer.from(`127.0.0.1:${port}`, "latin1")]), // :authority
      literal("content-type", "application/grpc"),
      literal("te", "trailers"),
    ]);
    this.body = Buffer.from(bodyBase64, "base64");
  }

  get open(): number {
    return this.streams.size;
  }

  get usable(): boolean {
    return this.dead === undefined && this.nextId < 2 ** 30;
  }

  request(s: ClientStream): Promise<string | undefined> {
    return new Promise((resolve) => {
      if (this.dead !== undefined) return resolve(this.dead);
      const id = this.nextId;
      this.nextId += 2;
      const timer = setTimeout(() => done("stream timed out"), 120_000);
      const done = (error: string | undefined): void => {
        if (!this.streams.delete(id)) return;
        clearTimeout(timer);
        resolve(error ?? s.outcome());
      };
      this.streams.set(id, { s, done, partial: undefined, need: 0, sawTrailers: false });
      this.socket.write(Buffer.concat([frame(0x1, 0x4, id, this.headerBlock), frame(0x0, 0x1, id, this.body)]));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(why: string): void {
    this.dead ??= why;
    for (const st of [...this.streams.values()]) st.done(why);
  }

  private onData(d: Buffer): void {
    const now = performance.now();
    let b = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let i = 0;
    while (b.length - i >= 9) {
      const len = b.readUIntBE(i, 3);
      if (b.length - i < 9 + len) break;
      const type = b[i + 3]!;
      const flags = b[i + 4]!;
      const id = b.readUInt32BE(i + 5) & 0x7fffffff;
      const p = i + 9;
      i = p + len;
      switch (type) {
        case 0x0: {
          // DATA
          let start = p;
          let end = p + len;
          if (flags & 0x8) {
            const pad = b[p]!;
            start = p + 1;
            end -= pad;
          }
          this.consumed += len;
          const st = this.streams.get(id);
          if (st !== undefined) this.messages(st, b, start, end, now);
          if (flags & 0x1 && st !== undefined) st.done(st.s.finished ? undefined : "stream ended without trailers");
          break;
        }
        case 0x1: {
          // HEADERS: the response headers, or (END_STREAM) the trailers.
          const st = this.streams.get(id);
          if (st !== undefined && flags & 0x1) {
            st.sawTrailers = true;
            st.done(undefined);
          }
          break;
        }
        case 0x3: {
          const st = this.streams.get(id);
          st?.done(`RST_STREAM code ${b.readUInt32BE(p)}`);
          break;
        }
        case 0x4:
          if (!(flags & 0x1)) this.socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
          break;
        case 0x6:
          if (!(flags & 0x1)) this.socket.write(frame(0x6, 0x1, 0, b.subarray(p, p + 8)));
          break;
        case 0x7:
          this.fail(`GOAWAY code ${b.readUInt32BE(p + 4)}`);
          break;
        default:
          break; // WINDOW_UPDATE, PRIORITY, CONTINUATION of headers we do not decode
      }
    }
    this.buf = i < b.length ? Buffer.from(b.subarray(i)) : Buffer.alloc(0);
    if (this.consumed > 2 ** 30) {
      const inc = Buffer.alloc(4);
      inc.writeUInt32BE(this.consumed, 0);
      this.socket.write(frame(0x8, 0, 0, inc));
      this.consumed = 0;
    }
  }

  /** gRPC messages in a DATA payload (split anywhere: a message, or its 5-byte prefix, may span frames). */
  private messages(st: H2Stream, b: Buffer, start: number, end: number, now: number): void {
    let i = start;
    while (i < end) {
      if (st.partial !== undefined) {
        const take = Math.min(st.need - st.partial.length, end - i);
        st.partial = Buffer.concat([st.partial, b.subarray(i, i + take)]);
        i += take;
        if (st.partial.length < st.need) return;
        if (st.need === 5) {
          st.need = 5 + st.partial.readUInt32BE(1);
          if (st.need > 5) continue;
        }
        const whole = st.partial;
        st.partial = undefined;
        this.message(st.s, whole, 5, whole.length, now);
        continue;
      }
      if (end - i < 5) {
        st.partial = Buffer.from(b.subarray(i, end));
        st.need = 5;
        return;
      }
      const mlen = b.readUInt32BE(i + 1);
      if (end - i < 5 + mlen) {
        st.partial = Buffer.from(b.subarray(i, end));
        st.need = 5 + mlen;
        return;
      }
      this.message(st.s, b, i + 5, i + 5 + mlen, now);
      i += 5 + mlen;
    }
  }

  private message(s: ClientStream, b: Buffer, start: number, end: number, now: number): void {
    if (this.payload === "proto") chunkMessage(s, b, start, end, now);
    else sseData(s, b.subarray(start, end), now);
  }
}

function varint(b: Buffer, i: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (;;) {
    const x = b[i++]!;
    v += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return [v, i];
    shift += 7;
  }
}

/** Walks a ChatCompletionChunk far enough for: id (1), choices (6) → delta (2) → content (2), finish_reason (3). */
function chunkMessage(s: ClientStream, b: Buffer, start: number, end: number, now: number): void {
  let tokens = 0;
  let i = start;
  while (i < end) {
    const [key, j] = varint(b, i);
    i = j;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      i = varint(b, i)[1];
      continue;
    }
    if (wire !== 2) break; // no fixed-width fields in the parts walked
    const [len, k] = varint(b, i);
    i = k;
    if (field === 1 && Number.isNaN(s.t0)) s.identify(b.toString("latin1", i, i + len));
    else if (field === 6) tokens += choice(s, b, i, i + len);
    i += len;
  }
  s.arrived(now, tokens);
}

function choice(s: ClientStream, b: Buffer, start: number, end: number): number {
  let tokens = 0;
  let i = start;
  while (i < end) {
    const [key, j] = varint(b, i);
    i = j;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const [v, k] = varint(b, i);
      if (field === 3 && v !== 0) s.finished = true;
      i = k;
      continue;
    }
    if (wire !== 2) break;
    const [len, k] = varint(b, i);
    i = k;
    if (field === 2) {
      // Delta: content is field 2.
      let d = i;
      while (d < i + len) {
        const [dk, dj] = varint(b, d);
        d = dj;
        if ((dk & 7) === 0) {
          d = varint(b, d)[1];
          continue;
        }
        const [dl, dm] = varint(b, d);
        d = dm;
        if (dk >>> 3 === 2) tokens += dl / TOKEN_BYTES;
        d += dl;
      }
    }
    i += len;
  }
  return tokens;
}

const h2Pools = new Map<string, H2Connection[]>();

function grpcStream(t: Extract<CapacityTarget, { kind: "grpc" }>, expect: number): Promise<string | undefined> {
  const key = `${t.port}${t.path}`;
  const pool = h2Pools.get(key) ?? [];
  h2Pools.set(key, pool);
  let conn = pool.find((c) => c.usable && c.open < t.streamsPerConnection);
  if (conn === undefined) {
    conn = new H2Connection(t.port, t.path, t.bodyBase64, t.payload);
    pool.push(conn);
  }
  return conn.request(new ClientStream(expect));
}

// ---------------------------------------------------------------------------------------
// Steps.

function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function step(cmd: StepCommand): Promise<StepResult> {
  const t = performance.now();
  // Every stream lasts past the window's end whatever its start in the spread.
  const streamMs = cmd.spreadMs + cmd.warmupMs + cmd.measureMs + 200;
  const tokens = Math.ceil(streamMs / INTERVAL);
  streamTokens = tokens;
  win = { start: t + cmd.spreadMs + cmd.warmupMs, end: t + cmd.spreadMs + cmd.warmupMs + cmd.measureMs, delays: [], gaps: [], lags: [], messages: 0, tokens: 0, writes: 0, events: 0 };
  let cpuAt = process.cpuUsage();
  let cpu = Number.NaN;
  const startTimer = setTimeout(() => {
    cpuAt = process.cpuUsage();
    emit({ event: "measure-start" });
  }, win.start - t);
  const endTimer = setTimeout(() => {
    const u = process.cpuUsage(cpuAt);
    cpu = ((u.user + u.system) / 1000 / cmd.measureMs) * 100;
    emit({ event: "measure-end" });
  }, win.end - t);
  const outcomes: Promise<string | undefined>[] = [];
  for (let k = 0; k < cmd.streams; k++) {
    const at = (cmd.spreadMs * k) / cmd.streams;
    outcomes.push(
      new Promise<string | undefined>((resolve) => {
        setTimeout(() => {
          const p = cmd.target.kind === "sse" ? sseStream(cmd.target, tokens) : grpcStream(cmd.target, tokens);
          void p.then(resolve);
        }, at);
      }),
    );
  }
  const results = await Promise.all(outcomes);
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  const errors = results.filter((r) => r !== undefined);
  const delay = summarise(win.delays);
  const lag = summarise(win.lags);
  const sortedDelays = Float64Array.from(win.delays).sort();
  return {
    event: "step",
    streams: cmd.streams,
    completed: results.length - errors.length,
    errors: errors.length,
    firstError: errors[0],
    tokens: win.tokens,
    delay: { ...delay, p999: sortedDelays.length === 0 ? Number.NaN : sortedDelays[Math.min(sortedDelays.length - 1, Math.ceil(0.999 * sortedDelays.length) - 1)]!, max: sortedDelays.length === 0 ? Number.NaN : sortedDelays[sortedDelays.length - 1]! },
    gap: summarise(win.gaps),
    messagesPerToken: win.tokens === 0 ? Number.NaN : win.messages / win.tokens,
    upstreamLag: { ...lag, max: win.lags.length === 0 ? Number.NaN : Math.max(...win.lags.slice(0, 100_000)) },
    eventsPerWrite: win.writes === 0 ? Number.NaN : win.events / win.writes,
    driverCpu: cpu,
  };
}

const server = createServer(serve);
server.listen(0, "127.0.0.1", () => {
  const a = server.address();
  emit({ event: "ready", port: typeof a === "object" && a !== null ? a.port : 0 });
});

const rl = createInterface({ input: process.stdin });
let queue: Promise<void> = Promise.resolve();
rl.on("line", (line) => {
  const cmd = JSON.parse(line) as StepCommand | { cmd: "exit" };
  queue = queue.then(async () => {
    if (cmd.cmd === "exit") {
      for (const pool of h2Pools.values()) for (const c of pool) c.close();
      for (const pool of idleSse.values()) for (const s of pool) s.destroy();
      server.close();
      process.exit(0);
    }
    emit(await step(cmd));
  });
});
rl.on("close", () => process.exit(0));
