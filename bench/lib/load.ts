/** The load of a scenario: h2load for unary calls, the stream load generator (bench/loadgen.ts) for streams. */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { HoldResult, Job, StreamsResult, Target } from "../loadgen.js";
import { quiet, type Ctx } from "./context.js";
import { runH2load, type H2loadResult } from "./h2load.js";
import { CpuWindow, start, type Proc } from "./proc.js";
import { alive, baseEnv, FAKE_KEY, failedCalls, type Fake, type Gw } from "./servers.js";
import { CHAT_PATH, GRPC_STREAM_PATH, GRPC_UNARY_PATH, grpcRequestBody, jsonRequestBody } from "./wire.js";

/** One unary run's figures (h2load's) and the failed calls the gateway logged. */
export type UnaryRun = H2loadResult & { errors: number };
/** One stream run's figures (the load generator's) and the CPU of the processes watched. */
export interface StreamRun {
  readonly r: StreamsResult;
  readonly cpu: Record<string, number>;
}

export type UnaryTarget = { readonly kind: "direct"; readonly fake: Fake } | { readonly kind: "grpc"; readonly gw: Gw; readonly fake: Fake } | { readonly kind: "http"; readonly gw: Gw; readonly fake: Fake };

export async function unary(ctx: Ctx, target: UnaryTarget, concurrency: number, opts: { warmupS?: number; durationS?: number; requests?: number } = {}): Promise<H2loadResult & { errors: number }> {
  const grpc = target.kind === "grpc";
  const port = target.kind === "direct" ? target.fake.port : grpc ? target.gw.grpcPort : target.gw.httpPort!;
  const peers = target.kind === "direct" ? [target.fake.proc] : [target.gw.proc, target.fake.proc];
  const before = target.kind === "direct" ? 0 : failedCalls(target.gw);
  if (opts.requests === undefined) await quiet(ctx, `unary ${target.kind} c=${concurrency}`);
  const r = await runH2load({
    cpus: ctx.layout.loadgen,
    url: `http://127.0.0.1:${port}${grpc ? GRPC_UNARY_PATH : CHAT_PATH}`,
    bodyFile: grpc ? ctx.grpcBodyFile : ctx.jsonBodyFile,
    headers: grpc ? ["content-type: application/grpc", "te: trailers"] : ["content-type: application/json", `authorization: Bearer ${FAKE_KEY}`],
    h1: !grpc,
    // gRPC: one connection with `concurrency` streams, as one grpc-js channel; HTTP/1.1: a connection per request in flight.
    connections: grpc ? 1 : concurrency,
    streamsPerConnection: grpc ? concurrency : 1,
    warmupS: opts.warmupS ?? ctx.s.unaryWarmS,
    durationS: opts.durationS ?? ctx.s.unaryS,
    requests: opts.requests,
    logFile: join(ctx.work, "h2load.log"),
    peers,
  });
  alive(...peers);
  const errors = r.failures + (target.kind === "direct" ? 0 : failedCalls(target.gw) - before);
  return { ...r, errors };
}

export async function runJob(ctx: Ctx, job: Job, peers: readonly Proc[], onAllOpen?: () => void): Promise<{ result: StreamsResult | HoldResult; cpu: Record<string, number> }> {
  const proc = start("loadgen", process.execPath, [join(ctx.snapshot, "dist/bench/loadgen.js"), JSON.stringify(job)], { cpus: ctx.layout.loadgen, env: baseEnv() });
  let window: CpuWindow | undefined;
  let cpu: Record<string, number> = {};
  let result: StreamsResult | HoldResult | undefined;
  proc.onLine((line) => {
    let msg: { event?: string };
    try {
      msg = JSON.parse(line) as { event?: string };
    } catch {
      return;
    }
    if (msg.event === "measure-start") window = new CpuWindow([proc, ...peers]);
    else if (msg.event === "measure-end" && window !== undefined) cpu = window.end();
    else if (msg.event === "all-open") onAllOpen?.();
    else if (msg.event === "result") result = msg as StreamsResult | HoldResult;
  });
  const bound = (job.mode === "streams" ? job.warmupMs + job.durationMs + job.drainMs : job.timeoutMs) + 15_000;
  const finished = await Promise.race([proc.exited.then(() => true), sleep(bound, undefined, { ref: false }).then(() => false)]);
  if (!finished) {
    await proc.stop(1000);
    throw new Error(`load generator did not finish within ${bound} ms`);
  }
  if (result === undefined) throw new Error(`load generator gave no result: ${proc.stderr().slice(-2000)}`);
  return { result, cpu };
}

export function grpcTarget(gw: Gw, sessions = 1): Target {
  return { kind: "grpc", port: gw.grpcPort, path: GRPC_STREAM_PATH, bodyBase64: grpcRequestBody().toString("base64"), sessions };
}

export function sseTarget(port: number): Target {
  return { kind: "sse", port, path: CHAT_PATH, body: jsonRequestBody(true), headers: { authorization: `Bearer ${FAKE_KEY}` } };
}

export async function streams(ctx: Ctx, target: Target, peers: readonly Proc[], concurrency: number, warmupMs: number, durationMs: number, expectMessages: number): Promise<{ r: StreamsResult; cpu: Record<string, number> }> {
  if (peers.length > 0) await quiet(ctx, `${target.kind} streams c=${concurrency}`);
  const { result, cpu } = await runJob(ctx, { mode: "streams", target, concurrency, warmupMs, durationMs, expectMessages, drainMs: 30_000 }, peers);
  alive(...peers);
  return { r: result as StreamsResult, cpu };
}

/** JIT warm-up: unary and streaming calls before anything is measured. */
export async function warmGateway(ctx: Ctx, gw: Gw, fake: Fake, streamTokens: number): Promise<void> {
  await unary(ctx, { kind: "grpc", gw, fake }, 16, { warmupS: 0.5, durationS: ctx.s.gatewayWarmS });
  if (gw.httpPort !== undefined) await unary(ctx, { kind: "http", gw, fake }, 16, { warmupS: 0.5, durationS: 1 });
  await streams(ctx, grpcTarget(gw), [], 8, 0, 1000, streamTokens + 2);
}

export async function ordered<A, B>(gatewayFirst: boolean, direct: () => Promise<A>, gateway: () => Promise<B>): Promise<[A, B]> {
  if (gatewayFirst) {
    const g = await gateway();
    return [await direct(), g];
  }
  const d = await direct();
  return [d, await gateway()];
}
