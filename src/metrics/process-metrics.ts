/**
 * The default Node process metrics (CPU, memory, heap, event-loop lag, GC, handles…),
 * collected once per process on a private registry (never prom-client's global one).
 *
 * Once, because collectDefaultMetrics starts an event-loop delay monitor and a GC
 * observer that are never stopped: collecting per gateway would leak one of each for
 * every gateway a process starts (tests start many). They describe the process anyway,
 * so every GatewayMetrics shares them (registry.ts merges them into its own).
 */
import { collectDefaultMetrics, Registry } from "prom-client";

let shared: Registry | undefined;

export function processMetrics(): Registry {
  if (shared === undefined) {
    shared = new Registry();
    collectDefaultMetrics({ register: shared });
  }
  return shared;
}
