/**
 * Gateways sharing limits, for the quota suites: one in-process gateway on the memory
 * store, or several gateway processes (as `npm start` runs them) sharing one real
 * redis-server. Both face one fake Cerebras started here, and are driven through real
 * gRPC and HTTP clients. `settled()` waits, without sleeping on a guess, until every
 * settlement the gateways issued has reached their store.
 */
import { createHash } from "node:crypto";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { ChatServiceClient, type ChatCompletion, type ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { CallerLimitsInput } from "../../src/admission/limits.js";
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from "../../src/fake-upstream/server.js";
import { tempFile } from "../helpers/config.js";
import { listening, spawnGateway, type GatewayProcess } from "../helpers/gateway-process.js";
import { startHarness, UPSTREAM_KEY, type Harness } from "../helpers/harness.js";
import { raw } from "../helpers/http.js";
import { scrape } from "../helpers/prometheus.js";
import { untilAsync } from "../helpers/wait.js";

export interface Member {
  readonly chat: ChatServiceClient;
  readonly httpPort: number;
  /** The process's log lines (fleets of processes only). */
  readonly process: GatewayProcess | undefined;
}

export interface Fleet {
  readonly members: readonly Member[];
  readonly fake: FakeUpstream;
  /** Resolves once every settlement issued so far has reached the store, on every member. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

/** A caller key of the suites' keys file. */
export interface TestKey {
  readonly name: string;
  readonly key: string;
  readonly limits?: CallerLimitsInput;
}

export async function keysFile(keys: readonly TestKey[]): Promise<string> {
  const entries = keys.map((k) => ({ name: k.name, sha256: createHash("sha256").update(k.key).digest("hex"), ...(k.limits ? { limits: k.limits } : {}) }));
  return tempFile("keys.json", JSON.stringify({ keys: entries }));
}

export interface FleetOptions {
  readonly keys: readonly TestKey[];
  readonly env?: Record<string, string>;
  readonly fake?: FakeUpstreamOptions;
}

/** One gateway in this process, memory store (the default path). */
export async function inProcessFleet(o: FleetOptions): Promise<Fleet> {
  const h: Harness = await startHarness({ fake: { tokenDelayMs: 0, ...o.fake }, env: { HTTP_PORT: "0", UPSTREAM_MAX_RETRIES: "0", GATEWAY_KEYS_FILE: await keysFile(o.keys), ...o.env } });
  return {
    members: [{ chat: h.chat, httpPort: h.gateway.httpPort!, process: undefined }],
    fake: h.fake,
    settled: () => h.gateway.admission.idle(),
    close: () => h.close(),
  };
}

/** `count` gateway processes sharing `redisUrl`. */
export async function processFleet(count: number, redisUrl: string, o: FleetOptions): Promise<Fleet> {
  const fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY, tokenDelayMs: 0, ...o.fake });
  const path = await keysFile(o.keys);
  const procs: GatewayProcess[] = [];
  try {
    for (let i = 0; i < count; i++) {
      procs.push(
        spawnGateway({
          CEREBRAS_API_KEY: UPSTREAM_KEY,
          CEREBRAS_BASE_URL: fake.url,
          GRPC_PORT: "0",
          HTTP_PORT: "0",
          LOG_LEVEL: "info",
          SHUTDOWN_GRACE_S: "1",
          UPSTREAM_MAX_RETRIES: "0",
          READYZ_REQUIRE_UPSTREAM: "true",
          GATEWAY_KEYS_FILE: path,
          REDIS_URL: redisUrl,
          // A loaded 2-core CI machine can stall an event loop past the 250 ms default and
          // trip the breaker on a healthy Redis; the outage tests kill Redis, which the
          // gateways see as a closed connection at once, not as a timeout.
          QUOTA_REDIS_TIMEOUT_MS: "1000",
          ...o.env,
        }),
      );
    }
    const members: Member[] = [];
    for (const p of procs) {
      const at = await listening(p);
      const httpPort = Number(at.http!.split(":")[1]);
      // Ready: the catalog (prices, model limits) has loaded.
      await untilAsync(async () => (await raw(httpPort, { method: "GET", path: "/readyz" })).status === 200, 10_000, "readyz");
      members.push({ chat: new ChatServiceClient(at.grpc, credentials.createInsecure()), httpPort, process: p });
    }
    return {
      members,
      fake,
      settled: async () => {
        for (const m of members) await untilAsync(async () => settledOn(m.httpPort), 10_000, "settlements to reach the store");
      },
      close: async () => {
        for (const m of members) m.chat.close();
        await Promise.all(procs.map((p) => p.stop()));
        await fake.close();
      },
    };
  } catch (err) {
    for (const p of procs) p.kill();
    await fake.close();
    throw err;
  }
}

/** Every admitted call of the process has been settled in the store (metrics; absent series would make this vacuous). */
async function settledOn(port: number): Promise<boolean> {
  const { metrics } = await scrape(port);
  if (metrics.families.get("gateway_quota_admissions_total") === undefined) throw new Error("the gateway exports no gateway_quota_admissions_total");
  return metrics.sum("gateway_quota_settlements_total") >= metrics.sum("gateway_quota_admissions_total");
}


export function withKey(key: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${key}`);
  return md;
}

export interface UnaryResult {
  readonly reply: ChatCompletion | undefined;
  readonly error: ServiceError | undefined;
  /** The initial metadata (x-ratelimit-*, x-request-id…). */
  readonly headers: Metadata | undefined;
  readonly ms: number;
}

/** A unary call that never rejects: its reply or error, and its initial metadata. */
export function unary(member: Member, request: ChatCompletionRequest, key: string, deadlineMs = 10_000): Promise<UnaryResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let headers: Metadata | undefined;
    const call = member.chat.createChatCompletion(request, withKey(key), { deadline: Date.now() + deadlineMs }, (err, reply) => {
      resolve({ reply: reply ?? undefined, error: err ?? undefined, headers, ms: performance.now() - started });
    });
    call.on("metadata", (md: Metadata) => (headers = md));
  });
}

export function header(md: Metadata | undefined, name: string): string | undefined {
  const v = md?.get(name)[0];
  return v === undefined ? undefined : String(v);
}
