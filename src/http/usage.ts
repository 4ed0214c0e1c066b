/**
 * Where a stream's usage goes. Cerebras always puts `usage` and `time_info` in the last
 * chunk, next to `finish_reason` (CEREBRAS_API.md §4); OpenAI sends usage only when
 * asked, in a chunk of its own with `choices: []` after the finish chunk.
 *
 * - `stream_options.include_usage: true` → OpenAI's form: every chunk carries
 *   `usage: null`, and one more chunk with `choices: []` carries `usage` and `time_info`.
 * - otherwise → Cerebras' form, unchanged: `usage` and `time_info` in the finish chunk.
 *   OpenAI clients ignore the extra field; Cerebras clients find usage where they expect
 *   it, and no information is thrown away.
 */
import type { ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { chatCompletionChunkToJson } from "../wire/response-to-json.js";
import type { ChatCompletionChunkJson, TimeInfoJson, UsageJson } from "../wire/schema.js";

export class StreamUsage {
  private usage: UsageJson | undefined;
  private timeInfo: TimeInfoJson | undefined;
  private last: ChatCompletionChunkJson | undefined;

  /** @param separate the client asked for OpenAI's separate usage chunk */
  constructor(private readonly separate: boolean) {}

  /** The events to send for one chunk from the core (none or one). */
  events(chunk: ChatCompletionChunk): ChatCompletionChunkJson[] {
    const json = chatCompletionChunkToJson(chunk);
    if (!this.separate) return [json];
    this.last = json;
    const hadUsage = json.usage != null;
    if (hadUsage) this.usage = json.usage!;
    if (json.time_info != null) this.timeInfo = json.time_info;
    delete json.time_info;
    json.usage = null;
    // A usage-only chunk (OpenAI style) is sent once, at the end.
    return hadUsage && json.choices.length === 0 ? [] : [json];
  }

  /** After the last chunk: the usage chunk, when the client asked for one. */
  final(): ChatCompletionChunkJson[] {
    const last = this.last;
    if (!this.separate || this.usage === undefined || last === undefined) return [];
    const out: ChatCompletionChunkJson = { id: last.id, object: "chat.completion.chunk", created: last.created, model: last.model, choices: [] };
    if (last.system_fingerprint != null) out.system_fingerprint = last.system_fingerprint;
    out.usage = this.usage;
    if (this.timeInfo !== undefined) out.time_info = this.timeInfo;
    return [out];
  }
}
