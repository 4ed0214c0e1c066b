/**
 * Reflection is open to anyone (grpcurl and buf curl need it), so it must cost the
 * gateway a bounded amount whatever a client does: answers are written with
 * backpressure (a client that sends and never reads stops being read from), and
 * requests are never echoed back beyond a small size.
 *
 * The gateway runs in this process; memory is heap + Buffers after a real GC.
 */
import type { ClientHttp2Session, ClientHttp2Stream } from "node:http2";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckRequest } from "../../gen/grpc/health/v1/health.js";
import * as reflection from "../../gen/grpc/reflection/v1/reflection.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { frame, open, reply, session } from "../helpers/raw-grpc.js";
import { gc } from "../helpers/in-process.js";

const MiB = 1024 * 1024;
const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/** Heap and Buffers after a full GC: where answers (and the requests they echo) would pile up. */
const memory = (): number => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Whether `stream` drained within `ms` (false: the peer stopped taking data). */
function drainedWithin(stream: ClientHttp2Stream, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), ms);
    const done = (drained: boolean): void => {
      clearTimeout(timer);
      stream.off("drain", onDrain);
      resolve(drained);
    };
    const onDrain = (): void => done(true);
    stream.on("drain", onDrain);
  });
}

/** A health check on `s`, answered: everything sent before it on the connection has been taken in. */
async function healthCheck(s: ClientHttp2Session): Promise<void> {
  const call = open(s, "/grpc.health.v1.Health/Check");
  call.end(frame(HealthCheckRequest.encode({ service: "" }).finish()));
  const r = await reply(call);
  expect(Number(r.trailers["grpc-status"])).toBe(0);
}

const closed = (s: ClientHttp2Session): Promise<void> =>
  new Promise((resolve) => {
    s.once("close", () => resolve());
    s.destroy();
  });

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { GATEWAY_API_KEYS: "svc=reflection-test-key-0123" } });
});
afterAll(async () => {
  await h.close();
});

describe("a client that sends reflection requests and never reads", () => {
  it("stops being read from: the gateway holds a few answers, not thousands", { timeout: 60_000 }, async () => {
    const s = await session(h.address);
    try {
      const before = memory();
      const call = open(s, REFLECTION);
      call.pause(); // never read
      call.on("error", () => {});
      // 30 000 requests of ~1 KB (a host just under the echo limit, so every answer carries it):
      // answering them all unread would hold ~40 MB. One Buffer is written again and again, so
      // the client itself holds one.
      const request = frame(reflection.ServerReflectionRequest.encode({ host: "h".repeat(1000), messageRequest: { $case: "listServices", value: "" } }).finish());
      const total = 30_000;
      let sent = 0;
      for (; sent < total; sent++) {
        if (call.write(request)) continue;
        // The gateway stops reading once its answers back up; the old one read on. The bound only
        // ends the old behaviour's run: the new one holds the same however long this waits.
        if (!(await drainedWithin(call, 2000))) break;
      }
      await healthCheck(s);
      const grown = memory() - before;
      expect(grown).toBeLessThan(8 * MiB);
      expect(sent).toBeLessThan(total); // the client was held back
    } finally {
      await closed(s);
    }
  });

  it("a reader gets every answer, in order, however many it asks for", async () => {
    const client = new reflection.ServerReflectionClient(h.address, credentials.createInsecure());
    try {
      const call = client.serverReflectionInfo();
      const answers: reflection.ServerReflectionResponse[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on("data", (a: reflection.ServerReflectionResponse) => answers.push(a));
        call.on("end", resolve);
        call.on("error", reject);
      });
      for (let i = 0; i < 200; i++) call.write({ host: `h${i}`, messageRequest: { $case: "fileContainingSymbol", value: "aigateway.v1.ChatService" } });
      call.end();
      await done;
      expect(answers).toHaveLength(200);
      expect(answers.map((a) => a.validHost)).toEqual(Array.from({ length: 200 }, (_, i) => `h${i}`));
      expect(answers.every((a) => a.messageResponse?.$case === "fileDescriptorResponse")).toBe(true);
    } finally {
      client.close();
    }
  });
});

describe("requests are never echoed beyond a small size", () => {
  it("a host or symbol over 1024 characters gets a small INVALID_ARGUMENT answer, not its own bytes back (a larger message is refused whole: reflection-stalled-request.e2e.test.ts)", async () => {
    const client = new reflection.ServerReflectionClient(h.address, credentials.createInsecure());
    try {
      const call = client.serverReflectionInfo();
      const answers: reflection.ServerReflectionResponse[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on("data", (a: reflection.ServerReflectionResponse) => answers.push(a));
        call.on("end", resolve);
        call.on("error", reject);
      });
      call.write({ host: "h".repeat(7000), messageRequest: { $case: "listServices", value: "" } }); // under the 8 KiB cap on open services' messages
      call.write({ host: "", messageRequest: { $case: "fileContainingSymbol", value: "s".repeat(7000) } });
      call.write({ host: "", messageRequest: { $case: "listServices", value: "" } });
      call.end();
      await done;
      expect(answers).toHaveLength(3);
      for (const a of answers.slice(0, 2)) {
        expect(a.messageResponse).toMatchObject({ $case: "errorResponse", value: { errorCode: 3 } });
        expect(reflection.ServerReflectionResponse.encode(a).finish().length).toBeLessThan(4096);
      }
      expect(answers[2]!.messageResponse?.$case).toBe("listServicesResponse");
    } finally {
      client.close();
    }
  });
});
