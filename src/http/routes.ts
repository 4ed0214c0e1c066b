/**
 * The shim's routes. Every path is served at the root (OpenAI clients: baseURL
 * `http://host:port/v1`) and under `/cerebras` (the Cerebras SDK: baseURL
 * `http://host:port/cerebras`, which appends `/v1/...` itself).
 */
import type { KeyRing } from "../auth/key-ring.js";
import type { ChatService } from "../core/chat-service.js";
import { serveData, servePage, type DashboardDeps } from "../dashboard/routes.js";
import { scrapeAllowed, sendMetrics, type MetricsSource } from "../metrics/exposition.js";
import type { HttpCall } from "./call.js";
import { chatCompletions } from "./chat.js";
import { HttpError } from "./errors.js";
import { getModel, listModels } from "./models.js";
import { sendJson } from "./respond.js";

export interface RouteDeps extends DashboardDeps {
  readonly chat: ChatService;
  /** Whether the gateway should receive traffic now, and if not why. */
  readonly readiness: () => Readiness;
  /** What GET /metrics serves; undefined: metrics are off (METRICS_ENABLED=false) or on their own listener (METRICS_HOST), 404. */
  readonly metrics?: MetricsSource | undefined;
  /** METRICS_KEY: scrapes must present it (401 otherwise); undefined: /metrics is public. */
  readonly metricsKey?: KeyRing | undefined;
  /** DROP_UNSUPPORTED_FIELDS (chat.ts). */
  readonly dropUnsupportedFields: boolean;
}

export interface Readiness {
  readonly ready: boolean;
  readonly reason?: string;
}

export interface Route {
  readonly method: "GET" | "POST";
  /** The log line's method name (the gRPC method's name where there is one). */
  readonly name: string;
  /** Public routes (probes, metrics) need no gateway key and take no in-flight slot. */
  readonly public?: boolean;
  /** Monitoring routes (the dashboard's data) need a key when auth is on, but take no slot, get no span, and are logged as probes. */
  readonly monitoring?: boolean;
  /** Takes a JSON body: read whole (bounded in size and time) before the slot is taken and the handler runs. */
  readonly body?: boolean;
  readonly pattern: RegExp;
  readonly handler: (call: HttpCall, deps: RouteDeps) => Promise<void>;
}

const v1 = (rest: string): RegExp => new RegExp(`^(?:/cerebras)?/v1${rest}$`);

/**
 * GET /metrics, the Prometheus scrape endpoint (src/metrics). Scrapers present no gateway
 * key (issue 6: health, reflection and /metrics need no key), so it stays `public: true`
 * (no caller auth, no in-flight slot) whatever auth rules ROUTES gets. It lists key names
 * and per-key cost, so METRICS_KEY (a scraper's own bearer key) can guard it instead.
 */
const METRICS_ROUTE: Route = {
  method: "GET",
  name: "Metrics",
  pattern: /^\/metrics$/,
  public: true,
  handler: async (call, deps) => {
    if (deps.metrics === undefined) throw HttpError.routeNotFound("GET", "/metrics");
    if (!scrapeAllowed(deps.metricsKey, call.req.headers.authorization)) throw HttpError.metricsKeyRequired();
    await sendMetrics(call.res, deps.metrics);
  },
};

export const ROUTES: readonly Route[] = [
  { method: "POST", name: "CreateChatCompletion", pattern: v1("/chat/completions"), body: true, handler: (call, deps) => chatCompletions(call, deps) },
  { method: "GET", name: "ListModels", pattern: v1("/models"), handler: (call, deps) => listModels(call, deps.chat) },
  { method: "GET", name: "GetModel", pattern: v1("/models/(?<id>[^/]+)"), handler: (call, deps) => getModel(call, deps.chat) },
  // The Cerebras SDK opens a connection with this on construction; answer it cheaply.
  { method: "GET", name: "TcpWarming", pattern: v1("/tcp_warming"), public: true, handler: async (call) => sendJson(call.res, 200, {}) },
  // Probes for orchestrators: liveness (the process answers) and readiness (it should get traffic).
  { method: "GET", name: "Healthz", pattern: /^\/healthz$/, public: true, handler: async (call) => sendJson(call.res, 200, { status: "ok" }) },
  {
    method: "GET",
    name: "Readyz",
    pattern: /^\/readyz$/,
    public: true,
    handler: async (call, deps) => {
      const ready = deps.readiness();
      sendJson(call.res, ready.ready ? 200 : 503, { status: ready.ready ? "ready" : "not ready", ...(ready.reason ? { reason: ready.reason } : {}) });
    },
  },
  // Prometheus scrape endpoint: public, declared above (METRICS_ROUTE).
  METRICS_ROUTE,
  // The live dashboard (src/dashboard): the page is public (it holds no figures), its data needs a key.
  { method: "GET", name: "Dashboard", pattern: /^\/dashboard\/?$/, public: true, handler: servePage },
  { method: "GET", name: "DashboardData", pattern: /^\/dashboard\/data$/, monitoring: true, handler: serveData },
];

export type RouteMatch =
  | { readonly kind: "route"; readonly route: Route; readonly params: Record<string, string> }
  | { readonly kind: "wrong-method"; readonly allowed: readonly string[] }
  | { readonly kind: "none" };

export function matchRoute(method: string, path: string): RouteMatch {
  const allowed: string[] = [];
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (m === null) continue;
    if (route.method !== method) {
      allowed.push(route.method);
      continue;
    }
    const params: Record<string, string> = {};
    for (const [name, raw] of Object.entries(m.groups ?? {})) {
      try {
        params[name] = decodeURIComponent(raw);
      } catch {
        return { kind: "none" }; // malformed percent-encoding: no such resource
      }
    }
    return { kind: "route", route, params };
  }
  return allowed.length > 0 ? { kind: "wrong-method", allowed } : { kind: "none" };
}
