/**
 * A JSON Schema's key order reaches Cerebras as the caller wrote it. With strict
 * constrained decoding the model writes properties in schema order, so a
 * "reasoning before answer" schema must not arrive as {answer, reasoning}. Over gRPC the
 * schema goes as JSON text (parameters_json / schema_json), spliced into the upstream body
 * byte for byte; the HTTP shim keeps the caller's own bytes (integer-like keys included,
 * which a JavaScript object would reorder). Asserted on the bytes the fake received.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayClient } from "../../src/client/gateway-client.js";
import { create, decodeStatus, rejection, userRequest } from "../helpers/harness.js";
import { raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Spacing and order exactly as a caller might type it: all of it must survive. */
const PARAMETERS = '{"type": "object", "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}}, "required": ["reasoning", "answer"], "additionalProperties": false}';
const NUMERIC = '{"type":"object","properties":{"2":{"type":"string"},"1":{"type":"string"}},"required":["2","1"],"additionalProperties":false}';

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

const lastRaw = (): string => h.fake.chatRequests().at(-1)!.rawBody;

describe("JSON Schema key order", () => {
  it("from Python (grpcio): parameters_json and schema_json arrive upstream byte for byte", async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile("/usr/bin/python3", [join(ROOT, "test/python/schema_order_client.py"), h.address, PARAMETERS, NUMERIC], { timeout: 20_000 }, (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : 1, stdout, stderr }),
      );
    });
    expect(code, stderr).toBe(0);
    expect(lastRaw()).toContain(`"parameters":${PARAMETERS}`);
    expect(lastRaw()).toContain(`"schema":${NUMERIC}`);
    // The fake writes the arguments in the order the schema lists its properties, as a strict model would.
    expect((JSON.parse(stdout) as { arguments: string }).arguments).toMatch(/^\{"reasoning":.*,"answer":/);
  });

  it("HTTP: the caller's bytes are kept, integer-like keys included ({\"2\", \"1\"} stays in that order)", async () => {
    const body = `{"model":"gpt-oss-120b","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":${NUMERIC}}}],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":${PARAMETERS}}}}`;
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", body, headers: { "content-type": "application/json" } });
    expect(res.status, res.text).toBe(200);
    expect(lastRaw()).toContain(`"parameters":${NUMERIC}`);
    expect(lastRaw()).toContain(`"schema":${PARAMETERS}`);
  });

  it("HTTP: legacy functions' parameters too", async () => {
    const body = `{"model":"gpt-oss-120b","messages":[{"role":"user","content":"x"}],"functions":[{"name":"f","parameters":${NUMERIC}}]}`;
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", body, headers: { "content-type": "application/json" } });
    expect(res.status, res.text).toBe(200);
    expect(lastRaw()).toContain(`"parameters":${NUMERIC}`);
  });

  it("GatewayClient sends a Struct's insertion order as JSON text, and parameters_json as given", async () => {
    const client = new GatewayClient({ target: h.address });
    try {
      const properties = { reasoning: { type: "string" }, answer: { type: "string" } };
      await client.createChatCompletion({ ...userRequest("x"), tools: [{ function: { name: "f", parameters: { type: "object", properties } } }] });
      expect(lastRaw()).toContain('"parameters":{"type":"object","properties":{"reasoning":{"type":"string"},"answer":{"type":"string"}}}');
      await client.createChatCompletion({ ...userRequest("x"), responseFormat: { format: { $case: "jsonSchema", value: { name: "s", schemaJson: NUMERIC } } } });
      expect(lastRaw()).toContain(`"schema":${NUMERIC}`);
    } finally {
      client.close();
    }
  });

  it("parameters_json, if set, wins over parameters", async () => {
    await create(h.chat, userRequest("x", { tools: [{ function: { name: "f", parameters: { type: "object" }, parametersJson: NUMERIC } }] }));
    expect(lastRaw()).toContain(`"parameters":${NUMERIC}`);
  });

  it.each<[string, string, string]>([
    ["not JSON", "{type: object}", "is not valid JSON"],
    ["an array", "[1]", "must be a JSON object"],
    ["too deep", `${'{"a":'.repeat(40)}1${"}".repeat(40)}`, "nests deeper than 32 levels"],
  ])("parameters_json %s → INVALID_ARGUMENT naming it, nothing sent upstream", async (_name, text, description) => {
    const before = h.fake.chatRequests().length;
    const err = (await rejection(create(h.chat, userRequest("x", { tools: [{ function: { name: "f", parametersJson: text } }] })))) as ServiceError;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    const violations = decodeStatus(err).badRequest!.fieldViolations;
    expect(violations.map((v) => v.field)).toEqual(["tools.0.function.parameters_json"]);
    expect(violations[0]!.description).toContain(description);
    expect(h.fake.chatRequests().length).toBe(before);
  });
});
