/** What every scenario gets: the settings, the scratch directory and snapshot, notes for the report. */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { waitQuiet } from "./proc.js";
import type { Group, Layout, Settings } from "./settings.js";

/** The repository (this file runs from dist/bench/lib/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export interface Ctx {
  readonly s: Settings;
  readonly layout: Layout;
  /** Scratch directory: logs, bodies, profiles, results.json. */
  readonly work: string;
  /** A copy of dist/ the processes run from, so a rebuild during the run changes nothing. */
  readonly snapshot: string;
  readonly shim: boolean;
  readonly grpcBodyFile: string;
  readonly jsonBodyFile: string;
  readonly notes: string[];
  /** Scenario groups to run (--only). */
  readonly groups: ReadonlySet<Group>;
  /** Extra node options for the gateway process (--gateway-node-args), for before/after experiments. */
  readonly gatewayNodeArgs: readonly string[];
  /** Extra environment for every gateway (--gateway-env K=V,K=V), e.g. METRICS_ENABLED=false. */
  readonly gatewayEnv: Readonly<Record<string, string>>;
}

export function note(ctx: Ctx, text: string): void {
  if (!ctx.notes.includes(text)) ctx.notes.push(text);
  process.stderr.write(`bench: ${text}\n`);
}


export function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

/** Before a measured run: give other processes' bursts (builds, tests) a chance to pass, and say so if they do not. */
export async function quiet(ctx: Ctx, what: string): Promise<void> {
  const busy = await waitQuiet(ctx.s.quietWaitMs);
  if (busy >= 15) note(ctx, `the machine was busy (${busy.toFixed(0)}% of a core used by other processes) when "${what}" started; see the "other" CPU figures`);
}
