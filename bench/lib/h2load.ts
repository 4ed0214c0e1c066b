/**
 * Unary load from h2load (Debian: nghttp2-client): native, so the load generator costs
 * little next to the processes it measures. gRPC is plain HTTP/2 to it: a POST with a
 * pre-encoded, length-prefixed body and `content-type: application/grpc`. Latencies come
 * from its per-request log (measured phase only; warm-up requests are not logged).
 *
 * h2load cannot see grpc-status (it lives in trailers, and every gRPC reply is HTTP 200),
 * so gRPC runs are checked by the caller: a preflight call, plus the gateway's own log of
 * failed calls over the run.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { CpuWindow, start, type Proc } from "./proc.js";
import { summarise, type Summary } from "./stats.js";

export interface H2loadOptions {
  readonly cpus: string | undefined;
  readonly url: string;
  readonly bodyFile: string;
  readonly headers: readonly string[];
  /** HTTP/1.1 (one request in flight per connection) instead of h2c. */
  readonly h1: boolean;
  readonly connections: number;
  /** Concurrent streams per connection (h2c only). */
  readonly streamsPerConnection: number;
  readonly warmupS: number;
  readonly durationS: number;
  /** Instead of warm-up + duration: exactly this many requests (profiling runs). */
  readonly requests?: number | undefined;
  readonly logFile: string;
  /** Other processes whose CPU use is sampled over the measured phase. */
  readonly peers: readonly Proc[];
}

export interface H2loadResult {
  /** Successful requests per second over the measured phase. */
  readonly rps: number;
  readonly requests: number;
  /** Failed, errored or timed-out requests, plus replies that were not HTTP 200. */
  readonly failures: number;
  /** Latency in ms. */
  readonly latency: Summary;
  /** % of one core over the measured phase, by process name (h2load's own as "loadgen"). */
  readonly cpu: Record<string, number>;
}

export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  rmSync(o.logFile, { force: true }); // h2load appends
  const args = [
    ...(o.h1 ? ["--h1"] : []),
    "-t", "1",
    "-c", String(o.connections),
    "-m", String(o.h1 ? 1 : o.streamsPerConnection),
    ...(o.requests !== undefined ? ["-n", String(o.requests)] : ["--warm-up-time", `${Math.round(o.warmupS * 1000)}ms`, "-D", `${Math.round(o.durationS * 1000)}ms`]),
    "-d", o.bodyFile,
    ...o.headers.flatMap((h) => ["-H", h]),
    `--log-file=${o.logFile}`,
    o.url,
  ];
  const proc = start("loadgen", "h2load", args, { cpus: o.cpus, env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } });
  let out = "";
  proc.onLine((line) => (out += `${line}\n`));

  // Sample CPU over the measured phase, stopping a little before h2load exits.
  let cpu: Record<string, number> = {};
  const windowTimer = setTimeout(() => {
    if (o.requests !== undefined) return;
    const window = new CpuWindow([proc, ...o.peers]);
    const endTimer = setTimeout(() => (cpu = window.end()), Math.max(200, o.durationS * 1000 - 250));
    void proc.exited.then(() => clearTimeout(endTimer));
  }, o.warmupS * 1000 + 100);

  // A counted run (profiling) is bounded by its count: at least 100 requests a second.
  const bound = (o.requests !== undefined ? o.requests * 10 : (o.warmupS + o.durationS) * 1000) + 60_000;
  const timedOut = await Promise.race([proc.exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), bound).unref())]);
  clearTimeout(windowTimer);
  if (timedOut) {
    await proc.stop(1000);
    throw new Error(`h2load did not finish within ${bound} ms`);
  }
  if ((await proc.exited) !== 0) throw new Error(`h2load failed: ${proc.stderr().slice(-1000)}\n${out.slice(-1000)}`);

  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  if (m === null || !existsSync(o.logFile)) throw new Error(`unexpected h2load output:\n${out}`);
  const latencies: number[] = [];
  let non200 = 0;
  for (const line of readFileSync(o.logFile, "latin1").split("\n")) {
    if (line === "") continue;
    const [, status, us] = line.split("\t");
    // 0: in flight when the warm-up ended (h2load logs it without a status): not counted.
    if (status === "0") continue;
    if (status !== "200") non200++;
    else latencies.push(Number(us) / 1000);
  }
  const finished = /finished in ([\d.]+)(m?s),/.exec(out);
  const elapsedS = finished === null ? o.durationS : Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1);
  return {
    rps: latencies.length / (o.requests !== undefined ? elapsedS : o.durationS),
    requests: latencies.length,
    failures: Number(m[5]) + Number(m[6]) + Number(m[7]) + non200,
    latency: summarise(latencies),
    cpu,
  };
}
