/**
 * A stand-in ChatService on 127.0.0.1 that records each call's metadata and deadline
 * and answers an empty completion (or an empty stream): to see what a client puts on the wire (the real
 * gateway does not echo request metadata).
 */
import { Server, type Metadata, type ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { ChatCompletion, ChatServiceService, type ChatCompletionRequest, type ChatServiceServer } from "../../gen/aigateway/v1/chat.js";

export interface Seen {
  readonly metadata: Metadata;
  /** Epoch ms, Infinity without a deadline. */
  readonly deadline: number;
}

export interface RecordingServer {
  readonly port: number;
  readonly seen: Seen[];
  stop(): void;
}

/** A ChatService that records each call's metadata and deadline and answers an empty completion. */
export async function recordingServer(creds: ServerCredentials): Promise<RecordingServer> {
  const seen: Seen[] = [];
  const server = new Server();
  const record = (call: { metadata: Metadata; getDeadline(): Date | number }): void => {
    const d = call.getDeadline();
    seen.push({ metadata: call.metadata, deadline: d instanceof Date ? d.getTime() : d });
  };
  const impl: ChatServiceServer = {
    createChatCompletion: (call: ServerUnaryCall<ChatCompletionRequest, ChatCompletion>, callback: sendUnaryData<ChatCompletion>) => {
      record(call);
      callback(null, ChatCompletion.fromPartial({ id: "recorded" }));
    },
    // An empty stream: ends at once with OK.
    streamChatCompletion: (call) => {
      record(call);
      call.end();
    },
  };
  server.addService(ChatServiceService, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { port, seen, stop: () => server.forceShutdown() };
}

