/**
 * GET /dashboard: one self-contained page (inline CSS, JS and SVG; no build step, no CDN,
 * nothing fetched but its own data). It polls GET /dashboard/data (source.ts) and turns
 * two snapshots into rates, so it updates by itself and never reloads.
 *
 * The HTML holds no figures and is public; the data needs a gateway key when caller auth
 * is on. Then the page asks for the key once, keeps it in sessionStorage (this tab only,
 * gone when it closes) and sends it as `authorization: Bearer <key>`. The content
 * security policy allows exactly this script and style (by hash) and requests to the
 * page's own origin.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root { color-scheme: light dark; --bg:#0f1419; --panel:#182029; --text:#e6edf3; --muted:#8b98a5; --ok:#3fb950; --bad:#f85149; --warn:#d29922; --line:#58a6ff; }
@media (prefers-color-scheme: light) { :root { --bg:#f6f8fa; --panel:#fff; --text:#1f2328; --muted:#59636e; --line:#0969da; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
header { display:flex; align-items:center; gap:12px; padding:12px 20px; border-bottom:1px solid #8883; }
header h1 { font-size:16px; margin:0; font-weight:600; }
#status { margin-left:auto; color:var(--muted); }
#status.live::before { content:"●"; color:var(--ok); margin-right:6px; }
#status.down::before { content:"●"; color:var(--bad); margin-right:6px; }
main { padding:16px 20px; display:grid; gap:16px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit, minmax(170px, 1fr)); gap:12px; }
.tile, section { background:var(--panel); border-radius:8px; padding:12px 14px; border:1px solid #8882; }
.tile .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.tile .value { font-size:26px; font-variant-numeric:tabular-nums; margin-top:4px; }
.tile svg { width:100%; height:36px; display:block; margin-top:6px; }
.tile polyline { fill:none; stroke:var(--line); stroke-width:1.5; }
.tile.bad polyline { stroke:var(--bad); }
section h2 { font-size:13px; margin:0 0 8px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { text-align:right; padding:4px 8px; border-bottom:1px solid #8882; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
th { color:var(--muted); font-weight:500; }
.empty { color:var(--muted); }
.stale { color:var(--warn); }
#keyform { display:none; gap:8px; align-items:center; }
#keyform.shown { display:flex; }
#keyform input { font:inherit; padding:4px 8px; width:22em; }
#error { color:var(--bad); }
`;

const SCRIPT = `
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const every = Math.min(60000, Math.max(250, Number(params.get("every")) || 2000));
  const dataUrl = new URL("dashboard/data", location.href.replace(/\\/dashboard\\/?(\\?.*)?$/, "/"));
  const authRequired = document.querySelector('meta[name="aigw-auth"]').content === "required";
  const KEY = "aigw-dashboard-key";
  const $ = (id) => document.getElementById(id);
  const history = { calls: [], errors: [] };
  let previous;
  let updates = 0;
  let timer;

  const fmt = (n, digits = 1) => (Number.isFinite(n) ? n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "–");
  const pct = (n) => (Number.isFinite(n) ? fmt(n * 100, 1) + " %" : "–");
  const ms = (s) => (Number.isFinite(s) ? fmt(s * 1000, 0) + " ms" : "–");
  const usd = (n) => (Number.isFinite(n) ? "$" + n.toFixed(n < 1 ? 6 : 2) : "–");
  const ago = (t) => { const s = Math.max(0, (Date.now() - t) / 1000); return s < 90 ? fmt(s, 0) + " s ago" : fmt(s / 60, 0) + " min ago"; };

  function setFigure(id, text) { const el = $(id); if (el.textContent !== text) el.textContent = text; }

  function spark(id, values) {
    const line = $(id);
    const max = Math.max(1e-9, ...values);
    const step = values.length > 1 ? 100 / (values.length - 1) : 0;
    line.setAttribute("points", values.map((v, i) => (i * step).toFixed(1) + "," + (34 - (v / max) * 32).toFixed(1)).join(" "));
  }

  function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }

  function fillTable(id, rows, columns) {
    const body = $(id);
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell("nothing yet", "empty");
      td.colSpan = columns;
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const cells of rows) {
      const tr = document.createElement("tr");
      for (const c of cells) tr.append(typeof c === "string" ? cell(c) : cell(c.text, c.cls));
      body.append(tr);
    }
  }

  function render(now, before) {
    const dt = before ? (now.at - before.at) / 1000 : 0;
    const rate = (a, b) => (dt > 0 ? (a - b) / dt : NaN);
    const dCalls = before ? now.calls - before.calls : 0;
    const dErrors = before ? now.errors - before.errors : 0;
    const callsPerS = rate(now.calls, before ? before.calls : 0);
    const errorRate = dCalls > 0 ? dErrors / dCalls : before ? 0 : NaN;
    if (before) {
      history.calls.push(callsPerS); history.errors.push(errorRate);
      if (history.calls.length > 60) { history.calls.shift(); history.errors.shift(); }
      spark("spark-calls", history.calls); spark("spark-errors", history.errors);
    }
    setFigure("calls-per-s", fmt(callsPerS, 1));
    setFigure("error-rate", pct(errorRate));
    setFigure("calls-total", fmt(now.calls, 0));
    setFigure("in-flight-calls", fmt(now.inFlightCalls, 0));
    setFigure("in-flight-streams", fmt(now.inFlightStreams, 0));

    const old = new Map((before ? before.byModel : []).map((m) => [m.model, m]));
    const models = now.byModel.filter((m) => m.model !== "none").sort((a, b) => b.calls - a.calls);
    fillTable("models", models.map((m) => {
      const p = old.get(m.model);
      const dCount = p ? m.ttftCount - p.ttftCount : 0;
      const ttft = dCount > 0 ? (m.ttftSum - p.ttftSum) / dCount : m.ttftCount > 0 ? m.ttftSum / m.ttftCount : NaN;
      const dTime = p ? m.completionTimeSum - p.completionTimeSum : 0;
      const dTokens = p ? m.completionTokens - p.completionTokens : 0;
      const speed = dTime > 0 ? dTokens / dTime : m.completionTimeSum > 0 ? m.completionTokens / m.completionTimeSum : NaN;
      const dModelCalls = p ? m.calls - p.calls : 0;
      return [m.model, fmt(p ? rate(m.calls, p.calls) : NaN, 2), pct(dModelCalls > 0 ? (m.errors - p.errors) / dModelCalls : m.calls > 0 ? m.errors / m.calls : NaN), ms(ttft), fmt(speed, 0), fmt(p ? rate(m.completionTokens, p.completionTokens) : NaN, 0), fmt(m.calls, 0)];
    }), 7);

    const oldKeys = new Map((before ? before.byKey : []).map((k) => [k.key, k]));
    const keys = [...now.byKey].sort((a, b) => b.costUsd - a.costUsd || b.calls - a.calls);
    fillTable("keys", keys.map((k) => {
      const p = oldKeys.get(k.key);
      return [k.key, fmt(k.calls, 0), fmt(k.errors, 0), usd(k.costUsd), usd(p ? rate(k.costUsd, p.costUsd) * 3600 : NaN)];
    }), 5);

    const c = now.catalog;
    const fresh = $("catalog-freshness");
    fresh.textContent = !c.loaded ? "not loaded yet" : (c.stale ? "stale, last loaded " : "fresh, loaded ") + ago(c.fetchedAt);
    fresh.className = c.loaded && !c.stale ? "" : "stale";
    fillTable("catalog", c.models.map((m) => [
      m.deprecated ? { text: m.id + " (deprecated)", cls: "stale" } : m.id,
      m.contextLength === undefined ? "–" : fmt(m.contextLength, 0),
      m.maxCompletionTokens === undefined ? "–" : fmt(m.maxCompletionTokens, 0),
      m.promptPerMillion === undefined ? "–" : "$" + m.promptPerMillion.toFixed(2),
      m.completionPerMillion === undefined ? "–" : "$" + m.completionPerMillion.toFixed(2),
    ]), 5);
  }

  function askForKey(message) {
    $("keyform").classList.add("shown");
    $("error").textContent = message;
    $("status").className = "down";
    $("status").textContent = "needs a key";
  }

  async function poll() {
    const key = sessionStorage.getItem(KEY);
    if (authRequired && !key) { askForKey(""); return; }
    try {
      const res = await fetch(dataUrl, { headers: key ? { authorization: "Bearer " + key } : {}, cache: "no-store" });
      if (res.status === 401) { sessionStorage.removeItem(KEY); askForKey("that key was refused"); return; }
      if (!res.ok) throw new Error("HTTP " + res.status);
      const now = await res.json();
      render(now, previous);
      previous = now;
      updates++;
      document.body.dataset.updates = String(updates);
      $("status").className = "live";
      $("status").textContent = "live · updated " + new Date(now.at).toLocaleTimeString();
      $("error").textContent = "";
    } catch (err) {
      $("status").className = "down";
      $("status").textContent = "gateway unreachable (" + (err && err.message ? err.message : "error") + "), retrying";
    }
    timer = setTimeout(poll, every);
  }

  $("keyform").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    $("key").value = "";
    $("keyform").classList.remove("shown");
    clearTimeout(timer);
    poll();
  });
  poll();
})();
`;

const sha256 = (text: string): string => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/** Only this page's own script and style run; data comes from its own origin; no frames. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const BODY = `
<header>
  <h1>Cerebras gateway</h1>
  <form id="keyform"><label for="key">Gateway key</label><input id="key" type="password" autocomplete="off" placeholder="the key you call the gateway with"><button type="submit">Show</button><span id="error"></span></form>
  <span id="status">connecting…</span>
</header>
<main>
  <div class="tiles">
    <div class="tile"><div class="label">calls / s</div><div class="value" id="calls-per-s">–</div><svg viewBox="0 0 100 36" preserveAspectRatio="none"><polyline id="spark-calls" points=""/></svg></div>
    <div class="tile bad"><div class="label">error rate</div><div class="value" id="error-rate">–</div><svg viewBox="0 0 100 36" preserveAspectRatio="none"><polyline id="spark-errors" points=""/></svg></div>
    <div class="tile"><div class="label">calls in flight</div><div class="value" id="in-flight-calls">–</div></div>
    <div class="tile"><div class="label">streams in flight</div><div class="value" id="in-flight-streams">–</div></div>
    <div class="tile"><div class="label">calls since start</div><div class="value" id="calls-total">–</div></div>
  </div>
  <section><h2>Per model</h2><table><thead><tr><th>model</th><th>calls/s</th><th>errors</th><th>time to first token (mean)</th><th>tokens/s (Cerebras)</th><th>output tokens/s</th><th>calls</th></tr></thead><tbody id="models"></tbody></table></section>
  <section><h2>Cost per caller key</h2><table><thead><tr><th>key</th><th>calls</th><th>errors</th><th>cost</th><th>cost / hour (now)</th></tr></thead><tbody id="keys"></tbody></table></section>
  <section><h2>Model catalog · <span id="catalog-freshness">–</span></h2><table><thead><tr><th>model</th><th>context</th><th>max completion</th><th>prompt / 1M</th><th>completion / 1M</th></tr></thead><tbody id="catalog"></tbody></table></section>
</main>`;

/** The page; `authRequired` makes it ask for a key before its first data request. */
export function dashboardPage(authRequired: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="aigw-auth" content="${authRequired ? "required" : "none"}">
<title>Cerebras gateway · dashboard</title><link rel="icon" href="data:,">
<style>${STYLE}</style></head>
<body data-updates="0">${BODY}
<script>${SCRIPT}</script>
</body></html>
`;
}
