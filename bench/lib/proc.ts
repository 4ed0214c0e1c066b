/**
 * Child processes for the bench: each in its own process group (so a stop reaches
 * everything it started), optionally pinned with taskset, and always stopped: stop() on
 * the normal path, stopAll() on failure or on a signal (SIGINT, SIGTERM, SIGHUP), and a
 * synchronous SIGKILL of every live group when the bench process exits. CPU time and RSS are read from /proc.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface StartOptions {
  /** taskset CPU list, e.g. "1"; undefined: not pinned. */
  readonly cpus?: string | undefined;
  /** The whole environment of the child (nothing is inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** stdout goes to this file (appended) instead of a pipe. */
  readonly stdoutFile?: string | undefined;
  /** stderr is also appended to this file. */
  readonly stderrFile?: string | undefined;
  readonly cwd?: string | undefined;
  /** Keep a pipe to the child's stdin (Proc.send). */
  readonly stdin?: boolean | undefined;
}

export class Proc {
  readonly exited: Promise<number | null>;
  private readonly lineListeners: Array<(line: string) => void> = [];
  private stderrText = "";
  private exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    stderrFile?: string,
  ) {
    if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.exitCode = code ?? (signal === null ? null : 128);
        live.delete(this);
        resolve(code);
      });
      child.on("error", (err) => {
        this.stderrText += `spawn error: ${err.message}\n`;
        this.exitCode = -1;
        live.delete(this);
        resolve(-1);
      });
    });
    let partial = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (text: string) => {
      partial += text;
      let nl = partial.indexOf("\n");
      while (nl !== -1) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        for (const l of this.lineListeners) l(line);
        nl = partial.indexOf("\n");
      }
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (text: string) => {
      this.stderrText = (this.stderrText + text).slice(-8192);
      if (stderrFile !== undefined) appendFileSync(stderrFile, text);
    });
    live.add(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  stderr(): string {
    return this.stderrText;
  }

  /** Writes one line to the child's stdin (started with `stdin: true`). */
  send(line: string): void {
    if (this.child.stdin === null) throw new Error(`${this.name}: started without a stdin pipe`);
    this.child.stdin.write(`${line}\n`);
  }

  onLine(listener: (line: string) => void): void {
    this.lineListeners.push(listener);
  }

  /** The next stdout line that satisfies `match`, within `ms`. */
  waitForLine(match: (line: string) => boolean, ms: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no expected output line within ${ms} ms; stderr: ${this.stderrText.slice(-2000)}`)), ms);
      this.lineListeners.push((line) => {
        if (match(line)) {
          clearTimeout(timer);
          resolve(line);
        }
      });
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code}) before the expected output; stderr: ${this.stderrText.slice(-2000)}`));
      });
    });
  }

  /** SIGTERM to the group, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 5000): Promise<number | null | undefined> {
    if (!this.running) return this.exitCode;
    killGroup(this.pid, "SIGTERM");
    if (await Promise.race([this.exited.then(() => true), sleep(graceMs, undefined, { ref: false }).then(() => false)])) return this.exitCode;
    killGroup(this.pid, "SIGKILL");
    await Promise.race([this.exited, sleep(2000, undefined, { ref: false })]);
    return this.exitCode;
  }

  /**
   * utime + stime in clock ticks (all threads; `mainThread`: the main thread's alone, the
   * one that runs JavaScript, without V8's GC and compiler helpers or libuv's pool), or
   * undefined once the process is gone.
   */
  cpuTicks(mainThread = false): number | undefined {
    try {
      const stat = readFileSync(mainThread ? `/proc/${this.pid}/task/${this.pid}/stat` : `/proc/${this.pid}/stat`, "latin1");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // fields[0] is field 3 (state); utime is field 14, stime field 15.
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return undefined;
    }
  }

  /** Open file descriptors (sockets included), or undefined once the process is gone. */
  fdCount(): number | undefined {
    try {
      return readdirSync(`/proc/${this.pid}/fd`).length;
    } catch {
      return undefined;
    }
  }

  /** Resident set size in bytes, or undefined once the process is gone. */
  rssBytes(): number | undefined {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, "latin1");
      const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
      return m === null ? undefined : Number(m[1]) * 1024;
    } catch {
      return undefined;
    }
  }
}

const live = new Set<Proc>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Last resort: whatever is still running when the bench process exits is killed. */
process.on("exit", () => {
  for (const p of live) killGroup(p.pid, "SIGKILL");
});

/**
 * Ctrl-C, SIGTERM or SIGHUP: every process the bench started is stopped (SIGTERM, then
 * SIGKILL), then the bench exits 128 + the signal's number; a second signal exits at once
 * (the "exit" hook above still kills them). Without this a signal's default action ends
 * the process without "exit", and the children, each in a process group of its own, go
 * on running. Every bench entry point imports this module, so each gets it.
 */
let stopping = false;
for (const [signal, number] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(128 + number);
    stopping = true;
    // A process that started none (a bench's own child, say) just exits, as the signal's default would.
    if (live.size > 0) process.stderr.write(`bench: ${signal}: stopping every process the bench started\n`);
    void stopAll().finally(() => process.exit(128 + number));
  });
}

/** Stops every process still running (failure path). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(2000)));
}

let tasksetOk: boolean | undefined;

export function hasTaskset(): boolean {
  if (tasksetOk === undefined) {
    try {
      execFileSync("taskset", ["-c", "0", "true"], { stdio: "ignore", timeout: 5000 });
      tasksetOk = true;
    } catch {
      tasksetOk = false;
    }
  }
  return tasksetOk;
}

/** Moves this process, every thread of it, to `cpus` (a taskset list, e.g. "1"); nothing where taskset is missing. */
export function pinSelf(cpus: string): void {
  if (hasTaskset()) execFileSync("taskset", ["-a", "-pc", cpus, String(process.pid)], { stdio: "ignore", timeout: 5000 });
}

export function hasCommand(cmd: string, args: string[] = ["--version"]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore", timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export function start(name: string, cmd: string, args: readonly string[], options: StartOptions): Proc {
  const pinned = options.cpus !== undefined && hasTaskset();
  const file = pinned ? "taskset" : cmd;
  const argv = pinned ? ["-c", options.cpus!, cmd, ...args] : [...args];
  const out = options.stdoutFile === undefined ? "pipe" : openSync(options.stdoutFile, "a");
  try {
    // detached: its own process group, so stop() reaches anything it starts in turn.
    const child = spawn(file, argv, { env: { ...options.env }, cwd: options.cwd, detached: true, stdio: [options.stdin === true ? "pipe" : "ignore", out, "pipe"] });
    return new Proc(name, child, options.stderrFile);
  } finally {
    if (typeof out === "number") closeSync(out);
  }
}

export const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8", timeout: 5000 }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Busy jiffies of the whole machine (all CPUs): everything but idle and iowait. */
export function machineBusyTicks(): number {
  try {
    const line = readFileSync("/proc/stat", "latin1").split("\n", 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU use of some processes over a window, as % of one core, plus "other": what the rest
 * of the machine used meanwhile (other people's builds and tests on a shared machine make
 * a benchmark noisy, so the table shows it), and "NAME:main" for each process's main thread.
 */
export class CpuWindow {
  private readonly startTicks = new Map<Proc, number | undefined>();
  private readonly startMain = new Map<Proc, number | undefined>();
  private readonly startMachine = machineBusyTicks();
  private readonly startedAt = performance.now();

  constructor(private readonly procs: readonly Proc[]) {
    for (const p of procs) {
      this.startTicks.set(p, p.cpuTicks());
      this.startMain.set(p, p.cpuTicks(true));
    }
  }

  /** Per process name (and "other"): % of one core since the window opened. */
  end(): Record<string, number> {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const out: Record<string, number> = {};
    if (seconds <= 0) return out;
    const pct = (ticks: number): number => (ticks / CLOCK_TICKS_PER_SECOND / seconds) * 100;
    let ours = 0;
    for (const p of this.procs) {
      const a = this.startTicks.get(p);
      const b = p.cpuTicks();
      if (a !== undefined && b !== undefined) {
        out[p.name] = pct(b - a);
        ours += b - a;
      }
      const ma = this.startMain.get(p);
      const mb = p.cpuTicks(true);
      if (ma !== undefined && mb !== undefined) out[`${p.name}:main`] = pct(mb - ma);
    }
    const machine = machineBusyTicks() - this.startMachine;
    if (!Number.isNaN(machine)) out["other"] = Math.max(0, pct(machine - ours));
    return out;
  }
}

/**
 * Waits (at most `maxMs`) until the machine is nearly idle: less than `thresholdPct` of one
 * core busy over a 500 ms sample. Returns the last sample's busy %.
 */
export async function waitQuiet(maxMs: number, thresholdPct = 15): Promise<number> {
  const end = performance.now() + maxMs;
  for (;;) {
    const a = machineBusyTicks();
    await sleep(500);
    const busy = ((machineBusyTicks() - a) / CLOCK_TICKS_PER_SECOND / 0.5) * 100;
    if (Number.isNaN(busy) || busy < thresholdPct || performance.now() >= end) return busy;
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
