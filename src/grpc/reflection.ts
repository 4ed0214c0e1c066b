/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), served from the unmodified
 * descriptor bytes `buf generate` writes into gen/descriptor.ts.
 *
 * Why not @grpc/reflection: it rebuilds descriptors through protobufjs, which drops
 * imports, renames map entries and loses proto2 zero values, and grpcurl / buf curl then
 * fail on any file that imports another (grpc-node#3018, #3034). Here the descriptors
 * are decoded only to build an index; what goes on the wire is the original bytes.
 *
 * Reflection is open to anyone, so what a stream costs is bounded: answers are written
 * with backpressure (a client that stops reading stops being read from), and a request
 * is echoed back (original_request, valid_host) only when small; a larger one gets an
 * INVALID_ARGUMENT answer without its bytes.
 */
import type { Server, ServerDuplexStream } from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema, type DescriptorProto } from "@bufbuild/protobuf/wkt";
import { DESCRIPTOR_SET_BASE64 } from "../../gen/descriptor.js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection.js";

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/** Longest host, file name or symbol a request may carry (real ones are far shorter). */
const MAX_REQUEST_TEXT = 1024;

/** Files, symbols and services of one descriptor set, with each file's original bytes. */
export class DescriptorIndex {
  private readonly fileBytes = new Map<string, Buffer>();
  private readonly fileDeps = new Map<string, readonly string[]>();
  private readonly symbolFile = new Map<string, string>();
  readonly services: readonly string[];

  constructor(descriptorSet: Uint8Array) {
    const raw: Buffer[] = [];
    for (const reader = new BinaryReader(descriptorSet); reader.pos < reader.len; ) {
      const [field, wireType] = reader.tag();
      if (field === 1) raw.push(Buffer.from(reader.bytes()));
      else reader.skip(wireType);
    }
    const files = fromBinary(FileDescriptorSetSchema, descriptorSet).file;
    const services: string[] = [];
    files.forEach((file, i) => {
      this.fileBytes.set(file.name, raw[i]!);
      this.fileDeps.set(file.name, file.dependency);
      const prefix = file.package ? `${file.package}.` : "";
      for (const s of file.service) {
        const name = prefix + s.name;
        services.push(name);
        this.symbolFile.set(name, file.name);
        for (const m of s.method) this.symbolFile.set(`${name}.${m.name}`, file.name);
      }
      for (const e of file.enumType) this.symbolFile.set(prefix + e.name, file.name);
      for (const e of file.extension) this.symbolFile.set(prefix + e.name, file.name);
      const addMessages = (scope: string, messages: readonly DescriptorProto[]): void => {
        for (const m of messages) {
          const name = scope + m.name;
          this.symbolFile.set(name, file.name);
          for (const e of m.enumType) this.symbolFile.set(`${name}.${e.name}`, file.name);
          addMessages(`${name}.`, m.nestedType);
        }
      };
      addMessages(prefix, file.messageType);
    });
    this.services = services;
  }

  /** The gateway's own contract, as generated. */
  static load(): DescriptorIndex {
    return new DescriptorIndex(Buffer.from(DESCRIPTOR_SET_BASE64, "base64"));
  }

  /** The file and everything it imports, transitively, each once: what clients need to resolve it. */
  fileWithDependencies(name: string): Buffer[] | undefined {
    if (!this.fileBytes.has(name)) return undefined;
    const out: Buffer[] = [];
    const seen = new Set<string>();
    const visit = (n: string): void => {
      if (seen.has(n)) return;
      seen.add(n);
      const bytes = this.fileBytes.get(n);
      if (bytes === undefined) return;
      out.push(bytes);
      for (const d of this.fileDeps.get(n) ?? []) visit(d);
    };
    visit(name);
    return out;
  }

  fileContainingSymbol(symbol: string): string | undefined {
    return this.symbolFile.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }
}

type Request = v1.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;

/** Answers one reflection request. v1 and v1alpha messages have the same shape. */
export function answer(index: DescriptorIndex, request: Request): Response {
  if (!small(request)) {
    return {
      validHost: "",
      messageResponse: { $case: "errorResponse", value: { errorCode: INVALID_ARGUMENT, errorMessage: `reflection requests carry at most ${MAX_REQUEST_TEXT} characters of host and name` } },
    };
  }
  const r = request.messageRequest;
  const base = { validHost: request.host, originalRequest: request };
  const error = (code: number, message: string): Response => ({
    ...base,
    messageResponse: { $case: "errorResponse", value: { errorCode: code, errorMessage: message } },
  });
  const files = (name: string | undefined, what: string): Response => {
    const bytes = name === undefined ? undefined : index.fileWithDependencies(name);
    if (bytes === undefined) return error(NOT_FOUND, `${what} not found`);
    return { ...base, messageResponse: { $case: "fileDescriptorResponse", value: { fileDescriptorProto: bytes } } };
  };

  switch (r?.$case) {
    case "listServices":
      return {
        ...base,
        messageResponse: { $case: "listServicesResponse", value: { service: index.services.map((name) => ({ name })) } },
      };
    case "fileByFilename":
      return files(r.value, `file ${r.value}`);
    case "fileContainingSymbol":
      return files(index.fileContainingSymbol(r.value), `symbol ${r.value}`);
    case "fileContainingExtension":
      return error(NOT_FOUND, `no extensions of ${r.value.containingType} are known`);
    case "allExtensionNumbersOfType":
      return { ...base, messageResponse: { $case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: [] } } };
    default:
      return error(UNIMPLEMENTED, "unsupported reflection request");
  }
}

/** Whether a request is small enough to answer and echo. */
function small(request: Request): boolean {
  const r = request.messageRequest;
  const text = r === undefined ? "" : r.$case === "fileContainingExtension" ? r.value.containingType : r.value;
  return request.host.length <= MAX_REQUEST_TEXT && text.length <= MAX_REQUEST_TEXT;
}

/** Registers both reflection service versions on a server. */
export function addReflection(server: Server, index: DescriptorIndex): void {
  const handler = (call: ServerDuplexStream<Request, Response>): void => {
    call.on("data", (request: Request) => {
      // A full write buffer: stop reading requests until the client has taken the answers
      // (grpc-js then stops reading the stream, and HTTP/2 flow control holds the client).
      if (!call.write(answer(index, request))) {
        call.pause();
        call.once("drain", () => call.resume());
      }
    });
    call.on("end", () => call.end());
    call.on("error", () => call.end());
  };
  server.addService(v1.ServerReflectionService, { serverReflectionInfo: handler });
  server.addService(v1alpha.ServerReflectionService, { serverReflectionInfo: handler });
}
