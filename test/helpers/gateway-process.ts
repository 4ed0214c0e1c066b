/**
 * The gateway as a child process, as `npm start` runs it (dist/src/main.js, which
 * `npm test` builds first). For tests about the process itself (signals, exit codes,
 * start-up lines) and for fleets: several gateways sharing one Redis, rolling restarts.
 *
 * Log lines are pino JSON on stdout; `line(msg)` resolves when one arrives (event-driven,
 * bounded by a timeout, never a poll-and-sleep). stop() sends SIGTERM and waits for the
 * exit; kill() is the SIGKILL of last resort, safe to call in every `finally`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const MAIN = fileURLToPath(new URL("../../dist/src/main.js", import.meta.url));

export type LogLine = Record<string, unknown>;

export interface GatewayProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Every JSON log line so far, in order. */
  lines(): LogLine[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** The first line (already seen or still to come) whose `msg` is `msg` and that `match` accepts. */
  line(msg: string, match?: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL if still running; never throws. */
  kill(): void;
}

export interface Listening {
  /** host:port of the gRPC listener. */
  readonly grpc: string;
  /** host:port of the HTTP shim, or undefined when it is off. */
  readonly http: string | undefined;
}

export interface SpawnOptions {
  /** Default: the repository's root. */
  readonly cwd?: string;
  /** Its own process group (pid = pgid), so a test can signal the group as a terminal's Ctrl-C does. */
  readonly detached?: boolean;
}

/** The repository's root (where package.json is). */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Spawns the gateway with exactly `env` (plus PATH): a developer's own CEREBRAS_API_KEY or
 * REDIS_URL must never leak into a test.
 */
export function spawnGateway(env: Record<string, string>, args: readonly string[] = [MAIN]): GatewayProcess {
  return spawnLogged(process.execPath, args, env);
}

/**
 * `npm start` as a user types it, from the repository's root, with exactly `env` (plus
 * PATH and HOME, which npm needs). `child` is npm; the gateway is its child.
 */
export function spawnNpmStart(env: Record<string, string>, options: SpawnOptions = {}): GatewayProcess {
  return spawnLogged("npm", ["start", "--silent"], { HOME: process.env["HOME"] ?? "/tmp", ...env }, options);
}

/** Pids of a process's direct children (Linux /proc). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Pids of a process's children, their children and so on. */
export function descendantPids(pid: number): number[] {
  return childPids(pid).flatMap((c) => [c, ...descendantPids(c)]);
}

/** Whether a process with this pid exists (a zombie counts until it is reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Any command whose stdout is pino JSON lines, with exactly `env` plus PATH. */
export function spawnLogged(command: string, args: readonly string[], env: Record<string, string>, options: SpawnOptions = {}): GatewayProcess {
  const child = spawn(command, [...args], { cwd: options.cwd ?? ROOT, detached: options.detached === true, env: { PATH: process.env["PATH"] ?? "", ...env } });
  const lines: LogLine[] = [];
  const waiters: Array<{ msg: string; match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let partial = "";
  let err = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (text: string) => {
    partial += text;
    let nl = partial.indexOf("\n");
    while (nl !== -1) {
      const raw = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      nl = partial.indexOf("\n");
      if (!raw.startsWith("{")) continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (line["msg"] === w.msg && w.match(line)) {
          waiters.splice(i, 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));

  const line = (msg: string, match: (l: LogLine) => boolean = () => true, timeoutMs = 10_000): Promise<LogLine> => {
    const seen = lines.find((l) => l["msg"] === msg && match(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i !== -1) waiters.splice(i, 1);
        reject(new Error(`no "${msg}" log line within ${timeoutMs} ms; stderr: ${err}`));
      }, timeoutMs);
      const waiter = {
        msg,
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(waiter);
      void exited.then((code) => {
        const i = waiters.indexOf(waiter);
        if (i === -1) return;
        waiters.splice(i, 1);
        clearTimeout(timer);
        reject(new Error(`the gateway exited (${code}) before a "${msg}" log line; stderr: ${err}`));
      });
    });
  };

  return {
    child,
    lines: () => lines,
    stderr: () => err,
    line,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Waits for the "listening" line and returns where the gateway listens. */
export async function listening(p: GatewayProcess, timeoutMs?: number): Promise<Listening> {
  const l = await p.line("listening", undefined, timeoutMs);
  const http = l["http"];
  return { grpc: String(l["grpc"]), http: typeof http === "string" && http !== "off" ? http : undefined };
}

/** A gateway process once it listens: where, and its log lines. */
export interface StartedGateway {
  readonly process: GatewayProcess;
  readonly at: Listening;
  /** The gRPC port (to restart a replica on the same one). */
  readonly grpcPort: number;
}

/** Spawns the gateway and waits for its "listening" line; kills it if it never comes. */
export async function startGatewayProcess(env: Record<string, string>, timeoutMs?: number): Promise<StartedGateway> {
  const p = spawnGateway(env);
  try {
    const at = await listening(p, timeoutMs);
    return { process: p, at, grpcPort: Number(at.grpc.slice(at.grpc.lastIndexOf(":") + 1)) };
  } catch (err) {
    p.kill();
    throw err;
  }
}

/** The calls a gateway process has logged so far (one "call" line each), optionally only those `match` accepts. */
export function loggedCalls(p: GatewayProcess, match: (line: LogLine) => boolean = () => true): LogLine[] {
  return p.lines().filter((l) => l["msg"] === "call" && match(l));
}
