/**
 * What `aigw chat` shows: tokens as they arrive (reasoning dimmed on a terminal), then
 * one line of figures; and the JSON document of --json. Pure: writes go through the
 * `write` function it is given, so tests can render into a string.
 */
import { finishReasonToJSON, type ChatCompletionChunk, type FinishReason, type Usage } from "../../gen/aigateway/v1/chat.js";

const DIM = "\x1b[2m";
const UNDIM = "\x1b[22m";

/** Prints deltas as they arrive: reasoning (dimmed when `color`), a blank line, then the answer. */
export class TokenPrinter {
  private inReasoning = false;
  private wroteAny = false;
  private lastChar = "\n";

  constructor(
    private readonly write: (text: string) => void,
    private readonly options: { readonly color: boolean; readonly showReasoning: boolean },
  ) {}

  chunk(chunk: ChatCompletionChunk): void {
    const delta = chunk.choices[0]?.delta;
    if (delta === undefined) return;
    if (delta.reasoning !== undefined && delta.reasoning !== "" && this.options.showReasoning) {
      if (!this.inReasoning) {
        this.inReasoning = true;
        if (this.options.color) this.emit(DIM);
      }
      this.emit(delta.reasoning, true);
    }
    if (delta.content !== undefined && delta.content !== "") {
      this.endReasoning();
      this.emit(delta.content, true);
    }
  }

  /** Ends the output with a newline (and the terminal back to normal). */
  finish(): void {
    if (this.inReasoning && this.options.color) this.emit(UNDIM);
    this.inReasoning = false;
    if (this.wroteAny && this.lastChar !== "\n") this.emit("\n");
  }

  private endReasoning(): void {
    if (!this.inReasoning) return;
    this.inReasoning = false;
    if (this.options.color) this.emit(UNDIM);
    this.emit(this.lastChar === "\n" ? "\n" : "\n\n");
  }

  private emit(text: string, visible = false): void {
    this.write(text);
    if (visible || text.includes("\n")) {
      this.wroteAny = true;
      this.lastChar = text.at(-1) ?? this.lastChar;
    }
  }
}

/** Timing and totals of one streamed answer, measured by the client. */
export class StreamStats {
  private readonly started: number;
  private firstTokenAt: number | undefined;
  private lastChunkAt: number | undefined;
  content = "";
  reasoning = "";
  id = "";
  model = "";
  chunks = 0;
  finishReason: FinishReason | undefined;
  usage: Usage | undefined;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.started = now();
  }

  chunk(chunk: ChatCompletionChunk): void {
    const at = this.now();
    this.chunks++;
    this.lastChunkAt = at;
    if (chunk.id !== "") this.id = chunk.id;
    if (chunk.model !== "") this.model = chunk.model;
    if (chunk.usage !== undefined) this.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (choice?.finishReason !== undefined) this.finishReason = choice.finishReason;
    const text = (choice?.delta?.content ?? "") + (choice?.delta?.reasoning ?? "");
    if (text !== "" && this.firstTokenAt === undefined) this.firstTokenAt = at;
    this.content += choice?.delta?.content ?? "";
    this.reasoning += choice?.delta?.reasoning ?? "";
  }

  /** Time to first token (content or reasoning), in ms. */
  get timeToFirstTokenMs(): number | undefined {
    return this.firstTokenAt === undefined ? undefined : this.firstTokenAt - this.started;
  }

  get durationMs(): number {
    return (this.lastChunkAt ?? this.now()) - this.started;
  }

  /** Completion tokens over the time from the first token to the last chunk. */
  get tokensPerSecond(): number | undefined {
    const tokens = this.usage?.completionTokens;
    if (tokens === undefined || tokens === 0 || this.firstTokenAt === undefined || this.lastChunkAt === undefined) return undefined;
    const seconds = (this.lastChunkAt - this.firstTokenAt) / 1000;
    return seconds > 0 ? tokens / seconds : undefined;
  }
}

/** "finish_reason" the way OpenAI spells it: FINISH_REASON_TOOL_CALLS → "tool_calls". */
export function finishReasonName(reason: FinishReason | undefined): string | undefined {
  if (reason === undefined) return undefined;
  const name = finishReasonToJSON(reason).replace(/^FINISH_REASON_/, "").toLowerCase();
  return name === "unspecified" ? undefined : name;
}

/** The one stderr line after a streamed answer. */
export function figuresLine(stats: StreamStats, requestId: string): string {
  const parts: string[] = [];
  const ttft = stats.timeToFirstTokenMs;
  parts.push(ttft === undefined ? "no tokens" : `ttft ${Math.round(ttft)} ms`);
  const tps = stats.tokensPerSecond;
  if (tps !== undefined) parts.push(`${tps >= 100 ? Math.round(tps) : tps.toFixed(1)} tok/s`);
  const u = stats.usage;
  if (u !== undefined) parts.push(`${u.totalTokens} tokens (${u.promptTokens} in, ${u.completionTokens} out)`);
  if (u?.costUsd !== undefined) parts.push(`$${formatUsd(u.costUsd)}`);
  if (stats.model !== "") parts.push(stats.model);
  const finish = finishReasonName(stats.finishReason);
  if (finish !== undefined && finish !== "stop") parts.push(`finish: ${finish}`);
  parts.push(`request ${requestId}`);
  return parts.join(" · ");
}

/** USD with enough digits for per-call amounts (a short answer costs millionths of a dollar). */
export function formatUsd(usd: number): string {
  return usd >= 0.01 ? usd.toFixed(4) : usd.toPrecision(3);
}

/** The --json document of a streamed answer. */
export function chatJson(stats: StreamStats, requestId: string): Record<string, unknown> {
  const u = stats.usage;
  const round = (n: number | undefined) => (n === undefined ? null : Math.round(n * 10) / 10);
  return {
    requestId,
    id: stats.id,
    model: stats.model,
    content: stats.content,
    reasoning: stats.reasoning === "" ? null : stats.reasoning,
    finishReason: finishReasonName(stats.finishReason) ?? null,
    usage:
      u === undefined
        ? null
        : {
            promptTokens: u.promptTokens,
            completionTokens: u.completionTokens,
            totalTokens: u.totalTokens,
            reasoningTokens: u.completionTokensDetails?.reasoningTokens ?? 0,
            costUsd: u.costUsd ?? null,
          },
    timing: { timeToFirstTokenMs: round(stats.timeToFirstTokenMs), durationMs: round(stats.durationMs), tokensPerSecond: round(stats.tokensPerSecond) },
    chunks: stats.chunks,
  };
}
