/**
 * The request bodies the bench sends, built once, and byte counters for the replies: the
 * load generator counts gRPC messages (5-byte length prefixes) and SSE events (blank
 * lines) without decoding them, so its own cost per message stays a few instructions.
 */
import { ChatCompletionRequest, Role } from "../../gen/aigateway/v1/chat.js";

export const MODEL = "gpt-oss-120b";
export const PROMPT = "Say hi";
export const GRPC_UNARY_PATH = "/aigateway.v1.ChatService/CreateChatCompletion";
export const GRPC_STREAM_PATH = "/aigateway.v1.ChatService/StreamChatCompletion";
export const CHAT_PATH = "/v1/chat/completions";

/** The gRPC request, length-prefixed (one uncompressed message). */
export function grpcRequestBody(): Buffer {
  const msg = ChatCompletionRequest.encode(
    ChatCompletionRequest.fromPartial({ model: MODEL, messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: PROMPT } }] }),
  ).finish();
  const out = Buffer.alloc(5 + msg.length);
  out.writeUInt32BE(msg.length, 1);
  out.set(msg, 5);
  return out;
}

/** The same request as the OpenAI/Cerebras JSON the gateway sends upstream. */
export function jsonRequestBody(stream: boolean): string {
  return JSON.stringify({ model: MODEL, messages: [{ role: "user", content: PROMPT }], ...(stream ? { stream: true } : {}) });
}

/** Counts complete gRPC messages in a byte stream split anywhere. */
export class GrpcFrameCounter {
  messages = 0;
  /** Bytes still to skip of the current message body. */
  private remaining = 0;
  /** Header bytes seen of the next message (0-5) and its length so far. */
  private headerSeen = 0;
  private length = 0;

  /** Returns how many messages this chunk completed. */
  push(buf: Buffer): number {
    let completed = 0;
    let i = 0;
    const n = buf.length;
    while (i < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - i);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) completed++;
        continue;
      }
      // Header: flag byte, then a 4-byte big-endian length.
      if (this.headerSeen > 0) this.length = this.length * 256 + buf[i]!;
      this.headerSeen++;
      i++;
      if (this.headerSeen === 5) {
        this.headerSeen = 0;
        this.remaining = this.length;
        this.length = 0;
        if (this.remaining === 0) completed++;
      }
    }
    this.messages += completed;
    return completed;
  }
}

/** Counts SSE events (a blank line ends one: LF LF) in a byte stream split anywhere. */
export class SseEventCounter {
  events = 0;
  /** The last byte seen was an LF ending a non-blank line. */
  private armed = false;

  push(buf: Buffer): number {
    if (buf.length === 0) return 0;
    let completed = 0;
    // Index of the LF that armed the counter; -1 stands for "armed by the previous chunk".
    let armedAt = this.armed ? -1 : -2;
    for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) {
      if (armedAt === i - 1) {
        completed++;
        armedAt = -2;
      } else {
        armedAt = i;
      }
    }
    this.armed = armedAt === buf.length - 1;
    this.events += completed;
    return completed;
  }
}
