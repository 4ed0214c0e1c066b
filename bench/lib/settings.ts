/** What a bench run measures and for how long (--quick, --rounds), and which CPU each process gets. */
import { hasTaskset } from "./proc.js";

export interface Settings {
  readonly quick: boolean;
  readonly rounds: number;
  /** Gateway warm-up before a round's first scenario (JIT), s. */
  readonly gatewayWarmS: number;
  readonly unaryWarmS: number;
  readonly unaryS: number;
  readonly unaryConcurrency: readonly number[];
  readonly infoConcurrency: readonly number[];
  readonly streamWarmMs: number;
  readonly streamMs: number;
  readonly streamConcurrency: readonly number[];
  /** Content tokens per paced stream: with the role and final chunks, 64 messages. */
  readonly streamTokens: number;
  readonly streamDelayMs: number;
  readonly relayConcurrency: number;
  readonly relayTokens: number;
  readonly relayWarmMs: number;
  readonly relayMs: number;
  readonly holdStreams: number;
  readonly holdDelayMs: number;
  readonly holdTokens: number;
  /** RSS is read this many seconds after the held streams end. */
  readonly settleS: readonly number[];
  /** Before each measured run: wait at most this long for other processes to leave the CPUs alone. */
  readonly quietWaitMs: number;
  /** Capacity (issue 18): tokens per second of every stream (--capacity-rate). */
  readonly capacityRate: number;
  /** The ramp: first step, increment, last step (streams), and a bound on the steps measured per server. */
  readonly capacityStart: number;
  readonly capacityStep: number;
  readonly capacityMax: number;
  readonly capacitySteps: number;
  /** Per step: tokens due in the first warm-up ms are not measured; then the measured window. */
  readonly capacityWarmMs: number;
  readonly capacityMeasureMs: number;
  /** gRPC streams per HTTP/2 connection (callers are several services, each with a channel). */
  readonly capacityStreamsPerConnection: number;
}

export function settings(quick: boolean, rounds: number | undefined, capacityRate = 2000): Settings {
  const common = {
    capacityRate,
    capacityStart: 2,
    capacityStep: 4,
    capacityMax: 400,
    capacityStreamsPerConnection: 16,
    unaryConcurrency: [1, 16, 64],
    infoConcurrency: [1, 64],
    streamConcurrency: [1, 64],
    streamTokens: 62,
    streamDelayMs: 1,
    relayConcurrency: 16,
    relayTokens: 2000,
  };
  return quick
    ? { ...common, quick, rounds: rounds ?? 1, gatewayWarmS: 1, unaryWarmS: 1, unaryS: 1, streamWarmMs: 300, streamMs: 1000, relayWarmMs: 300, relayMs: 1000, holdStreams: 200, holdDelayMs: 100, holdTokens: 10, settleS: [2], quietWaitMs: 3000, capacitySteps: 8, capacityWarmMs: 300, capacityMeasureMs: 700 }
    : { ...common, quick, rounds: rounds ?? 2, gatewayWarmS: 3, unaryWarmS: 2, unaryS: 5, streamWarmMs: 1000, streamMs: 5000, relayWarmMs: 1000, relayMs: 5000, holdStreams: 1000, holdDelayMs: 200, holdTokens: 30, settleS: [2, 10, 30], quietWaitMs: 60_000, capacitySteps: 30, capacityWarmMs: 500, capacityMeasureMs: 2000 };
}

/** Which CPU each process gets. */
export interface Layout {
  readonly fake: string | undefined;
  readonly gateway: string | undefined;
  readonly loadgen: string | undefined;
  readonly description: string;
}

export function layout(cores: number): Layout {
  if (!hasTaskset()) return { fake: undefined, gateway: undefined, loadgen: undefined, description: "not pinned (taskset unavailable)" };
  if (cores >= 3) return { fake: "0", gateway: "1", loadgen: "2", description: "fake upstream on CPU 0, gateway on CPU 1, load generator (and the bench itself) on CPU 2" };
  if (cores === 2) {
    return {
      fake: "0",
      gateway: "1",
      loadgen: "0",
      description:
        "gateway alone on CPU 1; fake upstream and load generator (and the bench itself) share CPU 0 — only 2 cores, so the load generator shares a core with the upstream, in the direct runs and the gateway runs alike",
    };
  }
  return { fake: undefined, gateway: undefined, loadgen: undefined, description: "not pinned (1 core)" };
}

/** Scenario groups (--only). */
export const GROUPS = ["unary", "stream", "info", "floor", "relay", "memory", "capacity"] as const;
export type Group = (typeof GROUPS)[number];
