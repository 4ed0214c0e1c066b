/**
 * The bench's Node load generator for streams (unary load comes from h2load). A process
 * of its own, started by run.ts with one JSON job as its argument; it prints JSON lines:
 * `{"event":"measure-start"}` / `{"event":"measure-end"}` around the measured window (so
 * the orchestrator samples the other processes' CPU over the same window),
 * `{"event":"all-open"}` in hold mode, and last `{"event":"result",…}`.
 *
 * Its clients (bench/lib/stream-clients.ts) never decode a reply: gRPC messages are
 * counted by their length prefixes and SSE events by blank lines.
 *
 * Every wait is bounded: a job ends by its own deadline, whatever the servers do.
 */
import { summarise, type Summary } from "./lib/stats.js";
import { clientFor, type OnMessages, type StreamOutcome, type Target } from "./lib/stream-clients.js";

export type { Target } from "./lib/stream-clients.js";

export type Job =
  | {
      readonly mode: "streams";
      readonly target: Target;
      readonly concurrency: number;
      readonly warmupMs: number;
      readonly durationMs: number;
      /** Messages (gRPC) or events (SSE) a complete stream has. */
      readonly expectMessages: number;
      /** After the window: how long in-flight streams get to finish. */
      readonly drainMs: number;
    }
  | {
      readonly mode: "hold";
      readonly target: Target;
      readonly streams: number;
      readonly expectMessages: number;
      /** Bound on the whole job. */
      readonly timeoutMs: number;
    };

export interface StreamsResult {
  readonly event: "result";
  readonly mode: "streams";
  /** Streams started inside the window that completed correctly. */
  readonly streams: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  /** ms from request start to the first complete message. */
  readonly ttfm: Summary;
  /** ms from request start to the end of the stream (trailers / end of body). */
  readonly total: Summary;
  /** Messages that arrived inside the window, all streams. */
  readonly windowMessages: number;
  readonly windowMs: number;
  /** Messages received over the whole job, warm-up and drain included. */
  readonly totalMessages: number;
}

export interface HoldResult {
  readonly event: "result";
  readonly mode: "hold";
  readonly opened: number;
  readonly completed: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly ttfm: Summary;
  readonly total: Summary;
  /** ms from the first request to the last stream's first message. */
  readonly allOpenMs: number;
}


function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve("timeout"), ms);
    void p.then((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

async function runStreams(job: Extract<Job, { mode: "streams" }>): Promise<StreamsResult> {
  const client = clientFor(job.target, job.expectMessages);
  const t0 = performance.now();
  const windowStart = t0 + job.warmupMs;
  const windowEnd = windowStart + job.durationMs;
  let windowMessages = 0;
  let totalMessages = 0;
  const onMessages: OnMessages = (n, now) => {
    totalMessages += n;
    if (now >= windowStart && now < windowEnd) windowMessages += n;
  };
  // Each marker once: by its timer, or (end) when the workers finish first, which a
  // stream ending right at the window's end can make them do.
  let started = false;
  let ended = false;
  const markStart = (): void => {
    if (!started) emit({ event: "measure-start" });
    started = true;
  };
  const markEnd = (): void => {
    markStart();
    if (!ended) emit({ event: "measure-end" });
    ended = true;
  };
  const startTimer = setTimeout(markStart, job.warmupMs);
  const endTimer = setTimeout(markEnd, job.warmupMs + job.durationMs);

  const recorded: StreamOutcome[] = [];
  const worker = async (): Promise<void> => {
    while (performance.now() < windowEnd) {
      const r = await client.stream(onMessages);
      if (r.start >= windowStart && r.start < windowEnd) recorded.push(r);
      // A failing target must not turn this loop into a busy spin.
      if (r.error !== undefined) await new Promise((res) => setTimeout(res, 10));
    }
  };
  const workers = Promise.all(Array.from({ length: job.concurrency }, worker));
  const done = await withTimeout(workers, job.warmupMs + job.durationMs + job.drainMs);
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  markEnd();
  client.close();

  const ok = recorded.filter((r) => r.error === undefined);
  const bad = recorded.filter((r) => r.error !== undefined);
  return {
    event: "result",
    mode: "streams",
    streams: ok.length,
    errors: bad.length + (done === "timeout" ? 1 : 0),
    firstError: bad[0]?.error ?? (done === "timeout" ? "streams still open at the drain deadline" : undefined),
    ttfm: summarise(ok.map((r) => r.first - r.start)),
    total: summarise(ok.map((r) => r.end - r.start)),
    windowMessages,
    windowMs: job.durationMs,
    totalMessages,
  };
}

async function runHold(job: Extract<Job, { mode: "hold" }>): Promise<HoldResult> {
  const client = clientFor(job.target, job.expectMessages);
  const t0 = performance.now();
  let open = 0;
  let allOpenMs = Number.NaN;
  const firsts = new Set<number>();
  const outcomes = Array.from({ length: job.streams }, (_, i) =>
    client.stream((_n, now) => {
      if (firsts.has(i)) return;
      firsts.add(i);
      if (++open === job.streams) {
        allOpenMs = now - t0;
        emit({ event: "all-open", ms: allOpenMs });
      }
    }),
  );
  const all = await withTimeout(Promise.all(outcomes), job.timeoutMs);
  client.close();
  if (all === "timeout") {
    return {
      event: "result",
      mode: "hold",
      opened: open,
      completed: 0,
      errors: job.streams,
      firstError: `not finished within ${job.timeoutMs} ms`,
      ttfm: summarise([]),
      total: summarise([]),
      allOpenMs,
    };
  }
  const ok = all.filter((r) => r.error === undefined);
  return {
    event: "result",
    mode: "hold",
    opened: open,
    completed: ok.length,
    errors: all.length - ok.length,
    firstError: all.find((r) => r.error !== undefined)?.error,
    ttfm: summarise(ok.map((r) => r.first - r.start)),
    total: summarise(ok.map((r) => r.end - r.start)),
    allOpenMs,
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as Job;
  const result = job.mode === "streams" ? await runStreams(job) : await runHold(job);
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`loadgen: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
