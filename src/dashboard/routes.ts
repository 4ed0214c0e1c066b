/**
 * The dashboard's two HTTP routes, added to the shim's table (src/http/routes.ts):
 * GET /dashboard (the page: public, it holds no figures) and GET /dashboard/data (the
 * figures: a gateway key when caller auth is on, like a call, but not counted as one:
 * no in-flight slot, no span, and logged as probes are).
 */
import type { HttpCall } from "../http/call.js";
import { HttpError } from "../http/errors.js";
import { sendJson } from "../http/respond.js";
import { DASHBOARD_CSP, dashboardPage } from "./page.js";
import type { DashboardSource } from "./source.js";

export interface DashboardDeps {
  /** undefined: metrics are off (METRICS_ENABLED=false), so there is nothing to show: 404. */
  readonly dashboard?: DashboardSource | undefined;
  /** Caller auth is on: the page asks for a key before its first data request. */
  readonly authRequired?: boolean | undefined;
}

const pages = new Map<boolean, Buffer>();

export async function servePage(call: HttpCall, deps: DashboardDeps): Promise<void> {
  if (deps.dashboard === undefined) throw HttpError.routeNotFound("GET", "/dashboard");
  const auth = deps.authRequired === true;
  let page = pages.get(auth);
  if (page === undefined) pages.set(auth, (page = Buffer.from(dashboardPage(auth))));
  call.res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "content-length": page.length,
    "content-security-policy": DASHBOARD_CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  call.res.end(page);
}

export async function serveData(call: HttpCall, deps: DashboardDeps): Promise<void> {
  if (deps.dashboard === undefined) throw HttpError.routeNotFound("GET", "/dashboard/data");
  sendJson(call.res, 200, await deps.dashboard.snapshot(), { "cache-control": "no-store" });
}
