/**
 * Where the shared state lives (REDIS_URL, REDIS_CLUSTER) and the one way this gateway
 * connects to it: a single node (ioredis' Redis) or a Redis Cluster (ioredis' Cluster,
 * which follows MOVED and ASK redirections and refreshes the slot map by itself). The
 * limit store (admission/redis-store.ts) and the upstream key state
 * (upstreams/redis-key-state.ts) run the same code on both: every key they touch shares
 * one hash tag (`{QUOTA_REDIS_PREFIX}`), so each script's keys are in one slot, and the
 * key state's PUBLISH reaches subscribers on any node (a cluster broadcasts it).
 *
 * Cluster specifics, chosen for the same "never queue, never hang" rule as a single node:
 * no offline queue at the cluster level either (a command while the slot map is unknown
 * fails at once), commands time out per node, and a node's credentials and TLS are the
 * seed URL's (every node of a cluster shares them). Scripts are loaded on every master
 * when the cluster is ready (loadScript), so the first call on each shard does not pay a
 * NOSCRIPT round trip.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";

/** A single node, or the seed nodes of a Redis Cluster (any one is enough; the others are tried if it is down). */
export type RedisTarget = { readonly kind: "node"; readonly url: string } | { readonly kind: "cluster"; readonly seeds: readonly string[] };

/** What both kinds of client do that the stores use. */
export type RedisClient = Redis | Cluster;

/** The options of every connection, whatever the kind (the stores' choices: no offline queue, short timeouts…). */
export type ConnectionOptions = Omit<RedisOptions, "host" | "port" | "path" | "sentinels" | "enableOfflineQueue" | "readOnly">;

/**
 * Connects to `target`. `retryStrategy` is the reconnect backoff: of the connection
 * (node), or of the whole cluster client once every node is unreachable (cluster).
 */
export function connectRedis(target: RedisTarget, options: ConnectionOptions): RedisClient {
  if (target.kind === "node") return new Redis(target.url, { ...options, enableOfflineQueue: false });
  const { retryStrategy, ...node } = options;
  const seed = new URL(target.seeds[0]!);
  const tls = seed.protocol === "rediss:";
  const cluster: ClusterOptions = {
    enableOfflineQueue: false,
    // Over TLS, connect to nodes by the names the cluster gives them, not an address
    // looked up first: a certificate names hosts (ioredis' note for TLS clusters such as
    // ElastiCache's), and an IP would fail its verification.
    ...(tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
    ...(typeof retryStrategy === "function" ? { clusterRetryStrategy: (times: number) => retryStrategy(times) } : {}),
    redisOptions: {
      ...node,
      ...(seed.username === "" ? {} : { username: decodeURIComponent(seed.username) }),
      ...(seed.password === "" ? {} : { password: decodeURIComponent(seed.password) }),
      ...(tls ? { tls: {} } : {}),
    },
  };
  return new Cluster(target.seeds.map(hostAndPort), cluster);
}

/**
 * Loads `lua` into the script cache of every node that runs scripts (the node, or each
 * master of a cluster), so EVALSHA finds it. Failures are ignored: ioredis falls back to
 * EVAL on NOSCRIPT.
 */
export async function loadScript(client: RedisClient, lua: string): Promise<void> {
  const nodes = client instanceof Cluster ? client.nodes("master") : [client];
  await Promise.all(nodes.map((n) => n.script("LOAD", lua).catch(() => undefined)));
}

/**
 * Whether a single-node client is talking to a node of a Redis Cluster (REDIS_URL names
 * one, REDIS_CLUSTER is not set): it then works only while every key's slot is that
 * node's, and a command for another node's slot fails (MOVED) like an outage.
 */
export async function isClusterNode(client: Redis): Promise<boolean> {
  const info = await client.info("cluster").catch(() => "");
  return /^cluster_enabled:1\b/m.test(info);
}

/** What the gateway logs when isClusterNode() is true. */
export const CLUSTER_NODE_WITHOUT_CLUSTER_MODE =
  "REDIS_URL is a node of a Redis Cluster, but REDIS_CLUSTER is not true: a command for a key another node serves fails (MOVED) as if Redis were down; set REDIS_CLUSTER=true";

/** For the start-up line and logs: where, never credentials. */
export function describeTarget(target: RedisTarget): string {
  const where = (url: string): string => {
    const { host, port } = hostAndPort(url);
    return `${host}:${port}`;
  };
  if (target.kind === "node") return `redis ${where(target.url)}`;
  const more = target.seeds.length > 1 ? ` (+${target.seeds.length - 1} seed${target.seeds.length > 2 ? "s" : ""})` : "";
  return `redis cluster ${where(target.seeds[0]!)}${more}`;
}

/** A redis:// URL's host and port (6379 when it names none). */
function hostAndPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: u.port === "" ? 6379 : Number(u.port) };
}

/** Whether `value` is a redis:// or rediss:// URL with a host. */
export function isRedisUrl(value: string): boolean {
  try {
    const u = new URL(value.trim());
    return (u.protocol === "redis:" || u.protocol === "rediss:") && u.hostname !== "";
  } catch {
    return false;
  }
}

/** What REDIS_URL must be, for its configuration message (never the value: it may hold a password). */
export const REDIS_URL_RULE = "must be a redis:// or rediss:// URL (or, with REDIS_CLUSTER=true, several, comma-separated)";

/**
 * REDIS_URL and REDIS_CLUSTER as a target, or what is wrong with them. A single node takes
 * one URL; a cluster one or more seed URLs, comma-separated, with the same scheme and
 * credentials (a cluster has one database: no /db path).
 */
export function parseRedisTarget(value: string, cluster: boolean): { target: RedisTarget } | { problem: string } {
  const parts = value.split(",").map((s) => s.trim());
  if (!parts.every(isRedisUrl)) return { problem: `REDIS_URL: ${REDIS_URL_RULE}` };
  if (!cluster) {
    if (parts.length > 1) return { problem: "REDIS_URL: several URLs are seed nodes of a Redis Cluster: set REDIS_CLUSTER=true, or give one URL" };
    return { target: { kind: "node", url: parts[0]! } };
  }
  const urls = parts.map((p) => new URL(p));
  const first = urls[0]!;
  for (const u of urls) {
    if (u.pathname !== "" && u.pathname !== "/" && u.pathname !== "/0") return { problem: "REDIS_URL: a Redis Cluster has only database 0: no /<db> in its URLs" };
    if (u.protocol !== first.protocol || u.username !== first.username || u.password !== first.password) {
      return { problem: "REDIS_URL: a Redis Cluster's seed URLs must share their scheme and credentials" };
    }
  }
  return { target: { kind: "cluster", seeds: parts } };
}
