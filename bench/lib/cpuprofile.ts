/**
 * Summarises a V8 .cpuprofile (as `node --cpu-prof` writes it): self time by function and
 * by area (grpc-js, undici, node's http2, the gateway's own src/, logging, GC...), and
 * inclusive time of the gateway's own functions, so the profile reads as a table.
 */
import { readFileSync } from "node:fs";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface Row {
  readonly name: string;
  readonly area: string;
  /** ms */
  readonly ms: number;
  /** share of the busy (non-idle) time, 0-100 */
  readonly pct: number;
}

export interface ProfileSummary {
  /** Profile length, ms (after the skipped start-up). */
  readonly wallMs: number;
  /** Samples dropped as start-up (before the first call reached the gateway's handlers). */
  readonly skippedMs: number;
  /** Sampled non-idle time, ms. */
  readonly busyMs: number;
  readonly areas: readonly Row[];
  readonly selfTop: readonly Row[];
  /** Inclusive time of functions in the gateway's own code (dist/src), heaviest first. */
  readonly gatewayInclusive: readonly Row[];
}

export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (functionName === "(idle)") return "idle";
  if (functionName === "(garbage collector)") return "GC";
  if (functionName === "(program)") return "V8/native (unattributed)";
  if (functionName === "(root)") return "V8/native (unattributed)";
  if (url.includes("/node_modules/@grpc/grpc-js/")) return "grpc-js";
  if (url.includes("/node_modules/undici/")) return "undici";
  if (/\/node_modules\/(pino|sonic-boom|@pinojs|fast-redact|quick-format-unescaped|pino-std-serializers|safe-stable-stringify|thread-stream|atomic-sleep)/.test(url)) return "logging (pino)";
  if (url.includes("/node_modules/@bufbuild/") || url.includes("/node_modules/protobufjs/") || url.includes("/node_modules/long/")) return "protobuf runtime";
  const dep = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dep !== null) return `dep: ${dep[1]}`;
  if (url.includes("/dist/gen/")) return "generated protobuf (gen/)";
  if (url.includes("/dist/src/")) return "gateway src/";
  if (url.startsWith("wasm://")) return "undici (llhttp wasm)";
  if (url.startsWith("node:")) {
    if (url.includes("/modules/") || url.includes("bootstrap")) return "node: module loading (start-up)";
    if (url.includes("http2")) return "node: http2";
    if (url.includes("_http_") || url.includes("/http")) return "node: http/1";
    if (url.includes("/streams/") || url === "node:stream") return "node: streams";
    if (url.includes("net") || url.includes("stream_base") || url.includes("dns")) return "node: net/socket";
    if (url.includes("timers")) return "node: timers";
    if (url.includes("task_queues") || url.includes("async_hooks") || url.includes("process/")) return "node: event loop, microtasks";
    if (url.includes("events") || url.includes("abort_controller") || url.includes("event_target")) return "node: events, AbortSignal";
    if (url.includes("crypto")) return "node: crypto";
    if (url.includes("buffer") || url.includes("util")) return "node: buffer, util";
    return "node: other";
  }
  if (url === "") return "V8 builtins/native";
  return "other";
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf("/node_modules/");
  if (nm !== -1) return url.slice(nm + "/node_modules/".length);
  const d = url.indexOf("/dist/");
  if (d !== -1) return url.slice(d + "/dist/".length);
  return url.replace(/^file:\/\//, "");
}

export function frameName(frame: CallFrame): string {
  const fn = frame.functionName === "" ? "(anonymous)" : frame.functionName;
  if (frame.url === "") return fn;
  return `${fn} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

/**
 * @param startAt when set, samples before the first one whose stack contains a frame from
 *   a URL including this string are dropped (start-up: module loading, server set-up).
 */
export function summariseProfile(file: string, top = 25, startAt?: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);

  const { samples, timeDeltas } = profile;
  let first = 0;
  if (startAt !== undefined) {
    const inStack = (id: number): boolean => {
      for (let cur: number | undefined = id; cur !== undefined; cur = parentOf.get(cur)) if (byId.get(cur)!.callFrame.url.includes(startAt)) return true;
      return false;
    };
    while (first < samples.length && !inStack(samples[first]!)) first++;
    if (first === samples.length) first = 0; // never reached: keep everything
  }
  let skipped = 0;
  for (let i = 1; i <= first && i < timeDeltas.length; i++) skipped += timeDeltas[i]! / 1000;

  // Self time per node: each sample lasts until the next one.
  const self = new Map<number, number>();
  let wall = 0;
  for (let i = first; i < samples.length; i++) {
    const dt = (timeDeltas[i + 1] ?? 0) / 1000;
    wall += dt;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + dt);
  }

  let busy = 0;
  const areas = new Map<string, number>();
  const fns = new Map<string, { area: string; ms: number }>();
  for (const [id, ms] of self) {
    const frame = byId.get(id)!.callFrame;
    const area = areaOf(frame);
    if (area === "idle") continue;
    busy += ms;
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const key = frameName(frame);
    const f = fns.get(key) ?? { area, ms: 0 };
    f.ms += ms;
    fns.set(key, f);
  }

  // Inclusive time of gateway functions, each counted once per stack (recursion-safe).
  const inclusive = new Map<string, number>();
  for (const [id, ms] of self) {
    if (areaOf(byId.get(id)!.callFrame) === "idle") continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parentOf.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (!frame.url.includes("/dist/src/")) continue;
      const key = frameName(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + ms);
    }
  }

  const pct = (ms: number): number => (busy > 0 ? (ms / busy) * 100 : 0);
  return {
    wallMs: wall,
    skippedMs: skipped,
    busyMs: busy,
    areas: [...areas].map(([name, ms]) => ({ name, area: name, ms, pct: pct(ms) })).sort((a, b) => b.ms - a.ms),
    selfTop: [...fns]
      .map(([name, f]) => ({ name, area: f.area, ms: f.ms, pct: pct(f.ms) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top),
    gatewayInclusive: [...inclusive]
      .map(([name, ms]) => ({ name, area: "gateway src/", ms, pct: pct(ms) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top),
  };
}

/**
 * The summary as Markdown. `units` (e.g. 40,000 requests) adds a µs-per-unit column: the
 * busy time per unit, split by each row's share. Sampled time is wall-clock time on the
 * main thread, so on a machine where others compete for the CPU it overstates CPU time;
 * shares hold up better than absolute figures.
 */
export function formatProfile(s: ProfileSummary, title: string, units?: { count: number; what: string }): string {
  const per = (ms: number): string => (units !== undefined && units.count > 0 ? ` | ${((ms * 1000) / units.count).toFixed(2)}` : "");
  const perHead = units !== undefined ? ` | µs per ${units.what}` : "";
  const perSep = units !== undefined ? " | --:" : "";
  const lines: string[] = [];
  lines.push(`### ${title}`, "");
  lines.push(
    `Profile ${(s.wallMs / 1000).toFixed(1)} s after ${(s.skippedMs / 1000).toFixed(1)} s of start-up (dropped), main thread busy ${(s.busyMs / 1000).toFixed(2)} s` +
      (units !== undefined && units.count > 0 ? `, ${units.count.toLocaleString("en-US")} ${units.what}s: ${((s.busyMs * 1000) / units.count).toFixed(1)} µs busy per ${units.what}` : "") +
      ".",
    "",
  );
  lines.push(`| area | self ms | % of busy${perHead} |`, `| --- | --: | --:${perSep} |`);
  for (const r of s.areas) lines.push(`| ${r.name} | ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)}${per(r.ms)} |`);
  lines.push("", `| top self-time functions | area | self ms | % of busy |`, "| --- | --- | --: | --: |");
  for (const r of s.selfTop) lines.push(`| \`${r.name}\` | ${r.area} | ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)} |`);
  lines.push("", `| gateway src/ functions, inclusive | ms | % of busy${perHead} |`, `| --- | --: | --:${perSep} |`);
  for (const r of s.gatewayInclusive) lines.push(`| \`${r.name}\` | ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)}${per(r.ms)} |`);
  return lines.join("\n");
}

/** Self time of one profile's samples that fall in some windows. */
export interface WindowedSelf {
  /** Sampled non-idle time in the windows, µs. */
  readonly busyUs: number;
  /** Non-idle self time by function (frameName), µs. */
  readonly self: ReadonlyMap<string, number>;
}

/**
 * Self time of the samples inside `windows` ([from, to] in µs of the monotonic clock:
 * `process.hrtime.bigint() / 1000n` in any process of the machine, the clock V8 stamps
 * profiles with), one result per list of windows: so one process's profile can be split
 * into the phases another process drove (bench/admission.ts' paired profile).
 */
export function selfInWindows(file: string, lists: readonly (readonly (readonly [number, number])[])[]): WindowedSelf[] {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const out = lists.map(() => ({ busyUs: 0, self: new Map<string, number>() }));
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const dt = profile.timeDeltas[i + 1] ?? 0; // a sample lasts until the next one
    const frame = byId.get(profile.samples[i]!)!.callFrame;
    if (areaOf(frame) === "idle") continue;
    const k = lists.findIndex((ws) => ws.some(([from, to]) => t >= from && t < to));
    if (k === -1) continue;
    const o = out[k]!;
    o.busyUs += dt;
    const name = frameName(frame);
    o.self.set(name, (o.self.get(name) ?? 0) + dt);
  }
  return out;
}
