/**
 * A real redis-server (Debian's package; `.ci/run` installs it) on 127.0.0.1 with a free
 * port, started by the test that needs it and stopped by it. No persistence, no config
 * file: each server starts empty. `kill()` then `start()` again on the same port is how
 * tests take Redis away under traffic and bring it back.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import type { RedisTarget } from "../../src/redis/client.js";
import { untilAsync } from "./wait.js";

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port>, or rediss://localhost:<port> over TLS */
  readonly url: string;
  /** The same, as the stores take it. */
  readonly target: RedisTarget;
  /** Whether the server process is running. */
  readonly running: boolean;
  /** Starts it again on the same port, empty (after kill()). */
  start(): Promise<void>;
  /** SIGKILL: connections drop at once, as when a Redis host dies. */
  kill(): Promise<void>;
  /** Stops it for good. */
  stop(): Promise<void>;
}

const READY = /Ready to accept connections/;

const TLS_DIR = join(dirname(fileURLToPath(import.meta.url)), "../fixtures/tls");
/** The CA that signed the servers' certificate (localhost, 127.0.0.1): what a client of a TLS server started here must trust (NODE_EXTRA_CA_CERTS for a gateway process). */
export const REDIS_TLS_CA = join(TLS_DIR, "ca.pem");

/**
 * A server that takes only TLS on `port` (no client certificates asked of clients), with
 * test/fixtures/tls' server certificate; its own outgoing connections (a cluster's bus, a
 * replica's link) present the client certificate, since the server one is for serverAuth only.
 */
function tlsArgs(port: number): string[] {
  const f = (name: string): string => join(TLS_DIR, name);
  return ["--port", "0", "--tls-port", String(port), "--tls-cert-file", f("server.pem"), "--tls-key-file", f("server.key"), "--tls-client-cert-file", f("client.pem"), "--tls-client-key-file", f("client.key"), "--tls-ca-cert-file", REDIS_TLS_CA, "--tls-auth-clients", "no"];
}

/** Options of the servers started here: TLS only (test/fixtures/tls), a password (requirepass, and masterauth for replicas). */
export interface ServerOptions {
  readonly tls?: boolean;
  readonly password?: string;
}

/** `--requirepass` (and `--masterauth`, for a replica's link) when there is a password. */
function authArgs(o: ServerOptions): string[] {
  return o.password === undefined ? [] : ["--requirepass", o.password, "--masterauth", o.password];
}

/** The URL of a server started here on `port`: rediss://localhost (the certificate's name) over TLS, the password in it. */
function urlOf(port: number, o: ServerOptions): string {
  const auth = o.password === undefined ? "" : `:${encodeURIComponent(o.password)}@`;
  return o.tls === true ? `rediss://${auth}localhost:${port}` : `redis://${auth}127.0.0.1:${port}`;
}

/** A plain client on a node started here (TLS trusting REDIS_TLS_CA, the password), quiet about a node a test killed. */
function adminOf(port: number, o: ServerOptions): Redis {
  const admin = new Redis({
    host: "127.0.0.1",
    port,
    maxRetriesPerRequest: 1,
    ...(o.tls === true ? { tls: { ca: readFileSync(REDIS_TLS_CA) } } : {}),
    ...(o.password === undefined ? {} : { password: o.password }),
  });
  admin.on("error", () => {});
  return admin;
}

/** A port nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function launch(port: number, extra: readonly string[] = []): Promise<ChildProcess> {
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "notice", ...extra];
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`redis-server did not start on port ${port} within 10 s: ${out}`));
    }, 10_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (READY.test(out)) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stdout?.resume(); // keep draining, never block the server on a full pipe
        resolve(child);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === "ENOENT" ? new Error("redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)") : err);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}) before it was ready: ${out}`));
    });
  });
}

function exit(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/**
 * A redis-server on `count` free ports (the first its client port; the arguments from
 * `argsFor`), with a few tries: another process may take a port between its probe and the
 * server's bind.
 */
async function launchOnFreePorts(count: number, argsFor: (ports: readonly number[]) => string[]): Promise<{ child: ChildProcess; ports: number[]; args: string[] }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort());
    const args = argsFor(ports);
    try {
      return { child: await launch(ports[0]!, args), ports, args };
    } catch (err) {
      lastError = err;
      if (err instanceof Error && err.message.includes("not installed")) throw err;
    }
  }
  throw lastError;
}

/** Starts a redis-server on a free port. */
export async function startRedis(options: ServerOptions = {}): Promise<RedisServer> {
  const extra = (p: number): string[] => [...(options.tls === true ? tlsArgs(p) : []), ...authArgs(options)];
  const launched = await launchOnFreePorts(1, ([p]) => extra(p!));
  const port = launched.ports[0]!;
  let current: ChildProcess | undefined = launched.child;
  const url = urlOf(port, options);
  return {
    port,
    url,
    target: { kind: "node", url },
    get running() {
      return current !== undefined && current.exitCode === null && current.signalCode === null;
    },
    start: async () => {
      if (current !== undefined && current.exitCode === null && current.signalCode === null) return;
      current = await launch(port, extra(port));
    },
    kill: async () => {
      if (current !== undefined) await exit(current, "SIGKILL");
    },
    stop: async () => {
      if (current !== undefined) await exit(current, "SIGTERM");
      current = undefined;
    },
  };
}

/**
 * For a test file that shares one server: a redis-server started before its tests, with
 * an admin client on it, both handed to `use` once started; stopped after the tests.
 */
export function redisForFile(use: (server: RedisServer, admin: Redis) => void): void {
  let server: RedisServer | undefined;
  let admin: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.url);
    use(server, admin);
  });
  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });
}

/** A Redis Cluster of real redis-servers on 127.0.0.1, the slots split evenly between its masters, each with `replicas` replicas. */
export interface RedisCluster {
  readonly ports: readonly number[];
  /** REDIS_URL for a gateway with REDIS_CLUSTER=true, seeded with the nodes at `seeds` (indexes). */
  url(seeds: readonly number[]): string;
  /** The same, as the stores take it. */
  target(seeds: readonly number[]): RedisTarget;
  /** The index of the master that serves `key`'s slot (as it was set up: before any failover). */
  ownerOf(key: string): Promise<number>;
  /** A plain client on master `i` (disconnected by stop()). */
  node(i: number): Redis;
  /** SIGKILL of node `i`: its slots are served by nobody until restart(i). */
  kill(i: number): Promise<void>;
  /** Node `i` again, on its port, with its identity and slots (its nodes.conf) and no data; resolves once every node says the cluster is ok. */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

const SLOTS = 16384;

/** Master `i`'s slots, first and last. */
function slotRange(i: number, masters: number): [number, number] {
  return [Math.floor((SLOTS * i) / masters), Math.floor((SLOTS * (i + 1)) / masters) - 1];
}

/**
 * Starts `masters` cluster-enabled redis-servers (each on a free port, its cluster bus on
 * another), gives each an equal range of the slots, joins them (CLUSTER MEET), adds
 * `replicas` replicas to each, and waits, bounded, until every node says the cluster is
 * ok. Stopped by stop(). `nodeTimeoutMs` is cluster-node-timeout: how long a silent master
 * takes to be declared failed (and its replica promoted); 5 s by default, well above any
 * stall a loaded test machine gives a healthy node; a failover test sets it shorter.
 */
export async function startRedisCluster(masters = 3, options: ServerOptions & { replicas?: number; nodeTimeoutMs?: number } = {}): Promise<RedisCluster> {
  const replicas = options.replicas ?? 0;
  const tls = options.tls === true;
  const dir = await mkdtemp(join(tmpdir(), "aigw-redis-cluster-"));
  const children: ChildProcess[] = [];
  const args: string[][] = [];
  const buses: number[] = [];
  const ports: number[] = [];
  const admins: Redis[] = [];
  const replicaAdmins: Redis[] = [];
  const stop = async (): Promise<void> => {
    for (const a of [...admins, ...replicaAdmins]) a.disconnect();
    await Promise.all(children.map((c) => exit(c, "SIGTERM")));
    await rm(dir, { recursive: true, force: true });
  };
  const nodeTimeout = String(options.nodeTimeoutMs ?? 5000);
  /** A cluster-enabled node on two free ports (clients, bus), and a quiet admin client on it. */
  const node = async (): Promise<{ port: number; bus: number; nodeArgs: string[]; admin: Redis }> => {
    const launched = await launchOnFreePorts(2, ([port, bus]) => [
      "--cluster-enabled", "yes", "--cluster-port", String(bus), "--cluster-config-file", join(dir, `nodes-${port}.conf`), "--cluster-node-timeout", nodeTimeout,
      // A replica's full sync at once, and the RDB it receives written here, not in the test's working directory.
      "--repl-diskless-sync-delay", "0", "--dir", dir,
      // Over TLS: clients, the cluster bus and replication all on TLS.
      ...(tls ? [...tlsArgs(port!), "--tls-cluster", "yes", "--tls-replication", "yes"] : []),
      ...authArgs(options),
    ]);
    children.push(launched.child);
    const [port, bus] = launched.ports as [number, number];
    return { port, bus, nodeArgs: launched.args, admin: adminOf(port, options) };
  };
  try {
    for (let i = 0; i < masters; i++) {
      const n = await node();
      args.push(n.nodeArgs);
      ports.push(n.port);
      buses.push(n.bus);
      admins.push(n.admin);
    }
    for (let i = 0; i < masters; i++) {
      const [from, to] = slotRange(i, masters);
      await admins[i]!.call("CLUSTER", "ADDSLOTSRANGE", String(from), String(to));
      if (i > 0) await admins[0]!.call("CLUSTER", "MEET", "127.0.0.1", String(ports[i]), String(buses[i]));
    }
    await allOk(admins, masters);
    for (let i = 0; i < masters * replicas; i++) {
      const master = admins[i % masters]!;
      const masterId = String(await master.call("CLUSTER", "MYID"));
      const r = await node();
      replicaAdmins.push(r.admin);
      await admins[0]!.call("CLUSTER", "MEET", "127.0.0.1", String(r.port), String(r.bus));
      await untilAsync(async () => String(await r.admin.call("CLUSTER", "NODES")).includes(masterId), 20_000, "a replica to learn its master");
      await r.admin.call("CLUSTER", "REPLICATE", masterId);
    }
    for (const r of replicaAdmins) await untilAsync(async () => /master_link_status:up/.test(await r.info("replication")), 20_000, "a replica to sync with its master");
    await allOk([...admins, ...replicaAdmins], masters * (1 + replicas));
  } catch (err) {
    await stop();
    throw err;
  }
  const urls = (seeds: readonly number[]): string[] => seeds.map((i) => urlOf(ports[i]!, options));
  return {
    ports,
    url: (seeds) => urls(seeds).join(","),
    target: (seeds) => ({ kind: "cluster", seeds: urls(seeds) }),
    ownerOf: async (key) => {
      const slot = Number(await admins[0]!.call("CLUSTER", "KEYSLOT", key));
      for (let i = 0; i < masters; i++) {
        const [from, to] = slotRange(i, masters);
        if (slot >= from && slot <= to) return i;
      }
      throw new Error(`slot ${slot} is nobody's`);
    },
    node: (i) => admins[i]!,
    kill: (i) => exit(children[i]!, "SIGKILL"),
    restart: async (i) => {
      children[i] = await launch(ports[i]!, args[i]!);
      await allOk(admins, masters * (1 + replicas));
    },
    stop,
  };
}

/** Until every node says the cluster is ok and knows all its nodes (bounded: 20 s in all). */
async function allOk(admins: readonly Redis[], nodes: number): Promise<void> {
  const end = Date.now() + 20_000;
  for (const a of admins) {
    await untilAsync(
      async () => {
        const info = String(await a.call("CLUSTER", "INFO"));
        return info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${nodes}`);
      },
      Math.max(0, end - Date.now()),
      "the Redis Cluster to be ok on every node",
    );
  }
}
