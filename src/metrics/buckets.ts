/**
 * Histogram buckets, in seconds (Prometheus' base unit), each set shaped for what it
 * measures. Buckets are part of a metric's identity: changing them breaks dashboards'
 * history, so change them deliberately.
 */

/** Whole calls: a rejected request takes milliseconds, a long generation minutes (REQUEST_TIMEOUT_S is 300 s). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];

/** Time to first token: Cerebras answers in tens to hundreds of ms; FIRST_TOKEN_TIMEOUT_S is 60 s. */
export const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60];

/** What the gateway adds around the upstream: tens of µs when healthy, ms when the event loop is busy. */
export const OVERHEAD_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Cerebras time_info.queue_time: usually well under a ms, seconds when the shared queue is full. */
export const QUEUE_TIME_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Cerebras time_info.prompt_time: ms for short prompts, seconds for a full context. */
export const PROMPT_TIME_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Cerebras time_info.completion_time: grows with the tokens generated. */
export const COMPLETION_TIME_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
