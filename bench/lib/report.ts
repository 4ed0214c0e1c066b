/** The report: the machine line, the table of rows, and issue 8's targets judged on the worse round. */
import { execFileSync } from "node:child_process";
import { cpus, release } from "node:os";
import { ROOT, type Ctx } from "./context.js";
import { find, rows, type Row } from "./rows.js";
import { fmt, signed } from "./stats.js";

export function machine(): string {
  const model = cpus()[0]?.model ?? "unknown CPU";
  let git = "";
  try {
    const head = execFileSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8", timeout: 5000 }).trim();
    const dirty = execFileSync("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "gen", "package.json"], { encoding: "utf8", timeout: 5000 })
      .split("\n")
      .filter((l) => l.trim() !== "").length;
    git = `, commit ${head}${dirty > 0 ? ` with ${dirty} uncommitted change(s) under src/` : ""}`;
  } catch {
    // not a git checkout
  }
  const h2 = (() => {
    try {
      return execFileSync("h2load", ["--version"], { encoding: "utf8", timeout: 5000 }).trim();
    } catch {
      return "h2load ?";
    }
  })();
  return `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC · ${cpus().length} cores (${model}) · Node ${process.version} · Linux ${release()} · ${h2}${git}`;
}

export function table(): string {
  const lines = [
    "| scenario | metric | round | direct | gateway | gw − direct | gw ÷ direct | CPU % gateway run: gw · fake · loadgen · other | CPU % direct run: fake · loadgen · other | errors direct / gw |",
    "| --- | --- | --: | --: | --: | --: | --: | --- | --- | --- |",
  ];
  const keys: string[] = [];
  for (const r of rows) {
    const k = `${r.scenario}\u0000${r.metric}`;
    if (!keys.includes(k)) keys.push(k);
  }
  let lastScenario = "";
  for (const k of keys) {
    const [scenario, metric] = k.split("\u0000") as [string, string];
    for (const r of rows.filter((x) => x.scenario === scenario && x.metric === metric)) {
      const diff = r.compare && r.direct !== undefined && r.gateway !== undefined ? signed(r.gateway - r.direct) : "";
      const ratio = r.compare && r.direct !== undefined && r.gateway !== undefined && r.direct !== 0 ? `${fmt(r.gateway / r.direct, 2)}×` : "";
      lines.push(
        `| ${scenario === lastScenario ? "" : scenario} | ${metric} | ${r.round} | ${r.direct === undefined ? "" : fmt(r.direct)} | ${fmt(r.gateway)} | ${diff} | ${ratio} | ${r.cpuGateway ?? ""} | ${r.cpuDirect ?? ""} | ${r.errors ?? ""} |`,
      );
      lastScenario = scenario;
    }
  }
  return lines.join("\n");
}

export interface Check {
  readonly target: string;
  readonly measured: string;
  readonly pass: boolean | undefined;
  /** The same figure for the stack's floor (bench/floor.ts), where it has one. */
  readonly floor?: string | undefined;
}

/** Issue 8's targets, judged on the worse round. */
export function targets(ctx: Ctx): Check[] {
  const rounds = Array.from({ length: ctx.s.rounds }, (_, i) => i + 1);
  const worst = (scenario: string, metric: string, f: (r: Row) => number | undefined, higherIsBetter: boolean): number | undefined => {
    const v = rounds.map((n) => find(scenario, metric, n)).filter((r): r is Row => r !== undefined).map(f).filter((x): x is number => x !== undefined && !Number.isNaN(x));
    if (v.length === 0) return undefined;
    return higherIsBetter ? Math.min(...v) : Math.max(...v);
  };
  const added = (r: Row): number | undefined => (r.gateway === undefined || r.direct === undefined ? undefined : r.gateway - r.direct);
  const ratio = (r: Row): number | undefined => (r.gateway === undefined || r.direct === undefined ? undefined : r.gateway / r.direct);
  const checks: Check[] = [];
  const check = (target: string, v: number | undefined, unit: string, ok: (v: number) => boolean, floor?: number): void => {
    const text = (x: number | undefined): string => (x === undefined ? "not measured" : `${fmt(x)}${unit}`);
    checks.push({ target, measured: text(v), pass: v === undefined ? undefined : ok(v), floor: floor === undefined ? undefined : text(floor) });
  };
  const F = ", floor (bare grpc-js relay)";
  check("unary gRPC c=1: added p50 ≤ 0.4 ms", worst("unary gRPC c=1", "p50 ms", added, false), " ms", (v) => v <= 0.4, worst(`unary gRPC c=1${F}`, "p50 ms", added, false));
  check("unary gRPC c=1: added p99 ≤ 1.5 ms", worst("unary gRPC c=1", "p99 ms", added, false), " ms", (v) => v <= 1.5, worst(`unary gRPC c=1${F}`, "p99 ms", added, false));
  const direct64 = worst("unary gRPC c=64", "req/s", (r) => r.direct, true);
  const need = direct64 === undefined ? 5000 : Math.min(5000, 0.8 * direct64);
  check(`unary gRPC c=64: ≥ ${fmt(need)} req/s (min of 5,000 and 80% of direct)`, worst("unary gRPC c=64", "req/s", (r) => r.gateway, true), " req/s", (v) => v >= need, worst(`unary gRPC c=64${F}`, "req/s", (r) => r.gateway, true));
  check("unary gRPC c=64: added p99 ≤ 5 ms", worst("unary gRPC c=64", "p99 ms", added, false), " ms", (v) => v <= 5, worst(`unary gRPC c=64${F}`, "p99 ms", added, false));
  if (ctx.shim) {
    for (const c of ctx.s.unaryConcurrency) {
      const g = worst(`unary gRPC c=${c}`, "p50 ms", (r) => r.gateway, false);
      const h = worst(`unary HTTP shim c=${c}`, "p50 ms", (r) => r.gateway, false);
      check(`HTTP shim unary c=${c}: p50 within 1.5× of gRPC`, h === undefined || g === undefined ? undefined : h / g, "×", (v) => v <= 1.5);
    }
  }
  const s1 = `stream gRPC c=1, ${ctx.s.streamTokens + 2} msgs, ${ctx.s.streamDelayMs} ms pacing`;
  const s64 = `stream gRPC c=64, ${ctx.s.streamTokens + 2} msgs, ${ctx.s.streamDelayMs} ms pacing`;
  const f1 = `stream gRPC c=1, ${ctx.s.streamTokens + 2} msgs${F}`;
  const f64 = `stream gRPC c=64, ${ctx.s.streamTokens + 2} msgs${F}`;
  check("stream c=1: added first-message p50 ≤ 0.5 ms", worst(s1, "first message p50 ms", added, false), " ms", (v) => v <= 0.5, worst(f1, "first message p50 ms", added, false));
  checks.push(((v) => ({ target: "stream c=1: total stream time p50 within 3% of direct", measured: v === undefined ? "not measured" : `${v.toFixed(3)}×`, pass: v === undefined ? undefined : v <= 1.03 }))(worst(s1, "stream total p50 ms", ratio, false)));
  check("stream c=64: added first-message p99 ≤ 5 ms", worst(s64, "first message p99 ms", added, false), " ms", (v) => v <= 5, worst(f64, "first message p99 ms", added, false));
  const relayScenario = `relay, ${ctx.s.relayConcurrency} unpaced streams of ${ctx.s.relayTokens + 2} msgs`;
  check("relay: ≥ 100,000 chunks/s forwarded", worst(relayScenario, "chunks/s", (r) => r.gateway, true), " chunks/s", (v) => v >= 100_000, worst(`${relayScenario}${F}`, "chunks/s", (r) => r.gateway, true));
  const mem = `memory, ${ctx.s.holdStreams} concurrent slow streams`;
  check(`memory: ≤ 40 KB RSS per stream at ${ctx.s.holdStreams} streams`, worst(mem, "RSS per stream KB (fake | gateway)", (r) => r.gateway, false), " KB", (v) => v <= 40);
  const lastSettle = ctx.s.settleS[ctx.s.settleS.length - 1]!;
  const back = worst(mem, `RSS ${lastSettle} s after the end MB (gateway, % of before)`, (r) => {
    const before = find(mem, "RSS before MB (fake | gateway)", r.round)?.gateway;
    return before === undefined || r.gateway === undefined ? undefined : r.gateway / before;
  }, false);
  check(`memory: RSS ${lastSettle} s after the load within 20% of before`, back, "× before", (v) => v <= 1.2);
  return checks;
}
