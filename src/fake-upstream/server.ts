/**
 * A fake Cerebras: a real HTTP server on 127.0.0.1 that speaks the Cerebras wire format
 * as CEREBRAS_API.md describes it (flat error bodies, usage and time_info in the last
 * chunk together with finish_reason, no `[DONE]` unless asked, 9-character tool-call
 * ids, rate-limit headers). It is the embedded default of `npm start` without an API
 * key, the upstream of every test, and the baseline of the benchmarks.
 *
 * It imports nothing from the gateway: it is an independent stand-in, so tests that pass
 * against it say something about talking to the real thing.
 */
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { FAKE_MODELS, modelJson, publicModelJson, type FakeModel } from "./catalog.js";
import { Gate, type Fault } from "./faults.js";
import { FakeLimiter, type FakeRateLimits } from "./rate-limits.js";
import { planReply, tokenLogprob, type ReplyPlan } from "./replies.js";
import { checkChatRequest } from "./rules.js";

export interface FakeUpstreamOptions {
  /** When set, requests must carry `Authorization: Bearer <apiKey>` (else 401 wrong_api_key). */
  readonly apiKey?: string | undefined;
  /** Pause between streamed chunks, in ms (0: as fast as the socket takes them). */
  readonly tokenDelayMs?: number;
  /** End streams with `data: [DONE]` as OpenAI does (Cerebras usually does not). */
  readonly sendDone?: boolean;
  /** Send an empty delta (`{"delta":{}}`) before each choice's finish chunk, as Cerebras was recorded doing. */
  readonly emptyDeltas?: boolean;
  /** Stream tool-call arguments in fragments (gpt-oss style) or whole (qwen style). */
  readonly toolCallStyle?: "fragments" | "whole";
  /** Every text reply is exactly this many tokens (benchmarks). */
  readonly fixedTokens?: number;
  /** With fixedTokens: characters per token (large values make large chunks). */
  readonly fixedTokenSize?: number;
  /** Records kept in `requests` (oldest dropped first), so a long-running fake stays small. */
  readonly maxRecorded?: number;
  readonly models?: readonly FakeModel[];
  readonly port?: number;
  /**
   * The organisation's limits per model, enforced as Cerebras does (rate-limits.ts): 429
   * request_quota_exceeded / token_quota_exceeded, and the buckets' x-ratelimit-* headers
   * on every chat response. Models without limits get fixed, generous headers.
   */
  readonly rateLimits?: FakeRateLimits;
}

/** What the fake saw of one request, for tests to assert on. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body, if any. */
  readonly body: unknown;
  /** The body as it came, byte for byte (UTF-8): what key order, spacing and numbers really were. */
  readonly rawBody: string;
  /** performance.now() when its body had arrived (for tests that bound what happened after). */
  readonly receivedAt: number;
  /** Stream chunks written so far. */
  chunksSent: number;
  /** "aborted": the client closed the connection before the fake finished answering. */
  outcome: "pending" | "completed" | "aborted";
  /** Settles when the request is over, with its outcome. */
  readonly settled: Promise<"completed" | "aborted">;
}

export interface FakeUpstream {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly requests: readonly RecordedRequest[];
  /** Chat-completion requests only. */
  chatRequests(): RecordedRequest[];
  /** The next chat request gets this fault instead of (or on top of) a normal answer. Queued. */
  failNext(fault: Fault): void;
  /** The next model-list request (/v1/models or /public/v1/models) gets this fault. Queued. */
  failModelsNext(fault: Fault): void;
  /** Replaces the catalog (a model added or retired upstream). */
  setModels(models: readonly FakeModel[]): void;
  /** Replaces the key requests must carry (a key revoked, or accepted again); undefined: any. */
  setApiKey(apiKey: string | undefined): void;
  /** The next streamed chat request stops after `afterChunks` chunks until the gate is released. */
  holdNext(afterChunks: number): Gate;
  /** Requests not yet over. */
  openRequests(): number;
  /** Chat requests refused with 429 for the organisation's rate limits (options.rateLimits). */
  readonly rateLimited: number;
  close(): Promise<void>;
}

const SYSTEM_FINGERPRINT = "fp_5a8f1c9e3b7d2a6c4e0f";

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  const faults: Fault[] = [];
  let models = options.models ?? FAKE_MODELS;
  const modelFaults: Fault[] = [];
  /** Hashes of conversation prefixes seen, so a repeated prefix is reported as cached. */
  const promptCache = new Set<string>();
  const maxRecorded = options.maxRecorded ?? 1000;
  let counter = 0;
  const limiter = new FakeLimiter(options.rateLimits ?? {});
  let apiKey = options.apiKey;

  const server: Server = createServer((req, res) => {
    res.socket?.setNoDelay(true);
    void readBody(req).then((raw) => handle(req, res, raw));
  });

  async function handle(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    let body: unknown;
    let bodyIsJson = true;
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        bodyIsJson = false;
      }
    }
    const record = track(req, res, path, body, raw);
    res.setHeader("x-request-id", `fake-${++counter}`);

    if (apiKey !== undefined && req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendError(res, 401, "Wrong API Key", "invalid_request_error", "api_key", "wrong_api_key");
    }
    if (req.method === "GET" && (path === "/v1/models" || path === "/public/v1/models")) {
      const fault = modelFaults.shift();
      if (fault?.kind === "http-error") return sendJson(res, fault.status, fault.body ?? {});
      if (fault?.kind === "reset-before-headers") return void req.socket.destroy();
    }
    if (req.method === "GET" && path === "/v1/models") return sendJson(res, 200, { object: "list", data: models.map(modelJson) });
    if (req.method === "GET" && path === "/public/v1/models") return sendJson(res, 200, { object: "list", data: models.map(publicModelJson) });
    if (req.method === "GET" && path.startsWith("/v1/models/")) {
      const m = models.find((x) => x.id === decodeURIComponent(path.slice("/v1/models/".length)));
      return m ? sendJson(res, 200, modelJson(m)) : sendError(res, 404, "Model does not exist or you do not have access to it.", "not_found_error", "model", "model_not_found");
    }
    if (req.method !== "POST" || path !== "/v1/chat/completions") {
      return sendError(res, 404, `No route for ${req.method} ${path}`, "not_found_error", "url", "not_found");
    }

    const fault = faults.shift();
    if (fault?.kind === "reset-before-headers") return void req.socket.destroy();
    if (fault?.kind === "hang") return;
    if (fault?.kind === "delay") {
      await sleep(fault.ms);
      if (res.destroyed) return;
    }
    if (fault?.kind === "huge-body") {
      return sendJson(res, 200, { id: "chatcmpl-huge", object: "chat.completion", padding: "x".repeat(fault.bytes), choices: [] });
    }
    if (fault?.kind === "http-error") {
      for (const [k, v] of Object.entries(fault.headers ?? {})) res.setHeader(k, v);
      return sendJson(res, fault.status, fault.body ?? {});
    }
    if (!bodyIsJson) return sendError(res, 400, "Invalid JSON: expected value at line 1 column 1", "invalid_request_error", "validation_error", "wrong_api_format");

    const checked = checkChatRequest(body, models);
    const model = typeof (body as { model?: unknown } | undefined)?.model === "string" ? (body as { model: string }).model : "";
    if (!checked.ok) {
      const f = checked.failure;
      const type = f.status === 404 ? "not_found_error" : "invalid_request_error";
      if (!limiter.limits(model)) setRateLimitHeaders(res);
      return sendError(res, f.status, f.message, type, f.status === 404 ? "model" : "validation_error", f.code);
    }
    const b = body as Record<string, unknown>;
    const plan = planReply(b, checked.model, { fixedTokens: options.fixedTokens, fixedTokenSize: options.fixedTokenSize, cachedTokens: cachedPrefixTokens(b) });
    if (limiter.limits(model)) {
      // Cerebras reserves estimated input + max_completion_tokens (the model's maximum when unset) up front.
      const max = numberOr(b["max_completion_tokens"], numberOr(b["max_tokens"], -1));
      const decision = limiter.reserve(model, plan.promptTokens + (max >= 0 ? max : checked.model.maxCompletionTokens));
      for (const [k, v] of Object.entries(decision.headers)) res.setHeader(k, v);
      if (!decision.ok) return sendError(res, 429, decision.message, decision.type, "quota", decision.code);
      // What it did not use goes back when it ends; a request cut short used the prompt and what was sent.
      res.on("close", () => decision.release(plan.promptTokens + (record.outcome === "completed" ? plan.completionTokens : Math.max(0, record.chunksSent - 1))));
    } else {
      setRateLimitHeaders(res);
    }
    if (b["stream"] === true) await stream(res, record, b, plan, fault);
    else sendJson(res, 200, completion(b, plan, fault));
  }

  /**
   * Prompt caching as Cerebras reports it: the longest earlier-seen prefix of this
   * conversation counts as cached tokens.
   */
  function cachedPrefixTokens(body: Record<string, unknown>): number {
    const messages = body["messages"] as unknown[];
    const key = (n: number): string => createHash("sha256").update(JSON.stringify(messages.slice(0, n))).digest("hex");
    if (promptCache.size > 10_000) promptCache.clear();
    let cached = 0;
    for (let n = Math.min(messages.length - 1, 64); n > 0; n--) {
      if (promptCache.has(key(n))) {
        cached = Math.ceil(JSON.stringify(messages.slice(0, n)).length / 4);
        break;
      }
    }
    promptCache.add(key(messages.length));
    return cached;
  }

  function track(req: IncomingMessage, res: ServerResponse, path: string, body: unknown, rawBody: string): RecordedRequest {
    let settle: (o: "completed" | "aborted") => void = () => {};
    const record: RecordedRequest = {
      method: req.method ?? "",
      path,
      headers: req.headers,
      body,
      rawBody,
      receivedAt: performance.now(),
      chunksSent: 0,
      outcome: "pending",
      settled: new Promise((resolve) => (settle = resolve)),
    };
    requests.push(record);
    if (requests.length > maxRecorded) requests.splice(0, requests.length - maxRecorded);
    res.on("close", () => {
      record.outcome = res.writableFinished ? "completed" : "aborted";
      settle(record.outcome);
    });
    return record;
  }

  async function stream(res: ServerResponse, record: RecordedRequest, body: Record<string, unknown>, plan: ReplyPlan, fault: Fault | undefined): Promise<void> {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    const base = { id: `chatcmpl-${randomUUID()}`, object: "chat.completion.chunk", created: nowSeconds(), model: body["model"], system_fingerprint: SYSTEM_FINGERPRINT, ...tierFields(body) };
    const delay = options.tokenDelayMs ?? 0;
    const odd = fault?.kind === "odd-values" ? fault : undefined;
    const n = choiceCount(body);
    // n > 1: each choice's chunks in turn (every choice has the same deterministic answer).
    const chunks: Array<{ delta: Record<string, unknown>; index: number; logprobs?: unknown; reasoning_logprobs?: unknown }> = [];
    for (let index = 0; index < n; index++) {
      for (const d of streamDeltas(plan, options.toolCallStyle ?? "fragments")) chunks.push({ ...d, index });
      if (options.emptyDeltas) chunks.push({ delta: {}, index });
    }
    if (odd?.role !== undefined && chunks[0] !== undefined) chunks[0].delta = { ...chunks[0].delta, role: odd.role };
    const started = performance.now();

    for (let i = 0; i <= chunks.length; i++) {
      if (res.destroyed) return;
      if (fault !== undefined && "afterChunks" in fault && fault.afterChunks === i) {
        switch (fault.kind) {
          case "cut-stream": {
            // Let the chunks already written reach the client, then drop the connection.
            const socket = res.socket;
            if (socket) await new Promise<void>((resolve) => socket.write("", () => resolve()));
            socket?.destroy();
            return;
          }
          case "eof-without-finish":
            res.end();
            return;
          case "garbage":
            res.end("data: {\"id\": \"chatcmpl-broken\", \"choices\": [\n\n");
            return;
          case "error-frame":
            res.end(`data: ${JSON.stringify({ error: fault.error ?? { message: "Internal error while generating", type: "server_error", code: "internal_error", param: null, id: null }, status_code: fault.statusCode ?? 500 })}\n\n`);
            return;
          case "stall":
            return; // headers and some chunks sent; nothing more until the client gives up
          case "huge-event":
            res.write(`data: ${JSON.stringify({ ...base, choices: [{ delta: { content: "x".repeat(fault.bytes) }, index: 0 }] })}\n\n`);
            record.chunksSent++;
            break;
          case "hold":
            fault.gate.arrive();
            await fault.gate.released;
            if (res.destroyed) return;
            break;
          case "pings":
            // Keep-alive comments only, until the client closes the connection.
            while (!res.destroyed) {
              res.write(": ping\n\n");
              await sleep(fault.intervalMs);
            }
            return;
        }
      }
      if (i === chunks.length) break;
      const chunk = { ...base, choices: [chunks[i]!] };
      if (!res.write(`data: ${JSON.stringify(chunk)}\n\n`)) await drain(res);
      record.chunksSent++;
      if (delay > 0) await sleep(delay);
    }
    if (res.destroyed) return;
    const elapsed = (performance.now() - started) / 1000;
    const stallAfter = fault?.kind === "stall-after-finish" ? fault : undefined;
    const apart = fault?.kind === "usage-apart" ? fault : undefined;
    const finishReason = odd?.finishReason ?? plan.finishReason;
    const stats = { usage: usage(plan, n), time_info: timeInfo(elapsed) };
    const final = {
      ...base,
      choices: Array.from({ length: n }, (_, index) => ({ delta: {}, finish_reason: finishReason, index })),
      ...(stallAfter?.usageApart || apart !== undefined ? {} : stats),
    };
    res.write(`data: ${JSON.stringify(final)}\n\n`);
    record.chunksSent++;
    if (apart !== undefined) {
      // Usage in a chunk of its own whose choices are empty, null or missing (the SDK's types allow all three).
      const choices = apart.choices === "absent" ? {} : { choices: apart.choices === "null" ? null : [] };
      res.write(`data: ${JSON.stringify({ ...base, ...choices, ...stats })}\n\n`);
      record.chunksSent++;
    }
    if (stallAfter !== undefined) {
      // The answer is complete; the body never ends (until the client closes it).
      if (stallAfter.done) res.write("data: [DONE]\n\n");
      return;
    }
    res.end(options.sendDone ? "data: [DONE]\n\n" : undefined);
  }

  function completion(body: Record<string, unknown>, plan: ReplyPlan, fault: Fault | undefined): Record<string, unknown> {
    const odd = fault?.kind === "odd-values" ? fault : undefined;
    const message: Record<string, unknown> = { role: odd?.role ?? "assistant" };
    const text = (plan.rawReasoning && plan.reasoning.length > 0 ? `<think>${plan.reasoning.join("")}</think>` : "") + plan.content.join("");
    if (plan.toolCalls.length === 0 || text !== "") message["content"] = text;
    if (plan.reasoning.length > 0 && !plan.rawReasoning && !plan.hiddenReasoning) message["reasoning"] = plan.reasoning.join("");
    if (plan.toolCalls.length > 0) {
      message["tool_calls"] = plan.toolCalls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
    }
    const n = choiceCount(body);
    return {
      id: `chatcmpl-${randomUUID()}`,
      object: "chat.completion",
      created: nowSeconds(),
      model: body["model"],
      system_fingerprint: SYSTEM_FINGERPRINT,
      ...tierFields(body),
      choices: Array.from({ length: n }, (_, index) => ({ index, message, finish_reason: odd?.finishReason ?? plan.finishReason, ...choiceLogprobs(plan) })),
      usage: usage(plan, n),
      time_info: timeInfo(0.001),
    };
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    chatRequests: () => requests.filter((r) => r.path === "/v1/chat/completions"),
    failNext: (fault) => void faults.push(fault),
    failModelsNext: (fault) => void modelFaults.push(fault),
    setModels: (next) => {
      models = next;
    },
    setApiKey: (next) => {
      apiKey = next;
    },
    holdNext: (afterChunks) => {
      const gate = new Gate();
      faults.push({ kind: "hold", afterChunks, gate });
      return gate;
    },
    openRequests: () => requests.filter((r) => r.outcome === "pending").length,
    get rateLimited() {
      return limiter.rejected;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The deltas of one choice's stream, in Cerebras order: role, reasoning, content or tool calls; each with its logprobs when asked for. */
function streamDeltas(plan: ReplyPlan, toolCallStyle: "fragments" | "whole"): Array<{ delta: Record<string, unknown>; logprobs?: unknown; reasoning_logprobs?: unknown }> {
  const lp = plan.logprobs;
  const withLogprobs = (delta: Record<string, unknown>, token: string, reasoning: boolean) => {
    if (lp === undefined) return { delta };
    const entry = { content: [tokenLogprob(token, lp.top)], refusal: null };
    return reasoning && lp.reasoningApart ? { delta, reasoning_logprobs: entry } : { delta, logprobs: entry };
  };
  const out: Array<{ delta: Record<string, unknown>; logprobs?: unknown; reasoning_logprobs?: unknown }> = [{ delta: { role: "assistant" } }];
  if (plan.rawReasoning && plan.reasoning.length > 0) {
    out.push({ delta: { content: "<think>" } }, ...plan.reasoning.map((t) => withLogprobs({ content: t }, t, false)), { delta: { content: "</think>" } });
  } else if (!plan.hiddenReasoning) {
    for (const t of plan.reasoning) out.push(withLogprobs({ reasoning: t }, t, true));
  }
  for (const t of plan.content) out.push(withLogprobs({ content: t }, t, false));
  plan.toolCalls.forEach((c, index) => {
    if (toolCallStyle === "whole") {
      out.push({ delta: { tool_calls: [{ index, id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }] } });
      return;
    }
    out.push({ delta: { tool_calls: [{ index, id: c.id, type: "function", function: { name: c.name, arguments: "" } }] } });
    for (let i = 0; i < c.arguments.length; i += 8) {
      out.push({ delta: { tool_calls: [{ index, function: { arguments: c.arguments.slice(i, i + 8) } }] } });
    }
  });
  return out;
}

/** A whole answer's logprobs (and reasoning_logprobs under "parsed"), when asked for. */
function choiceLogprobs(plan: ReplyPlan): Record<string, unknown> {
  const lp = plan.logprobs;
  if (lp === undefined) return {};
  const shownReasoning = plan.hiddenReasoning ? [] : plan.reasoning;
  const content = [...(lp.reasoningApart ? [] : shownReasoning), ...plan.content].map((t) => tokenLogprob(t, lp.top));
  const out: Record<string, unknown> = { logprobs: { content, refusal: null } };
  if (lp.reasoningApart) out["reasoning_logprobs"] = { content: shownReasoning.map((t) => tokenLogprob(t, lp.top)), refusal: null };
  return out;
}

/** `n` choices (1 unless the request asks for more). */
function choiceCount(body: Record<string, unknown>): number {
  const n = body["n"];
  return typeof n === "number" && Number.isInteger(n) && n > 1 ? Math.min(n, 16) : 1;
}

/** service_tier as requested, and service_tier_used when Cerebras chose (the request said "auto"). */
function tierFields(body: Record<string, unknown>): Record<string, unknown> {
  const tier = body["service_tier"];
  if (typeof tier !== "string") return {};
  return tier === "auto" ? { service_tier: tier, service_tier_used: "default" } : { service_tier: tier };
}

function usage(plan: ReplyPlan, n = 1): Record<string, unknown> {
  const completion = plan.completionTokens * n;
  const out: Record<string, unknown> = {
    prompt_tokens: plan.promptTokens,
    completion_tokens: completion,
    total_tokens: plan.promptTokens + completion,
    prompt_tokens_details: { cached_tokens: plan.cachedTokens },
    completion_tokens_details: {
      reasoning_tokens: plan.reasoning.length * n,
      accepted_prediction_tokens: (plan.prediction?.accepted ?? 0) * n,
      rejected_prediction_tokens: (plan.prediction?.rejected ?? 0) * n,
    },
  };
  if (plan.imageTokens > 0) out["image_tokens"] = plan.imageTokens;
  return out;
}

function timeInfo(completionSeconds: number): Record<string, unknown> {
  return {
    queue_time: 0.000_213,
    prompt_time: 0.001_724,
    completion_time: completionSeconds,
    total_time: completionSeconds + 0.002_31,
    created: Date.now() / 1000,
  };
}

function setRateLimitHeaders(res: ServerResponse): void {
  res.setHeader("x-ratelimit-limit-requests-day", "14400");
  res.setHeader("x-ratelimit-remaining-requests-day", "14399");
  res.setHeader("x-ratelimit-reset-requests-day", "33011.38");
  res.setHeader("x-ratelimit-limit-tokens-minute", "1000000");
  res.setHeader("x-ratelimit-remaining-tokens-minute", "999000");
  res.setHeader("x-ratelimit-reset-tokens-minute", "11.38");
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, message: string, type: string, param: string, code: string): void {
  sendJson(res, status, { message, type, param, code });
}

function drain(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    req.on("data", (b: Buffer) => parts.push(b));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", () => resolve(""));
  });
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === "number" ? v : fallback;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
