/**
 * The benchmark suite (issue 8): `npm run bench [-- --quick] [-- --rounds N] [-- --only …] [-- --profile]`.
 *
 * Processes: the fake Cerebras (dist/src/fake-upstream/main.js), the gateway
 * (dist/src/main.js, configured only through its environment), and a load generator
 * (h2load for unary, dist/bench/loadgen.js for streams), each started in its own process
 * group, pinned with taskset where the machine has the cores, and always stopped.
 * Every gateway figure is printed next to the same figure measured direct to the fake
 * upstream in the same round. All traffic stays on 127.0.0.1. See bench/README.md.
 *
 * This file parses the options, runs the selected scenarios round by round and prints the
 * tables. Each scenario is a file of bench/scenarios/ (paced.ts runs the ones that share a
 * fake upstream: unary.ts, http.ts, stream.ts, floor.ts, info.ts; then relay.ts, memory.ts;
 * profile.ts for --profile); the processes, loads, rows and report are in bench/lib/.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { log, note, ROOT, type Ctx } from "./lib/context.js";
import { hasCommand, pinSelf, stopAll } from "./lib/proc.js";
import { machine, table, targets } from "./lib/report.js";
import { rows } from "./lib/rows.js";
import { GROUPS, layout, settings, type Group } from "./lib/settings.js";
import { grpcRequestBody, jsonRequestBody } from "./lib/wire.js";
import { memoryScenario } from "./scenarios/memory.js";
import { pacedRound } from "./scenarios/paced.js";
import { profile } from "./scenarios/profile.js";
import { capacityScenario, capacityTable } from "./scenarios/capacity.js";
import { relayScenario } from "./scenarios/relay.js";

/** Snapshots to remove at the end. */
const snapshotDirs: string[] = [];

/** "K=V,K=V" → { K: V }; the variables the bench itself sets (ports, upstream, key) cannot be overridden. */
function parseEnvList(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? "").split(",").filter((p) => p.trim() !== "")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--gateway-env: expected K=V, got "${pair}"`);
    const key = pair.slice(0, eq).trim();
    if (["CEREBRAS_API_KEY", "CEREBRAS_BASE_URL", "GRPC_HOST", "GRPC_PORT", "HTTP_HOST", "HTTP_PORT", "LOG_LEVEL"].includes(key)) throw new Error(`--gateway-env: ${key} is set by the bench`);
    out[key] = pair.slice(eq + 1);
  }
  return out;
}

function snapshot(work: string): string {
  const dist = join(ROOT, "dist");
  for (const need of ["src/main.js", "src/fake-upstream/main.js", "bench/loadgen.js", "gen/descriptor.js"]) {
    if (!existsSync(join(dist, need))) throw new Error(`dist/${need} is missing: run \`npm run build\` (npm run bench does)`);
  }
  const snap = join(work, "snapshot");
  for (const d of ["src", "gen", "bench"]) cpSync(join(dist, d), join(snap, "dist", d), { recursive: true });
  cpSync(join(ROOT, "package.json"), join(snap, "package.json"));
  symlinkSync(join(ROOT, "node_modules"), join(snap, "node_modules"), "dir");
  snapshotDirs.push(snap);
  return snap;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      profile: { type: "boolean", default: false },
      json: { type: "string" },
      only: { type: "string" },
      "gateway-node-args": { type: "string" },
      "gateway-env": { type: "string" },
      "capacity-rate": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench [-- --quick] [-- --rounds N] [-- --only ${GROUPS.join(",")}] [-- --gateway-node-args="--flag ..."] [-- --gateway-env=K=V,K=V] [-- --capacity-rate TOKENS_PER_S] [-- --profile] [-- --json FILE]\n`);
    return;
  }
  const only = (values.only ?? GROUPS.join(",")).split(",").map((g) => g.trim());
  for (const g of only) if (!(GROUPS as readonly string[]).includes(g)) throw new Error(`--only: unknown group "${g}" (groups: ${GROUPS.join(", ")})`);
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) throw new Error("--rounds must be an integer 1-10");
  if (!hasCommand("h2load")) {
    throw new Error("h2load not found: install Debian's nghttp2-client (apt-get install -y nghttp2-client); see bench/README.md");
  }

  const capacityRate = values["capacity-rate"] === undefined ? undefined : Number(values["capacity-rate"]);
  if (capacityRate !== undefined && !(Number.isFinite(capacityRate) && capacityRate >= 10 && capacityRate <= 20_000)) throw new Error("--capacity-rate must be 10-20000 tokens/s");
  const s = settings(values.quick, rounds, capacityRate);
  const lay = layout(availableParallelism());
  const work = mkdtempSync(join(tmpdir(), "gateway-bench-"));
  const snap = snapshot(work);
  const shim = readFileSync(join(snap, "dist/src/config.js"), "utf8").includes("HTTP_PORT");
  const grpcBodyFile = join(work, "unary.grpc");
  const jsonBodyFile = join(work, "unary.json");
  writeFileSync(grpcBodyFile, grpcRequestBody());
  writeFileSync(jsonBodyFile, jsonRequestBody(false));
  const ctx: Ctx = { s, layout: lay, work, snapshot: snap, shim, grpcBodyFile, jsonBodyFile, notes: [], groups: new Set(only as Group[]), gatewayNodeArgs: (values["gateway-node-args"] ?? "").split(" ").filter((a) => a !== ""), gatewayEnv: parseEnvList(values["gateway-env"]) };
  if (ctx.gatewayNodeArgs.length > 0) note(ctx, `gateway started with extra node options: ${ctx.gatewayNodeArgs.join(" ")}`);
  if (Object.keys(ctx.gatewayEnv).length > 0) note(ctx, `gateway started with extra environment: ${Object.entries(ctx.gatewayEnv).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  if (lay.loadgen !== undefined) {
    // The bench process itself stays off the gateway's core (its children are pinned explicitly).
    pinSelf(lay.loadgen);
  }
  if (!shim) note(ctx, "no HTTP_PORT in src/config.ts yet: the HTTP shim rows are skipped (they run by themselves once it exists)");
  log(`scratch directory ${work}; pinning: ${lay.description}`);

  const header = [`Machine: ${machine()}`, "", `Pinning: ${lay.description}.`, ""];
  if (values.profile) {
    const md = await profile(ctx);
    writeFileSync(join(work, "profile.md"), md);
    process.stdout.write(`${header.join("\n")}\n${md}\n\nProfiles: ${join(work, "profiles")}\n`);
    return;
  }

  const started = Date.now();
  for (let round = 1; round <= s.rounds; round++) {
    if (ctx.groups.has("unary") || ctx.groups.has("stream") || ctx.groups.has("info") || ctx.groups.has("floor")) await pacedRound(ctx, round);
    if (ctx.groups.has("relay")) await relayScenario(ctx, round);
    if (ctx.groups.has("memory")) await memoryScenario(ctx, round);
    if (ctx.groups.has("capacity")) await capacityScenario(ctx, round);
  }
  const checks = targets(ctx);
  const report = [
    `## Results${s.quick ? " (--quick: short smoke run, not for comparison)" : ""}`,
    "",
    ...header,
    table(),
    "",
    ...(ctx.groups.has("capacity") ? [capacityTable(s.capacityRate), ""] : []),
    "Targets (issue 8), each judged on the worse round:",
    "",
    "| target | measured | | the floor measured |",
    "| --- | --: | --- | --: |",
    ...checks.map((c) => `| ${c.target} | ${c.measured} | ${c.pass === undefined ? "–" : c.pass ? "met" : "**missed**"} | ${c.floor ?? ""} |`),
    "",
    ...(ctx.notes.length > 0 ? ["Notes:", "", ...ctx.notes.map((n) => `- ${n}`), ""] : []),
    `${s.rounds} round(s) in ${((Date.now() - started) / 1000).toFixed(0)} s; logs and results.json in ${work}`,
  ].join("\n");
  writeFileSync(join(work, "results.json"), JSON.stringify({ machine: machine(), layout: lay, settings: s, rows, checks, notes: ctx.notes }, null, 2));
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ machine: machine(), layout: lay, settings: s, rows, checks, notes: ctx.notes }, null, 2));
  process.stdout.write(`${report}\n`);
}

// Signals: bench/lib/proc.ts stops every process the bench started, then exits.

main()
  .then(async () => {
    await stopAll();
    cleanupSnapshot();
  })
  .catch(async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await stopAll();
    cleanupSnapshot();
    process.exit(1);
  });

/** The copied dist/ is only for the run; logs, profiles and results stay. */
function cleanupSnapshot(): void {
  for (const dir of snapshotDirs) {
    rmSync(join(dir, "dist"), { recursive: true, force: true });
    rmSync(join(dir, "node_modules"), { force: true });
  }
}
