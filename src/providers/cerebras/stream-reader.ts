/**
 * The body of one streamed attempt: SSE bytes in (socket reads, via Exchange), chunks
 * out to the call's sink, in order, with the sink's backpressure passed back to the
 * socket.
 *
 * The answer can be complete before the body ends, and an upstream (or a proxy) may
 * then stall without closing it. `completed` resolves as soon as nothing more is owed
 * to the caller: at `[DONE]`, at the chunk carrying usage once a choice has finished
 * (Cerebras sends usage with finish_reason, OpenAI right after), or after a short
 * silence once every choice has finished (watchdog.settle). Delivery stops there; the
 * provider ends the call and lets the rest of the body drain, so the keep-alive socket
 * can still be reused.
 *
 * Per event: the SSE decoder hands over the data bytes; a plain text chunk of the stream
 * is recognised on those bytes (wire/chunk-fast.ts) and needs no JSON.parse; anything
 * else goes through the codec's mapper. With mergeDeltas, plain chunks of one read are
 * joined into one (see StreamReaderOptions).
 */
import type { ChatCompletionChunk } from "../../../gen/aigateway/v1/chat.js";
import { FinishReason } from "../../../gen/aigateway/v1/chat.js";
import { GatewayError, ProviderError, Reason } from "../../core/errors.js";
import type { CallStats, ChunkSink } from "../../core/provider.js";
import { chunkFromTemplate, learnTemplate, matchTemplate, type ChunkTemplate } from "../../wire/chunk-fast.js";
import { badResponse, chatCompletionChunkFromJson } from "../../wire/response.js";
import { errorFromResponse } from "./errors.js";
import type { BodySink } from "./exchange.js";
import { SseDecoder } from "./sse.js";
import type { Watchdog } from "./watchdog.js";

export interface StreamReaderOptions {
  /**
   * Plain text deltas of one choice that arrive in the same socket read are handed to the
   * sink as one chunk with their texts joined (STREAM_MERGE_DELTAS): the caller gets the
   * same text in fewer messages. Only chunks the fast path (wire/chunk-fast.ts)
   * recognised are merged — never role, tool-call, logprob, finish or usage chunks, and
   * never across reads, so no chunk waits for another read (see hold()).
   */
  readonly mergeDeltas?: boolean;
}

/**
 * Templates a stream may try to learn, successful or not, before the reader stops trying:
 * a stream whose plain chunks keep changing shape (several choices taking turns replace
 * each other's template) would otherwise pay for learning on every event.
 */
const LEARN_ATTEMPTS = 8;

export class StreamReader implements BodySink {
  /** Chunks handed to the sink. */
  delivered = 0;
  /** Events read by the fast path (wire/chunk-fast.ts), not JSON.parse and the mapper. */
  fast = 0;
  /** A finish_reason or [DONE] was seen: the stream is not truncated. */
  finished = false;
  /** Resolves when the answer is complete (see the file comment); never rejects. */
  readonly completed: Promise<void>;
  private resolveCompleted!: () => void;
  private readonly decoder = new SseDecoder();
  private done = false;
  /** Choice indices seen, and those that finished. */
  private readonly open = new Set<number>();
  private readonly ended = new Set<number>();
  /** Learned from this stream's plain chunks (content, reasoning). */
  private templates: ChunkTemplate[] = [];
  private learnAttempts = LEARN_ATTEMPTS;
  private readonly merge: boolean;
  /** A plain chunk of this read not handed over yet (merging): its template and texts. */
  private heldTemplate: ChunkTemplate | undefined;
  private heldText = "";
  /** The sink's backpressure for the read in progress. */
  private wait: Promise<void> | undefined;
  /** The sink's backpressure from a chunk handed over after its read (hold()): applied to the next read. */
  private late: Promise<void> | undefined;
  private releaseQueued = false;
  private readonly onEvent = (data: Buffer, start: number, end: number, event: string | undefined): void => this.event(data, start, end, event);

  constructor(
    private readonly sink: ChunkSink,
    private readonly watchdog: Watchdog,
    private readonly stats: CallStats,
    options: StreamReaderOptions = {},
  ) {
    this.completed = new Promise((resolve) => (this.resolveCompleted = resolve));
    this.merge = options.mergeDeltas === true;
  }

  /**
   * Hands the events of one read to the sink, all of them: they are in memory already,
   * and pausing between them would cost an event-loop turn per message under load. The
   * sink's backpressure (its returned promises) pauses the socket after the read.
   */
  data(bytes: Buffer): void | Promise<void> {
    if (this.done) return;
    // Backpressure from a merged chunk handed over after the previous read (see hold()).
    this.wait = this.late;
    this.late = undefined;
    try {
      this.decoder.feed(bytes, this.onEvent);
    } catch (err) {
      this.fail();
      throw err;
    }
    if (this.heldTemplate !== undefined) this.hold();
    // Keep-alive comments are not progress (watchdog.ts).
    if (this.decoder.takeProgress()) this.watchdog.touch();
    return this.settleRead();
  }

  /**
   * A merged chunk waits for the rest of the socket read: undici hands over a chunked
   * body one HTTP chunk at a time (one SSE event each, as upstreams write them), all in
   * one synchronous parse of the read, so the held chunk goes to the sink in a microtask
   * once the parse is over — before the next read is even looked at. Its backpressure is
   * applied with the next read; a failure ends the attempt through the watchdog, as a
   * stall does (nobody is on the stack to throw to).
   */
  private hold(): void {
    if (this.releaseQueued) return;
    this.releaseQueued = true;
    queueMicrotask(this.releaseLater);
  }

  private readonly releaseLater = (): void => {
    this.releaseQueued = false;
    if (this.heldTemplate === undefined || this.done) return;
    const before = this.wait;
    this.wait = undefined;
    try {
      this.release();
    } catch (err) {
      this.watchdog.fail(GatewayError.from(err));
      return;
    } finally {
      const pending = this.takeWait();
      this.wait = before;
      if (pending !== undefined) {
        pending.catch((err: unknown) => this.watchdog.fail(GatewayError.from(err)));
        this.late = this.late === undefined ? pending : Promise.all([this.late, pending]).then(noop);
        this.late.catch(noop); // observed above; the read that returns it reports it again
      }
    }
  };

  end(): void | Promise<void> {
    // An event left unterminated at EOF still counts.
    if (this.done) return;
    this.wait = this.late;
    this.late = undefined;
    try {
      this.decoder.finish(this.onEvent);
      this.release();
    } catch (err) {
      this.fail();
      throw err;
    }
    return this.settleRead();
  }

  /** After a read's events: every choice has finished and usage may still follow: wait a little for it, not for the idle timeout. */
  private settleRead(): void | Promise<void> {
    if (!this.done && this.finished && this.ended.size === this.open.size) this.watchdog.settle(() => this.complete());
    return this.wait;
  }

  /** A read failed: what it delivered stays delivered; a pending wait rejecting later says nothing new. */
  private fail(): void {
    try {
      this.release();
    } catch {
      // the first error is the one reported
    }
    this.wait?.catch(noop);
  }

  private event(data: Buffer, start: number, end: number, type: string | undefined): void {
    if (this.done) return;
    if (type === undefined) {
      const templates = this.templates;
      for (let i = 0; i < templates.length; i++) {
        const t = templates[i]!;
        const text = matchTemplate(t, data, start, end);
        if (text === undefined) continue;
        this.fast++;
        if (this.merge) {
          if (this.heldTemplate !== t) {
            this.release();
            this.heldTemplate = t;
            this.heldText = text;
          } else {
            this.heldText += text;
          }
        } else {
          this.deliver(chunkFromTemplate(t, text));
        }
        return;
      }
    }
    this.release();
    const chunk = chunkFromEvent(data.toString("utf8", start, end), type, this.delivered);
    if (chunk === DONE) {
      this.complete();
      return;
    }
    if (this.learnAttempts > 0 && type === undefined && this.templates.length < 2) this.learn(data, start, end, chunk);
    this.deliver(chunk);
    if (this.finished && chunk.usage !== undefined) this.complete(); // usage comes last
  }

  private learn(data: Buffer, start: number, end: number, chunk: ChatCompletionChunk): void {
    if (chunk.usage !== undefined || chunk.choices.length !== 1) return;
    this.learnAttempts--;
    const t = learnTemplate(data, start, end, chunk);
    if (t === undefined) return;
    // One template per text field: a newer one (another id) replaces an older one.
    this.templates = [...this.templates.filter((x) => x.field !== t.field), t];
  }

  /** The backpressure collected since it was last reset. */
  private takeWait(): Promise<void> | undefined {
    const w = this.wait;
    this.wait = undefined;
    return w;
  }

  /** Hands over the held (merged) chunk, if any. */
  private release(): void {
    const t = this.heldTemplate;
    if (t === undefined) return;
    this.heldTemplate = undefined;
    const text = this.heldText;
    this.heldText = "";
    this.deliver(chunkFromTemplate(t, text));
  }

  private deliver(chunk: ChatCompletionChunk): void {
    this.noteChoices(chunk);
    if (this.delivered++ === 0) this.stats.firstChunkAt = performance.now();
    const pending = this.sink(chunk);
    // Sinks usually hand out one promise per full buffer; distinct ones are all awaited.
    const wait = this.wait;
    if (pending !== undefined && pending !== wait) this.wait = wait === undefined ? pending : Promise.all([wait, pending]).then(noop);
  }

  private noteChoices(chunk: ChatCompletionChunk): void {
    for (const c of chunk.choices) {
      this.open.add(c.index);
      if (c.finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED) {
        this.ended.add(c.index);
        this.finished = true;
      }
    }
  }

  /** Nothing more is owed to the caller: stop delivering, tell the provider. */
  private complete(): void {
    if (this.done) return;
    this.release();
    this.done = this.finished = true;
    this.resolveCompleted();
  }
}

function noop(): void {}

const DONE = Symbol("done");

/** The full path: JSON.parse and the codec's mapper. */
function chunkFromEvent(data: string, type: string | undefined, delivered: number): ChatCompletionChunk | typeof DONE {
  if (data === "[DONE]") return DONE;
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw badResponse("a stream event is not JSON");
  }
  if (type === "error" || (typeof json === "object" && json !== null && "error" in json)) {
    throw streamError(json, delivered);
  }
  return chatCompletionChunkFromJson(json);
}

/**
 * A mid-stream `{"error":{…},"status_code":N}` frame. Before any chunk was delivered it
 * is as good as an HTTP error status, so it maps like one; after, the stream is broken.
 */
function streamError(json: unknown, delivered: number): GatewayError {
  const o = (typeof json === "object" && json !== null ? json : {}) as { error?: unknown; status_code?: unknown };
  const error = typeof o.error === "object" && o.error !== null ? o.error : {};
  const status = typeof o.status_code === "number" ? o.status_code : undefined;
  if (delivered === 0 && status !== undefined && status !== 200) {
    return errorFromResponse(status, {}, JSON.stringify(error));
  }
  const e = error as { message?: unknown; code?: unknown; type?: unknown };
  const metadata: Record<string, string> = {};
  if (typeof e.code === "string") metadata["upstreamCode"] = e.code;
  if (typeof e.type === "string") metadata["upstreamType"] = e.type;
  if (status !== undefined) metadata["upstreamStatus"] = String(status);
  const text = typeof e.message === "string" ? e.message.slice(0, 500) : "stream error";
  return new ProviderError({ reason: Reason.UPSTREAM_STREAM_ERROR, message: `Cerebras: ${text}`, metadata });
}
