/**
 * Runs the built CLI (dist/src/cli/main.js, which `npm test` builds first) as a child
 * process, with only the environment the test gives it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../dist/src/cli/main.js", import.meta.url));

export interface CliRun {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process has exited and its output is closed. */
  readonly exited: Promise<number | null>;
  /** Resolves once stdout matches; rejects after `ms` or when the process exits first. */
  waitForStdout(pattern: RegExp, ms?: number): Promise<void>;
}

export function runCli(args: readonly string[], env: Record<string, string> = {}): CliRun {
  // A developer's own AIGW_API_KEY or NO_COLOR must not leak in.
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env["PATH"] ?? "", ...env } });
  child.stdin.end();
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  const changed = (): void => {
    for (const l of [...listeners]) l();
  };
  child.stdout.on("data", (b: Buffer) => {
    out += b.toString();
    changed();
  });
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  void exited.then(changed);

  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForStdout: (pattern, ms = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`stdout never matched ${pattern} within ${ms} ms: ${JSON.stringify(out)}; stderr: ${err}`)), ms);
        const check = (): void => {
          if (pattern.test(out)) done();
          else if (child.exitCode !== null) done(new Error(`the CLI exited (${child.exitCode}) before stdout matched ${pattern}: ${JSON.stringify(out)}; stderr: ${err}`));
        };
        const done = (e?: Error): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (e) reject(e);
          else resolve();
        };
        listeners.add(check);
        check();
      }),
  };
}

/** Runs to the end: exit code and output. */
export async function cli(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = runCli(args, env);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}
