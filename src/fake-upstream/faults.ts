/**
 * Faults the fake upstream can be told to produce on its next chat request, and the
 * real Cerebras error bodies behind them (CEREBRAS_API.md §5.2, verbatim messages).
 */

export type Fault =
  /** Answer with this status, body and headers instead of a completion. */
  | { readonly kind: "http-error"; readonly status: number; readonly body?: unknown; readonly headers?: Readonly<Record<string, string>> }
  /** Destroy the socket before sending anything. */
  | { readonly kind: "reset-before-headers" }
  /** Never answer (until the client gives up). */
  | { readonly kind: "hang" }
  /** Wait before answering normally. */
  | { readonly kind: "delay"; readonly ms: number }
  /** Stream: destroy the socket after this many chunks. */
  | { readonly kind: "cut-stream"; readonly afterChunks: number }
  /** Stream: send an in-band `{"error":…,"status_code":…}` frame after this many chunks. */
  | { readonly kind: "error-frame"; readonly afterChunks: number; readonly statusCode?: number; readonly error?: Readonly<Record<string, unknown>> }
  /** Stream: end cleanly after this many chunks, without a finish_reason. */
  | { readonly kind: "eof-without-finish"; readonly afterChunks: number }
  /** Stream: send a data event that is not JSON after this many chunks. */
  | { readonly kind: "garbage"; readonly afterChunks: number }
  /** Stream: stop sending after this many chunks, keeping the connection open (an idle upstream). */
  | { readonly kind: "stall"; readonly afterChunks: number }
  /** Unary: answer 200 with a JSON body of about this many bytes. */
  | { readonly kind: "huge-body"; readonly bytes: number }
  /** Stream: send one data event of about this many bytes after this many chunks. */
  | { readonly kind: "huge-event"; readonly afterChunks: number; readonly bytes: number }
  /** Stream: stop after this many chunks until the gate is released. */
  | { readonly kind: "hold"; readonly afterChunks: number; readonly gate: Gate }
  /**
   * Stream: send every chunk, the last with its finish_reason, then keep the connection
   * open without ending the body (a proxy or an upstream that never closes).
   * `done`: send `data: [DONE]` before stalling. `usageApart`: the finish chunk carries no
   * usage (as OpenAI's do), and the usage chunk that should follow never comes.
   */
  | { readonly kind: "stall-after-finish"; readonly done?: boolean; readonly usageApart?: boolean }
  /** Stream: after this many chunks, send only SSE comments (`: ping`), every `intervalMs`, until the client gives up. */
  | { readonly kind: "pings"; readonly afterChunks: number; readonly intervalMs: number }
  /**
   * Answer normally, but with values Cerebras may send one day and the contract does not
   * know yet: this finish_reason, and (in the message, or the stream's first delta) this role.
   */
  | { readonly kind: "odd-values"; readonly finishReason?: string; readonly role?: string }
  /**
   * Stream: the finish chunk carries no usage; one more chunk carries usage and time_info,
   * with `choices` empty, null or absent (all three are allowed by the SDK's types).
   */
  | { readonly kind: "usage-apart"; readonly choices: "empty" | "null" | "absent" };

/** A one-shot latch: the fake signals `reached`, the test calls `release()`. */
export class Gate {
  private releaseFn: () => void = () => {};
  private reachedFn: () => void = () => {};
  /** Resolves when the fake is holding at the gate. */
  readonly reached: Promise<void> = new Promise((resolve) => (this.reachedFn = resolve));
  /** Resolves when the test releases the gate. */
  readonly released: Promise<void> = new Promise((resolve) => (this.releaseFn = resolve));

  arrive(): void {
    this.reachedFn();
  }

  release(): void {
    this.releaseFn();
  }
}

type ErrorFault = Extract<Fault, { kind: "http-error" }>;

function error(status: number, message: string, type: string, param: string, code: string, headers?: Record<string, string>): ErrorFault {
  return { kind: "http-error", status, body: { message, type, param, code }, ...(headers ? { headers } : {}) };
}

/** Cerebras error responses as recorded from the real API. */
export const cerebrasErrors = {
  wrongApiFormat: (message = "body.top_k: property 'body.top_k' is unsupported"): ErrorFault =>
    error(400, message, "invalid_request_error", "validation_error", "wrong_api_format"),
  contextLengthExceeded: (): ErrorFault =>
    error(
      400,
      "Please reduce the length of the messages or completion. Current length is 202427 while limit is 131072",
      "invalid_request_error",
      "validation_error",
      "context_length_exceeded",
    ),
  wrongApiKey: (): ErrorFault => error(401, "Wrong API Key", "invalid_request_error", "api_key", "wrong_api_key"),
  paymentRequired: (): ErrorFault =>
    error(402, "Payment required to access this resource. Visit your billing tab.", "payment_required_error", "quota", "payment_required"),
  modelNotFound: (): ErrorFault =>
    error(404, "Model does not exist or you do not have access to it.", "not_found_error", "model", "model_not_found"),
  queueExceeded: (): ErrorFault =>
    error(429, "We're experiencing high traffic right now! Please try again soon.", "too_many_requests_error", "queue", "queue_exceeded"),
  tokenQuotaPerMinute: (resetSeconds: number): ErrorFault =>
    error(429, "Tokens per minute limit exceeded - too many tokens processed.", "too_many_tokens_error", "quota", "token_quota_exceeded", {
      "x-ratelimit-limit-tokens-minute": "1000000",
      "x-ratelimit-remaining-tokens-minute": "0",
      "x-ratelimit-reset-tokens-minute": resetSeconds.toFixed(2),
    }),
  requestQuotaPerDay: (resetSeconds: number): ErrorFault =>
    error(429, "Requests per day limit exceeded - too many requests sent.", "too_many_requests_error", "quota", "request_quota_exceeded", {
      "x-ratelimit-limit-requests-day": "14400",
      "x-ratelimit-remaining-requests-day": "0",
      "x-ratelimit-reset-requests-day": resetSeconds.toFixed(2),
    }),
  serverError: (status = 500): ErrorFault => ({ kind: "http-error", status, body: { message: "Internal server error", type: "server_error", param: null, code: null } }),
};
