/**
 * What this machine charges a process for waiting idle, by how long it waits: the figure
 * that explains why a c=1 round trip (to Redis, to the fake upstream) can cost far more
 * than the two processes' work.
 *
 *   npm run build && node dist/bench/micro/idle-wake.js [--samples N] [--work LIST]
 *
 * Two processes on 127.0.0.1, pinned to different CPUs where taskset exists (this one on
 * CPU 1, as the gateway; the answerer on CPU 0, as redis-server and the fake): this one
 * sends 8 bytes, the answerer busy-works for the asked number of µs (a stand-in for
 * redis-server running a script) and answers. Per amount of work, the round trip's p50
 * and what it adds to the work, first with this process waiting in epoll as any Node
 * server does ("idle"), then with its event loop kept spinning by setImmediate while the
 * answer is due ("spinning": its CPU never halts). The spinning row is a control, not a
 * proposal: it shows what of the idle row is the CPU waking up rather than the network
 * stack.
 *
 * Why it exists: on the 2-core VM of 2026-12-01, at 22:58 UTC, an EVALSHA whose script ran
 * ≤ 180 µs came back ≈ 100 µs after the script, one that ran ≥ 185 µs ≈ 400 µs after it (a
 * step, not a slope; KVM polls a halted vCPU for up to its halt_poll_ns, 200 µs by default,
 * before it sleeps it, and waking a sleeping one costs the host a schedule). At 23:15 the
 * same test and this one showed no step: +70-150 µs whatever the wait. So the machine's
 * price for an idle wait changes from one hour to the next; run this next to a c=1 figure
 * to know which machine it was measured on.
 *
 * Bounded: N samples per row (1000 by default); the answerer exits with this process.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createConnection, createServer, type AddressInfo, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { hasTaskset, pinSelf } from "../lib/proc.js";
import { percentile } from "../lib/stats.js";

const CHILD = "--answerer";

/** Busy-works `us` µs: what a server does between reading a request and answering it. */
function work(us: number): void {
  const end = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
  while (process.hrtime.bigint() < end);
}

async function answerer(): Promise<void> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on("data", (b: Buffer) => {
      // One 8-byte request per answer (the other side never has two in flight).
      work(b.readDoubleLE(0));
      socket.write(b);
    });
  });
  server.listen(0, "127.0.0.1", () => process.send?.((server.address() as AddressInfo).port));
  process.on("disconnect", () => process.exit(0));
}

function startAnswerer(): Promise<{ child: ChildProcess; port: number }> {
  const self = new URL(import.meta.url).pathname;
  // Pinned through taskset, as bench/lib/proc.ts does for the gateway's peers.
  const child = hasTaskset() ? fork(self, [CHILD], { execPath: "taskset", execArgv: ["-c", "0", process.execPath] }) : fork(self, [CHILD]);
  return new Promise((resolve, reject) => {
    child.once("message", (port) => resolve({ child, port: Number(port) }));
    child.once("exit", (code) => reject(new Error(`the answerer exited (${code})`)));
  });
}

/** `samples` round trips asking for `us` µs of work each; µs per round trip, sorted. */
async function roundTrips(socket: Socket, us: number, samples: number, spin: boolean): Promise<number[]> {
  const out: number[] = [];
  const request = Buffer.alloc(8);
  request.writeDoubleLE(us, 0);
  for (let i = 0; i < samples; i++) {
    const started = process.hrtime.bigint();
    let answered = false;
    const reply = once(socket, "data").then(() => (answered = true));
    socket.write(request);
    if (spin) {
      // Keep the loop busy until the answer is in (libuv then polls with a zero timeout).
      await new Promise<void>((resolve) => {
        const again = (): void => void (answered ? resolve() : setImmediate(again));
        setImmediate(again);
      });
    }
    await reply;
    out.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return out.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { samples: { type: "string" }, work: { type: "string" } } });
  const samples = Number(values.samples ?? 1000);
  const amounts = (values.work ?? "0,50,100,150,200,250,300,500,1000").split(",").map(Number);
  if (!Number.isInteger(samples) || samples < 1 || amounts.some((x) => !Number.isFinite(x) || x < 0)) throw new Error("--samples N (≥ 1) and --work a,b,c (µs ≥ 0)");
  pinSelf("1");
  const { child, port } = await startAnswerer();
  const socket = createConnection({ port, host: "127.0.0.1", noDelay: true });
  await once(socket, "connect");
  try {
    await roundTrips(socket, 0, Math.min(200, samples), false); // warm-up
    console.log(`Round trip to a process on another CPU that works W µs before answering (${samples} samples a row${hasTaskset() ? "; this process on CPU 1, the answerer on CPU 0" : "; not pinned"}):\n`);
    console.log("| work W, µs | idle: p50 µs | idle: added to W | spinning: p50 µs | spinning: added to W |");
    console.log("|--:|--:|--:|--:|--:|");
    for (const us of amounts) {
      const idle = await roundTrips(socket, us, samples, false);
      const spinning = await roundTrips(socket, us, samples, true);
      const p50 = (sorted: number[]): number => percentile(sorted, 50);
      console.log(`| ${us} | ${p50(idle).toFixed(0)} | +${(p50(idle) - us).toFixed(0)} | ${p50(spinning).toFixed(0)} | +${(p50(spinning) - us).toFixed(0)} |`);
    }
  } finally {
    socket.destroy();
    child.kill();
  }
}

if (process.argv.includes(CHILD)) void answerer();
else await main();
