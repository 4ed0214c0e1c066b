/**
 * Streams in progress, without touching a single chunk: a ChatProvider decorator notes
 * each stream when the core first asks the provider for it (once per call, whatever its
 * attempts), and the call's end
 * (its CallRecord, which carries the same CallStats object) takes it off again. The
 * chunks go straight to the caller's sink, exactly as without metrics.
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { CallRecord } from "../core/call-log.js";
import type { CallContext, CallStats, ChatProvider, ChunkSink, UpstreamAttempt } from "../core/provider.js";

export class StreamCount {
  /** The CallStats of streams in progress (weakly held: the set never keeps a call's figures alive). */
  private readonly open = new WeakSet<CallStats>();
  private count = 0;

  constructor(private readonly changed: (count: number) => void) {}

  /** `provider`, with every stream it starts counted until its call ends (ended()). */
  wrap(provider: ChatProvider): ChatProvider {
    return {
      createChatCompletion: (request, ctx, upstream) => provider.createChatCompletion(request, ctx, upstream),
      // Once per call: a call's later attempts (another key, a fallback) are the same stream.
      streamChatCompletion: (request: ChatCompletionRequest, ctx: CallContext, sink: ChunkSink, upstream?: UpstreamAttempt) => {
        if (!this.open.has(ctx.stats)) {
          this.open.add(ctx.stats);
          this.changed(++this.count);
        }
        return provider.streamChatCompletion(request, ctx, sink, upstream);
      },
      listModels: (ctx) => provider.listModels(ctx),
      close: () => provider.close(),
    };
  }

  /** The call is over: if it was a stream, it no longer is in progress. */
  ended(record: CallRecord): void {
    if (this.open.delete(record.stats)) this.changed(--this.count);
  }
}
