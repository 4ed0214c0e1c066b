/**
 * The floor of this stack, for `npm run bench -- --only floor`: a bare grpc-js server on
 * the gateway's service paths whose handlers only relay raw bytes to the same fake
 * upstream through an undici Pool. No validation, no JSON or protobuf work (the reply's
 * gRPC message is the upstream's JSON bytes; a stream's messages are its SSE events as
 * they are), no metrics, no logging, no deadline budget. Whatever this adds over direct
 * calls is grpc-js, node:http2 and undici, which any gateway on this stack pays; the
 * gateway's figures minus these are what its own code costs.
 *
 * Configured like the gateway, through its environment: CEREBRAS_BASE_URL,
 * CEREBRAS_API_KEY, GRPC_HOST, GRPC_PORT. Stops on SIGTERM.
 */
import { Server, ServerCredentials, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, type ServiceDefinition } from "@grpc/grpc-js";
import { Pool } from "undici";
import { CHAT_PATH, GRPC_STREAM_PATH, GRPC_UNARY_PATH, jsonRequestBody } from "./lib/wire.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is required`);
  return v;
};

const pool = new Pool(new URL(env("CEREBRAS_BASE_URL")).origin, { connections: 128, keepAliveTimeout: 30_000 });
const headers = { authorization: `Bearer ${env("CEREBRAS_API_KEY")}`, "content-type": "application/json" };
const unaryBody = jsonRequestBody(false);
const streamBody = jsonRequestBody(true);
const SSE_END = Buffer.from("\n\n");

const bytes = (b: Buffer): Buffer => b;
const method = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: bytes,
  requestDeserialize: bytes,
  responseSerialize: bytes,
  responseDeserialize: bytes,
});
const definition: ServiceDefinition = {
  CreateChatCompletion: method(GRPC_UNARY_PATH, false),
  StreamChatCompletion: method(GRPC_STREAM_PATH, true),
};

function createChatCompletion(_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
  pool
    .request({ method: "POST", path: CHAT_PATH, headers, body: unaryBody })
    .then((res) => res.body.arrayBuffer())
    .then(
      (body) => callback(null, Buffer.from(body)),
      (err: Error) => callback(err),
    );
}

function streamChatCompletion(call: ServerWritableStream<Buffer, Buffer>): void {
  const ac = new AbortController();
  call.on("cancelled", () => ac.abort());
  pool
    .request({ method: "POST", path: CHAT_PATH, headers, body: streamBody, signal: ac.signal })
    .then(async (res) => {
      let rest: Buffer = Buffer.alloc(0);
      for await (const read of res.body) {
        let buf = rest.length === 0 ? (read as Buffer) : Buffer.concat([rest, read as Buffer]);
        for (let end = buf.indexOf(SSE_END); end !== -1; end = buf.indexOf(SSE_END)) {
          call.write(buf.subarray(0, end));
          buf = buf.subarray(end + 2);
        }
        rest = buf;
      }
      call.end();
    })
    .catch((err: Error) => call.destroy(err));
}

const server = new Server();
server.addService(definition, { CreateChatCompletion: createChatCompletion, StreamChatCompletion: streamChatCompletion });
server.bindAsync(`${env("GRPC_HOST")}:${env("GRPC_PORT")}`, ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write("floor listening\n");
});
process.on("SIGTERM", () => {
  server.forceShutdown();
  void pool.destroy().then(() => process.exit(0));
});
