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
 */
import type { ChatCompletionChunk } from "../../../gen/aigateway/v1/chat.js";
import { FinishReason } from "../../../gen/aigateway/v1/chat.js";
import { GatewayError, ProviderError, Reason } from "../../core/errors.js";
import type { CallStats, ChunkSink } from "../../core/provider.js";
import { badResponse, chatCompletionChunkFromJson } from "../../wire/response.js";
import { errorFromResponse } from "./errors.js";
import type { BodySink } from "./exchange.js";
import { SseDecoder, type SseEvent } from "./sse.js";
import type { Watchdog } from "./watchdog.js";

export class StreamReader implements BodySink {
  /** Chunks handed to the sink. */
  delivered = 0;
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

  constructor(
    private readonly sink: ChunkSink,
    private readonly watchdog: Watchdog,
    private readonly stats: CallStats,
  ) {
    this.completed = new Promise((resolve) => (this.resolveCompleted = resolve));
  }

  data(bytes: Buffer): void | Promise<void> {
    if (this.done) return;
    const events = this.decoder.push(bytes);
    // Keep-alive comments are not progress (watchdog.ts).
    if (this.decoder.takeProgress()) this.watchdog.touch();
    return this.deliver(events);
  }

  end(): void | Promise<void> {
    // An event left unterminated at EOF still counts.
    if (!this.done) return this.deliver(this.decoder.end());
  }

  /**
   * Hands the events of one read to the sink, all of them: they are in memory already,
   * and pausing between them would cost an event-loop turn per message under load. The
   * sink's backpressure (its returned promises) pauses the socket after the read.
   */
  private deliver(events: SseEvent[]): void | Promise<void> {
    let wait: Promise<void> | undefined;
    try {
      for (let i = 0; i < events.length; i++) {
        const chunk = chunkFromEvent(events[i]!, this.delivered);
        if (chunk === DONE) {
          this.complete();
          break;
        }
        this.noteChoices(chunk);
        if (this.delivered++ === 0) this.stats.firstChunkAt = performance.now();
        const pending = this.sink(chunk);
        // Sinks usually hand out one promise per full buffer; distinct ones are all awaited.
        if (pending !== undefined && pending !== wait) wait = wait === undefined ? pending : Promise.all([wait, pending]).then(noop);
        if (this.finished && chunk.usage !== undefined) {
          this.complete(); // usage comes last
          break;
        }
      }
      // Every choice has finished and usage may still follow: wait a little for it, not for the idle timeout.
      if (!this.done && this.finished && this.ended.size === this.open.size) this.watchdog.settle(() => this.complete());
    } catch (err) {
      wait?.catch(noop); // the stream fails with `err`; a later rejection says nothing new
      throw err;
    }
    return wait;
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
    this.done = this.finished = true;
    this.resolveCompleted();
  }
}

function noop(): void {}

const DONE = Symbol("done");

function chunkFromEvent(event: SseEvent, delivered: number): ChatCompletionChunk | typeof DONE {
  const data = event.data;
  if (data === "[DONE]") return DONE;
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw badResponse("a stream event is not JSON");
  }
  if (event.event === "error" || (typeof json === "object" && json !== null && "error" in json)) {
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
