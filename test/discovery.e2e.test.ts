/**
 * What grpcurl and `buf curl` rely on: server reflection (v1 and v1alpha) serving the
 * original descriptor bytes with their imports, and grpc.health.v1.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection.js";
import { startHarness, type Harness } from "./helpers/harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

type Client = v1.ServerReflectionClient | v1alpha.ServerReflectionClient;

/** Sends one reflection request on a fresh stream and returns the one response. */
function reflect(client: Client, messageRequest: v1.ServerReflectionRequest["messageRequest"]): Promise<v1.ServerReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = client.serverReflectionInfo();
    call.on("data", (r: v1.ServerReflectionResponse) => {
      resolve(r);
      call.end();
    });
    call.on("error", reject);
    call.write({ host: "", messageRequest });
  });
}

describe.each([
  ["v1", () => new v1.ServerReflectionClient(h.address, credentials.createInsecure())],
  ["v1alpha", () => new v1alpha.ServerReflectionClient(h.address, credentials.createInsecure())],
])("server reflection %s", (_, makeClient) => {
  it("lists the gateway's services with health and reflection", async () => {
    const client = makeClient();
    const r = await reflect(client, { $case: "listServices", value: "" });
    client.close();
    expect(r.messageResponse?.$case).toBe("listServicesResponse");
    const names = r.messageResponse?.$case === "listServicesResponse" ? r.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(
      expect.arrayContaining(["aigateway.v1.ChatService", "aigateway.v1.ModelService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]),
    );
  });

  it("resolves a request message to its file plus every file it imports, as valid descriptors", async () => {
    const client = makeClient();
    const r = await reflect(client, { $case: "fileContainingSymbol", value: "aigateway.v1.ChatCompletionRequest" });
    client.close();
    if (r.messageResponse?.$case !== "fileDescriptorResponse") throw new Error(`unexpected ${r.messageResponse?.$case}`);
    const files = r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    expect(files[0]!.name).toBe("aigateway/v1/chat.proto");
    expect(files[0]!.dependency).toEqual(["google/api/field_behavior.proto", "google/protobuf/struct.proto"]);
    // Transitively too: field_behavior.proto imports descriptor.proto.
    expect(files.map((f) => f.name)).toEqual(expect.arrayContaining(["google/protobuf/struct.proto", "google/api/field_behavior.proto", "google/protobuf/descriptor.proto"]));
    expect(files[0]!.service[0]!.method.map((m) => m.name)).toEqual(["CreateChatCompletion", "StreamChatCompletion"]);
  });

  it("resolves methods, nested names and google.rpc error details (grpcurl decodes details through them)", async () => {
    const client = makeClient();
    for (const symbol of ["aigateway.v1.ChatService.StreamChatCompletion", "google.rpc.ErrorInfo", "google.rpc.BadRequest.FieldViolation"]) {
      const r = await reflect(client, { $case: "fileContainingSymbol", value: symbol });
      expect(r.messageResponse?.$case, symbol).toBe("fileDescriptorResponse");
    }
    client.close();
  });

  it("answers NOT_FOUND in-band for an unknown symbol", async () => {
    const client = makeClient();
    const r = await reflect(client, { $case: "fileContainingSymbol", value: "nope.Nothing" });
    client.close();
    expect(r.messageResponse).toEqual({ $case: "errorResponse", value: { errorCode: 5, errorMessage: "symbol nope.Nothing not found" } });
  });
});

describe("grpc.health.v1.Health", () => {
  it("reports SERVING for the server and each service, NOT_FOUND for unknown names", async () => {
    const health = new HealthClient(h.address, credentials.createInsecure());
    const check = (service: string) =>
      new Promise<number>((resolve, reject) => health.check({ service }, (err, r) => (err ? reject(err) : resolve(r!.status))));
    expect(await check("")).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(await check("aigateway.v1.ChatService")).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(await check("aigateway.v1.ModelService")).toBe(HealthCheckResponse_ServingStatus.SERVING);
    await expect(check("no.Such")).rejects.toMatchObject({ code: 5 });
    health.close();
  });
});

describe("buf curl (grpc-go's reflection client, as people debug with it)", () => {
  const bufBin = fileURLToPath(new URL("../node_modules/.bin/buf", import.meta.url));
  const curl = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(bufBin, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 10_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it("lists services through reflection", async () => {
    const r = await curl(["--list-services", `http://${h.address}`]);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")).toEqual(expect.arrayContaining(["aigateway.v1.ChatService", "aigateway.v1.ModelService"]));
  });

  it("calls CreateChatCompletion with a JSON body and no proto files", async () => {
    const body = JSON.stringify({ model: "gpt-oss-120b", messages: [{ role: "ROLE_USER", content: "hi from buf" }] });
    const r = await curl(["-d", body, `http://${h.address}/aigateway.v1.ChatService/CreateChatCompletion`]);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as { choices: Array<{ message: { content: string } }>; usage: { totalTokens: number } };
    expect(res.choices[0]!.message.content).toBe("Echo: hi from buf");
    expect(res.usage.totalTokens).toBeGreaterThan(0);
  });

  it("streams StreamChatCompletion as one JSON document per chunk", async () => {
    const body = JSON.stringify({ messages: [{ role: "ROLE_USER", content: "stream via buf" }] });
    const r = await curl(["-d", body, `http://${h.address}/aigateway.v1.ChatService/StreamChatCompletion`]);
    expect(r.code).toBe(0);
    const docs = r.stdout.trim().split(/\n(?=\{)/).map((d) => JSON.parse(d) as { choices: Array<{ delta?: { content?: string }; finishReason?: string }> });
    expect(docs.map((d) => d.choices[0]?.delta?.content ?? "").join("")).toBe("Echo: stream via buf");
    expect(docs.at(-1)!.choices[0]!.finishReason).toBe("FINISH_REASON_STOP");
  });

  it("shows an error's code and ErrorInfo details, exiting with code×8", async () => {
    const r = await curl(["-d", JSON.stringify({ messages: [] }), `http://${h.address}/aigateway.v1.ChatService/CreateChatCompletion`]);
    expect(r.code).toBe(3 * 8);
    const err = JSON.parse(r.stderr) as { code: string; message: string; details: Array<{ type: string }> };
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toBe("invalid request: messages: at least one message is required");
    expect(err.details.map((d) => d.type)).toEqual(["google.rpc.ErrorInfo", "google.rpc.BadRequest"]);
  });
});
