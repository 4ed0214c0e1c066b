/** The report's rows: every figure a scenario measured, the direct one beside the gateway's. */
import type { StreamsResult } from "../loadgen.js";
import type { H2loadResult } from "./h2load.js";

export interface Row {
  readonly scenario: string;
  readonly metric: string;
  readonly round: number;
  readonly direct: number | undefined;
  readonly gateway: number | undefined;
  /** Print the difference and the ratio. */
  readonly compare: boolean;
  readonly cpuGateway?: string | undefined;
  readonly cpuDirect?: string | undefined;
  readonly errors?: string | undefined;
}

export const rows: Row[] = [];

/** CPU % of whatever served in the gateway's place: the gateway, or the floor. */
export function gatewayCpu(cpu: Record<string, number>): number | undefined {
  return cpu["gateway"] ?? cpu["floor"];
}

export function cpuText(cpu: Record<string, number>, withGateway: boolean): string {
  const p = (name: string): string => (cpu[name] === undefined ? "?" : cpu[name]!.toFixed(0));
  const other = (cpu["other"] ?? 0) >= 25 ? ` · **${p("other")}** ⚠` : ` · ${p("other")}`;
  const gw = cpu["gateway"] === undefined && cpu["floor"] !== undefined ? "floor" : "gateway";
  return (withGateway ? `${p(gw)} · ${p("fake")} · ${p("loadgen")}` : `${p("fake")} · ${p("loadgen")}`) + other;
}

export function find(scenario: string, metric: string, round: number): Row | undefined {
  return rows.find((r) => r.scenario === scenario && r.metric === metric && r.round === round);
}

export function errorsText(direct: number, gateway: number): string | undefined {
  return direct + gateway === 0 ? undefined : `${direct} / ${gateway}`;
}

export function addUnaryRows(scenario: string, round: number, d: H2loadResult & { errors: number }, g: H2loadResult & { errors: number }): void {
  rows.push({ scenario, metric: "req/s", round, direct: d.rps, gateway: g.rps, compare: true, cpuDirect: cpuText(d.cpu, false), cpuGateway: cpuText(g.cpu, true), errors: errorsText(d.errors, g.errors) });
  rows.push({ scenario, metric: "p50 ms", round, direct: d.latency.p50, gateway: g.latency.p50, compare: true });
  rows.push({ scenario, metric: "p99 ms", round, direct: d.latency.p99, gateway: g.latency.p99, compare: true });
  rows.push({ scenario, metric: "CPU µs per request (direct: fake; gw: gateway)", round, direct: cpuPer(d.cpu["fake"], d.rps), gateway: cpuPer(gatewayCpu(g.cpu), g.rps), compare: true });
}

/** µs of one process's CPU per unit of work, from its CPU % and the rate. */
export function cpuPer(cpuPct: number | undefined, perSecond: number): number | undefined {
  return cpuPct === undefined || perSecond <= 0 ? undefined : (cpuPct / 100 / perSecond) * 1e6;
}

export function addStreamRows(scenario: string, round: number, d: { r: StreamsResult; cpu: Record<string, number> }, g: { r: StreamsResult; cpu: Record<string, number> }, durationMs: number): void {
  rows.push({
    scenario,
    metric: "streams/s",
    round,
    direct: d.r.streams / (durationMs / 1000),
    gateway: g.r.streams / (durationMs / 1000),
    compare: true,
    cpuDirect: cpuText(d.cpu, false),
    cpuGateway: cpuText(g.cpu, true),
    errors: errorsText(d.r.errors, g.r.errors),
  });
  rows.push({ scenario, metric: "first message p50 ms", round, direct: d.r.ttfm.p50, gateway: g.r.ttfm.p50, compare: true });
  rows.push({ scenario, metric: "first message p99 ms", round, direct: d.r.ttfm.p99, gateway: g.r.ttfm.p99, compare: true });
  rows.push({ scenario, metric: "stream total p50 ms", round, direct: d.r.total.p50, gateway: g.r.total.p50, compare: true });
  rows.push({ scenario, metric: "stream total p99 ms", round, direct: d.r.total.p99, gateway: g.r.total.p99, compare: true });
  const rate = (x: StreamsResult): number => x.windowMessages / (durationMs / 1000);
  rows.push({ scenario, metric: "CPU µs per message (direct: fake; gw: gateway)", round, direct: cpuPer(d.cpu["fake"], rate(d.r)), gateway: cpuPer(gatewayCpu(g.cpu), rate(g.r)), compare: true });
  for (const [who, x] of [["direct", d.r], ["gateway", g.r]] as const) {
    if (x.firstError !== undefined) process.stderr.write(`bench: ${scenario} round ${round} ${who}: ${x.errors} failed streams, e.g. ${x.firstError}\n`);
  }
}
