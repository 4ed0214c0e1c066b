/**
 * A short, bounded soak: mixed unary / streaming / cancelled / faulted traffic against a
 * gateway and a fake upstream on loopback, then a report of requests, errors by code,
 * RSS and open sockets at start and end. Not part of `npm test`.
 *
 *   npm run soak -- [--seconds 20] [--concurrency 16]
 *
 * Everything runs in this one process, so a leak in the gateway (or the fake) shows up
 * in the process's own RSS and socket count.
 */
import { readdirSync, readlinkSync } from "node:fs";
import { parseArgs } from "node:util";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ChatCompletionRequest, ChatServiceClient, Role } from "../gen/aigateway/v1/chat.js";
import { loadConfig } from "../src/config.js";
import { cerebrasErrors, type Fault } from "../src/fake-upstream/faults.js";
import { startFakeUpstream } from "../src/fake-upstream/server.js";
import { startGateway } from "../src/gateway.js";
import { createLogger, type LogLevel } from "../src/log.js";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "20" }, concurrency: { type: "string", default: "16" } } });
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
if (!(seconds > 0 && seconds <= 3600) || !(concurrency > 0 && concurrency <= 1000)) {
  process.stderr.write("usage: soak [--seconds 1-3600] [--concurrency 1-1000]\n");
  process.exit(2);
}

const KEY = "soak-key";
const CONNECTIONS = 8;
const FAULTS: Fault[] = [
  cerebrasErrors.serverError(503),
  cerebrasErrors.queueExceeded(),
  cerebrasErrors.tokenQuotaPerMinute(0.05),
  { kind: "reset-before-headers" },
  { kind: "cut-stream", afterChunks: 2 },
  { kind: "error-frame", afterChunks: 1 },
  { kind: "eof-without-finish", afterChunks: 2 },
  { kind: "garbage", afterChunks: 1 },
];

function openSockets(): number {
  let n = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) n++;
    } catch {
      // the fd closed while we looked
    }
  }
  return n;
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function snapshot(): { rss: number; heap: number; external: number; sockets: number } {
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external, sockets: openSockets() };
}

async function main(): Promise<void> {
  const fake = await startFakeUpstream({ apiKey: KEY, tokenDelayMs: 1 });
  const config = loadConfig({ CEREBRAS_API_KEY: KEY, CEREBRAS_BASE_URL: fake.url, GRPC_PORT: "0", LOG_LEVEL: "silent" });
  // SOAK_LOG_LEVEL=error shows the log lines of calls that failed INTERNAL (should be none).
  const logLevel = (process.env["SOAK_LOG_LEVEL"] ?? "silent") as LogLevel;
  const gateway = await startGateway(config, createLogger(logLevel));
  // Several connections, as several caller instances would have: Node's HTTP/2 server
  // closes a connection whose peer resets more than 33 streams/s after a burst of 1000
  // (rapid-reset protection, streamResetRate), and this mix cancels a quarter of its streams.
  const clients = Array.from(
    { length: CONNECTIONS },
    () => new ChatServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  const request = (i: number) =>
    ChatCompletionRequest.fromPartial({ messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: `soak ${i}` } }] });

  const byCode = new Map<string, number>();
  const internal = new Map<string, number>();
  let requests = 0;
  const count = (code: number): void => {
    const name = status[code] ?? String(code);
    byCode.set(name, (byCode.get(name) ?? 0) + 1);
  };
  const run = (until: number): Promise<unknown> =>
    Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        for (let i = worker; Date.now() < until; i += concurrency) {
          await one(i);
          requests++;
        }
      }),
    );

  // Warm up at full concurrency (JIT, pools, keep-alive sockets), then take the baseline.
  await run(Date.now() + 1000);
  await quiet();
  const start = snapshot();
  byCode.clear();
  requests = 0;
  await run(Date.now() + seconds * 1000);
  await quiet();
  const finish = snapshot();

  console.log(`soak: ${seconds}s, concurrency ${concurrency}, ${requests} calls (${(requests / seconds).toFixed(0)}/s)`);
  console.log(`by code: ${[...byCode].map(([c, n]) => `${c} ${n}`).join(", ")}`);
  if (internal.size > 0) console.log(`INTERNAL details: ${JSON.stringify([...internal])}`);
  console.log(`upstream requests still open: ${fake.openRequests()}`);
  console.log(`RSS: ${mb(start.rss)} → ${mb(finish.rss)}; heap used: ${mb(start.heap)} → ${mb(finish.heap)}; external: ${mb(start.external)} → ${mb(finish.external)}; open sockets: ${start.sockets} → ${finish.sockets}`);
  console.log("(sockets include idle keep-alive connections between the gateway and the fake, both ends)");

  for (const c of clients) c.close();
  await gateway.close(1000);
  await fake.close();

  /** Waits for in-flight upstream requests to close (bounded), then collects garbage if allowed. */
  async function quiet(): Promise<void> {
    for (let i = 0; i < 100 && fake.openRequests() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    (globalThis as { gc?: () => void }).gc?.();
  }

  function one(i: number): Promise<void> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (code: number): void => {
        if (settled) return;
        settled = true;
        count(code);
        resolve();
      };
      const kind = i % 4;
      const client = clients[i % CONNECTIONS]!;
      if (i % 5 === 0) fake.failNext(FAULTS[i % FAULTS.length]!);
      const deadline = Date.now() + 5000;
      if (kind === 0) {
        client.createChatCompletion(request(i), new Metadata(), { deadline }, (err: ServiceError | null) => settle(err ? err.code : status.OK));
        return;
      }
      const call = client.streamChatCompletion(request(i), { deadline });
      let chunks = 0;
      call.on("data", () => {
        // kind 3: the consumer walks away mid-stream.
        if (++chunks === 2 && kind === 3) call.cancel();
      });
      call.on("end", () => settle(status.OK));
      call.on("error", (err: ServiceError) => {
        if (err.code === status.INTERNAL) internal.set(err.details, (internal.get(err.details) ?? 0) + 1);
        settle(err.code);
      });
    });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
