/**
 * A gateway with a pool of upstream keys, for the key-pool suites: one fake Cerebras per
 * key (each with its own key and rate limits, on its own port on 127.0.0.1, so a key's
 * base URL is its fake), the real gateway configured through CEREBRAS_KEYS_FILE as a user
 * would, in this process or as processes sharing one Redis, and real gRPC and HTTP
 * clients. Log lines are kept for assertions.
 */
import { Writable } from "node:stream";
import { credentials, Metadata, type CallOptions, type ServiceError } from "@grpc/grpc-js";
import { ChatServiceClient, type ChatCompletion, type ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { loadConfig } from "../../src/config.js";
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from "../../src/fake-upstream/server.js";
import { startGateway, type Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/log.js";
import { tempFile } from "../helpers/config.js";
import { startGatewayProcess, type StartedGateway } from "../helpers/gateway-process.js";
import { scrape, type Exposition } from "../helpers/prometheus.js";

export interface PoolKey {
  readonly name: string;
  readonly weight?: number;
  readonly models?: readonly string[];
  readonly fake?: FakeUpstreamOptions;
}

/** The key the gateway is configured with for `name` (its fake expects it). */
export const keyOf = (name: string): string => `csk-${name}-0123456789abcdef0123`;

export interface Fakes {
  readonly fakes: Readonly<Record<string, FakeUpstream>>;
  /** The keys file naming every fake. */
  readonly keysFile: string;
  /** Chat requests each fake has seen so far, by key name. */
  counts(): Record<string, number>;
  close(): Promise<void>;
}

export async function startFakes(keys: readonly PoolKey[]): Promise<Fakes> {
  const fakes: Record<string, FakeUpstream> = {};
  for (const k of keys) fakes[k.name] = await startFakeUpstream({ apiKey: keyOf(k.name), tokenDelayMs: 0, ...k.fake });
  const entries = keys.map((k) => ({ name: k.name, api_key: keyOf(k.name), base_url: fakes[k.name]!.url, ...(k.weight !== undefined ? { weight: k.weight } : {}), ...(k.models !== undefined ? { models: k.models } : {}) }));
  const keysFile = await tempFile("upstream-keys.json", JSON.stringify({ keys: entries }));
  return {
    fakes,
    keysFile,
    counts: () => Object.fromEntries(Object.entries(fakes).map(([name, f]) => [name, f.chatRequests().length])),
    close: async () => {
      for (const f of Object.values(fakes)) await f.close();
    },
  };
}

export interface PoolHarness extends Fakes {
  readonly gateway: Gateway;
  readonly chat: ChatServiceClient;
  readonly httpPort: number;
  readonly logs: Record<string, unknown>[];
  metrics(): Promise<Exposition>;
}

/** One gateway in this process over a pool of `keys`, each on its own fake. */
export async function startPool(keys: readonly PoolKey[], env: Record<string, string> = {}): Promise<PoolHarness> {
  const f = await startFakes(keys);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const config = loadConfig({ CEREBRAS_KEYS_FILE: f.keysFile, GRPC_PORT: "0", HTTP_PORT: "0", SHUTDOWN_GRACE_S: "1", ...env });
  const gateway = await startGateway(config, createLogger("info", sink));
  await gateway.catalogSettled;
  const chat = new ChatServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
  return {
    ...f,
    gateway,
    chat,
    httpPort: gateway.httpPort!,
    logs,
    metrics: async () => (await scrape(gateway.httpPort!)).metrics,
    close: async () => {
      chat.close();
      await gateway.close(500);
      await f.close();
    },
  };
}

/** `count` gateway processes over the same fakes, sharing `redisUrl`. */
export async function startPoolProcesses(count: number, f: Fakes, redisUrl: string, env: Record<string, string> = {}): Promise<StartedGateway[]> {
  const out: StartedGateway[] = [];
  try {
    for (let i = 0; i < count; i++) {
      out.push(await startGatewayProcess({ CEREBRAS_KEYS_FILE: f.keysFile, REDIS_URL: redisUrl, GRPC_PORT: "0", HTTP_PORT: "0", LOG_LEVEL: "info", SHUTDOWN_GRACE_S: "1", ...env }));
    }
  } catch (err) {
    for (const g of out) g.process.kill();
    throw err;
  }
  return out;
}

/** What a unary call came to, with the response metadata naming who served it. */
export interface Served {
  readonly completion: ChatCompletion | undefined;
  readonly error: ServiceError | undefined;
  readonly upstreamKey: string | undefined;
  readonly attempts: number | undefined;
  readonly model: string | undefined;
}

export function serve(chat: ChatServiceClient, request: ChatCompletionRequest, options: CallOptions = {}, metadata = new Metadata()): Promise<Served> {
  return new Promise((resolve) => {
    let headers: Metadata | undefined;
    const call = chat.createChatCompletion(request, metadata, options, (err, res) => {
      const h = headers ?? err?.metadata;
      const one = (name: string): string | undefined => {
        const v = h?.get(name)[0];
        return typeof v === "string" ? v : undefined;
      };
      const attempts = one("x-aigw-attempts");
      resolve({ completion: res, error: err ?? undefined, upstreamKey: one("x-aigw-upstream-key"), attempts: attempts === undefined ? undefined : Number(attempts), model: one("x-aigw-model") });
    });
    call.on("metadata", (m: Metadata) => (headers = m));
  });
}
