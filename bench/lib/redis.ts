/**
 * A redis-server for a benchmark (Debian's package): 127.0.0.1, a free port, no
 * persistence, its own process group like every bench process (proc.ts), stopped with them.
 */
import { freePort, start, type Proc } from "./proc.js";

export interface BenchRedis {
  readonly proc: Proc;
  readonly url: string;
}

export async function startRedis(cpus: string | undefined): Promise<BenchRedis> {
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "notice"];
  const proc = start("redis-server", "redis-server", args, { cpus, env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } });
  await proc.waitForLine((l) => l.includes("Ready to accept connections"), 10_000);
  return { proc, url: `redis://127.0.0.1:${port}` };
}
