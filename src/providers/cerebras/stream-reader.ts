/**
 * The body of one streamed attempt: SSE bytes in (socket reads, via Exchange), chunks
 * out to the call's sink, in order, with the sink's backpressure passed back to the
 * socket. `[DONE]` ends delivery; the rest of the body is still read (and ignored) so
 * the keep-alive socket can be reused.
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
  /** A finish_reason or [DONE] was seen: the stream is complete. */
  finished = false;
  private readonly decoder = new SseDecoder();
  private done = false;

  constructor(
    private readonly sink: ChunkSink,
    private readonly watchdog: Watchdog,
    private readonly stats: CallStats,
  ) {}

  data(bytes: Buffer): void | Promise<void> {
    this.watchdog.touch();
    if (this.done) return;
    return this.deliver(this.decoder.push(bytes));
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
          this.done = this.finished = true;
          break;
        }
        if (!this.finished) this.finished = hasFinishReason(chunk);
        if (this.delivered++ === 0) this.stats.firstChunkAt = performance.now();
        const pending = this.sink(chunk);
        // Sinks usually hand out one promise per full buffer; distinct ones are all awaited.
        if (pending !== undefined && pending !== wait) wait = wait === undefined ? pending : Promise.all([wait, pending]).then(noop);
      }
    } catch (err) {
      wait?.catch(noop); // the stream fails with `err`; a later rejection says nothing new
      throw err;
    }
    return wait;
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

function hasFinishReason(chunk: ChatCompletionChunk): boolean {
  for (const c of chunk.choices) if (c.finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED) return true;
  return false;
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
