/**
 * JSON values (tool parameters, a response_format schema, model_parameters) may nest at
 * most 32 levels (objects and arrays; the generated gRPC decoder stops at 100 message
 * levels, and a JSON object costs three of those). Deeper is a precise refusal naming the field, on both transports,
 * never a stack overflow: not HTTP 500, not gRPC INTERNAL "Error deserializing request".
 * A malformed gRPC message is the caller's problem too: INVALID_ARGUMENT, not INTERNAL.
 */
import { Writable } from "node:stream";
import { status, type ServiceError } from "@grpc/grpc-js";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { decodeStatus, userRequest } from "../helpers/harness.js";
import { chatBody, raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { frame, open, reply, session } from "../helpers/raw-grpc.js";

const CREATE = "/aigateway.v1.ChatService/CreateChatCompletion";

/** `depth` nested JSON arrays (or objects) as JSON text: [[[…[1]…]]]. (JSON.stringify itself overflows on deep values.) */
function nested(depth: number, kind: "array" | "object"): string {
  return kind === "array" ? "[".repeat(depth) + "1" + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

const DEEP = '"__deep__"';

/** A chat body with `extra`, where the string "__deep__" stands for the deep JSON text. */
function bodyWith(extra: Record<string, unknown>, deep: string): { body: string; headers: Record<string, string> } {
  return { body: JSON.stringify(chatBody("x", extra)).replace(DEEP, deep), headers: { "content-type": "application/json" } };
}

// ---- google.protobuf.Struct on the wire, built iteratively (the generated encoder recurses) ----

const ld = (field: number, bytes: Uint8Array): Uint8Array => new BinaryWriter().tag(field, WireType.LengthDelimited).bytes(bytes).finish();
const concat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);

/** A google.protobuf.Value nesting `depth` lists: list_value (6) { values (1) { … number_value (2) = 1 } }. */
function deepValue(depth: number): Uint8Array {
  let v: Uint8Array = new BinaryWriter().tag(2, WireType.Bit64).double(1).finish();
  for (let i = 0; i < depth; i++) v = ld(6, ld(1, v));
  return v;
}

/** A Struct {"a": <value>}: fields (1) { key (1) = "a", value (2) = <value> }. JSON depth: 1 + the value's. */
const struct = (value: Uint8Array): Uint8Array => ld(1, concat(new BinaryWriter().tag(1, WireType.LengthDelimited).string("a").finish(), ld(2, value)));

/** A struct whose JSON depth is exactly `depth` (the Struct itself counts as one level). */
const structOfDepth = (depth: number): Uint8Array => struct(deepValue(depth - 1));

/** `depth` nested Structs, {"a": {"a": … 1}}: the costliest shape for the decoder (three messages a level). */
function objectsOfDepth(depth: number): Uint8Array {
  let s = struct(new BinaryWriter().tag(2, WireType.Bit64).double(1).finish());
  for (let i = 1; i < depth; i++) s = struct(ld(5, s)); // Value.struct_value (5)
  return s;
}

/** A valid request with one JSON-valued field appended, as its field number says. */
function requestWith(field: "model_parameters" | "tools" | "response_format", structBytes: Uint8Array): Uint8Array {
  const base = ChatCompletionRequest.encode(userRequest("deep")).finish();
  switch (field) {
    case "model_parameters":
      return concat(base, ld(29, structBytes));
    case "tools": // tools (3) { function (1) { name (1) = "f", parameters (3) } }
      return concat(base, ld(3, ld(1, concat(new BinaryWriter().tag(1, WireType.LengthDelimited).string("f").finish(), ld(3, structBytes)))));
    case "response_format": // response_format (6) { json_schema (3) { name (1) = "s", schema (3) } }
      return concat(base, ld(6, ld(3, concat(new BinaryWriter().tag(1, WireType.LengthDelimited).string("s").finish(), ld(3, structBytes)))));
  }
}

const lines: string[] = [];
let h: HttpHarness;
beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split("\n").filter(Boolean));
      done();
    },
  });
  h = await startHttpHarness({ logSink: sink, env: { ALLOW_UNLISTED_MODELS: "false" } });
});
afterAll(async () => {
  await h.close();
});

const errorLines = (): string[] => lines.filter((l) => (JSON.parse(l) as { level: number }).level >= 50);

describe("HTTP: too deep is a 400 naming the field", () => {
  const cases: ReadonlyArray<[string, Record<string, unknown>, string, string]> = [
    ["tool parameters, 5000 arrays deep", { tools: [{ type: "function", function: { name: "f", parameters: { a: "__deep__" } } }] }, nested(5000, "array"), "tools.0.function.parameters"],
    ["a response_format schema, 5000 objects deep", { response_format: { type: "json_schema", json_schema: { name: "s", schema: { a: "__deep__" } } } }, nested(5000, "object"), "response_format.json_schema.schema"],
    ["model_parameters, 100 000 arrays deep", { model_parameters: { a: "__deep__" } }, nested(100_000, "array"), "model_parameters"],
    ["model_parameters, one level too deep (33)", { model_parameters: { a: "__deep__" } }, nested(32, "array"), "model_parameters"],
  ];
  for (const [name, extra, deep, field] of cases) {
    it(name, async () => {
      const before = h.fake.chatRequests().length;
      const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...bodyWith(extra, deep) });
      expect(res.status, res.text).toBe(400);
      const body = JSON.parse(res.text) as { error: { param: string; message: string } };
      expect(body.error.param).toBe(field);
      expect(body.error.message).toContain("nests deeper than 32 levels");
      expect(h.fake.chatRequests().length).toBe(before);
    });
  }

  it("32 levels is fine, and deep values where JSON is not expected (logit_bias) are ordinary type errors", async () => {
    const ok = await raw(h.httpPort, { path: "/v1/chat/completions", ...bodyWith({ model_parameters: { a: "__deep__" } }, nested(31, "array")) });
    expect(ok.status, ok.text).toBe(200);
    const bias = await raw(h.httpPort, { path: "/v1/chat/completions", ...bodyWith({ logit_bias: { "1": "__deep__" } }, nested(5000, "array")) });
    expect(bias.status).toBe(400);
    expect((JSON.parse(bias.text) as { error: { param: string } }).error.param).toBe("logit_bias.1");
    expect(errorLines()).toEqual([]);
  });
});

describe("gRPC: too deep is INVALID_ARGUMENT naming the field, not INTERNAL", () => {
  const call = async (bytes: Uint8Array): Promise<{ code: number; err: ServiceError }> => {
    const s = await session(h.address);
    try {
      const stream = open(s, CREATE);
      stream.end(frame(bytes));
      const r = await reply(stream);
      const code = Number(r.trailers["grpc-status"]);
      const details = r.trailers["grpc-status-details-bin"];
      // decodeStatus wants a ServiceError's metadata; give it what the wire said.
      const err = { code, details: "", metadata: { get: () => (details ? [Buffer.from(String(details), "base64")] : []) } } as unknown as ServiceError;
      return { code, err };
    } finally {
      s.close();
    }
  };

  for (const [field, path] of [
    ["model_parameters", "model_parameters"],
    ["tools", "tools.0.function.parameters"],
    ["response_format", "response_format.json_schema.schema"],
  ] as const) {
    it(`${path}: 5000 levels`, async () => {
      const { code, err } = await call(requestWith(field, structOfDepth(5000)));
      expect(code).toBe(status.INVALID_ARGUMENT);
      const violations = decodeStatus(err).badRequest!.fieldViolations;
      expect(violations.map((v) => v.field)).toEqual([path]);
      expect(violations[0]!.description).toContain("nests deeper than 32 levels");
    });
  }

  it("exactly 32 levels (lists or objects) is served; 33 is refused", async () => {
    expect((await call(requestWith("tools", objectsOfDepth(32)))).code).toBe(status.OK);
    expect((await call(requestWith("model_parameters", structOfDepth(32)))).code).toBe(status.OK);
    expect((await call(requestWith("model_parameters", structOfDepth(33)))).code).toBe(status.INVALID_ARGUMENT);
    expect((await call(requestWith("response_format", objectsOfDepth(33)))).code).toBe(status.INVALID_ARGUMENT);
  });

  it("a malformed message is INVALID_ARGUMENT too, and nothing is logged as an error", async () => {
    const { code, err } = await call(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect(code).toBe(status.INVALID_ARGUMENT);
    expect(decodeStatus(err).errorInfo!.reason).toBe("INVALID_REQUEST");
    expect(errorLines()).toEqual([]);
  });
});
