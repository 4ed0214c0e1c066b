#!/usr/bin/env node
// A protoc/buf plugin that writes, for every message of the contract, a size pass and a
// write pass into one exact-sized Buffer: `gen/<file>.encode.ts` next to ts-proto's
// `gen/<file>.ts`, with the same bytes as ts-proto's encoder, several times faster (see
// scripts/fast-encode/runtime.ts for how, generate.mjs for what is generated). The gRPC
// server's reply serializers are these (src/grpc/serializers.ts), so a field added to the
// proto is encoded, and tested (test/unit/fast-encode.test.ts), without a hand edit.
//
// Options (buf.gen.yaml `opt`): package=<prefix>, repeatable: generate for the files whose
// package is, or is under, one of the prefixes (and the messages they reach elsewhere).
// Plain Node ESM over @bufbuild/protobuf's descriptors: no build step.
import { readFileSync } from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema, CodeGeneratorResponse_Feature, CodeGeneratorResponse_FileSchema, CodeGeneratorResponseSchema } from "@bufbuild/protobuf/wkt";
import { generate } from "./fast-encode/generate.mjs";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = fromBinary(CodeGeneratorRequestSchema, Buffer.concat(chunks));

const response = create(CodeGeneratorResponseSchema, { supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL) });
try {
  const runtime = readFileSync(new URL("./fast-encode/runtime.ts", import.meta.url), "utf8");
  response.file = generate(request, runtime).map((f) => create(CodeGeneratorResponse_FileSchema, f));
} catch (err) {
  response.error = `protoc-gen-fast-encode: ${err instanceof Error ? err.message : String(err)}`;
}
process.stdout.write(toBinary(CodeGeneratorResponseSchema, response));
