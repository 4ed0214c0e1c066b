/**
 * GET /dashboard and its data: the page is public, the figures need a gateway key when
 * auth is on, they come from the same registry /metrics serves, and polling them is not
 * counted as calls. Then the page itself, in Debian's headless Chromium (driven by
 * playwright-core) against a gateway under a little traffic: it asks for the key, draws
 * figures that change as calls come in, logs no console error, and leaves a screenshot
 * in test-output/dashboard.png.
 */
import { mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Metadata } from "@grpc/grpc-js";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DashboardSnapshot } from "../../src/dashboard/source.js";
import { collect, create, stream, userRequest } from "../helpers/harness.js";
import { raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { scrape } from "../helpers/prometheus.js";

const KEY = "dash-key-0c9e2b7d41f3";
const OTHER_KEY = "dash-key-other-5a1e";
const OUTPUT = fileURLToPath(new URL("../../test-output/", import.meta.url));

function authed(key = KEY): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${key}`);
  return md;
}

async function data(h: HttpHarness, key?: string): Promise<{ status: number; snapshot: DashboardSnapshot }> {
  const res = await raw(h.httpPort, { method: "GET", path: "/dashboard/data", headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
  return { status: res.status, snapshot: JSON.parse(res.text) as DashboardSnapshot };
}

describe("the dashboard's routes", () => {
  let h: HttpHarness;

  beforeAll(async () => {
    h = await startHttpHarness({ env: { GATEWAY_API_KEYS: `team-a=${KEY},team-b=${OTHER_KEY}` } });
  });
  afterAll(async () => h?.close());

  it("serves the page without a key, self-contained behind a strict content security policy", async () => {
    const res = await raw(h.httpPort, { method: "GET", path: "/dashboard" });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    const csp = String(res.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("connect-src 'self'");
    expect(res.text).toContain('<meta name="aigw-auth" content="required">');
    // Nothing from elsewhere: no src/href to another origin, no external script or stylesheet.
    expect(res.text).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it("gives the figures only for a gateway key", async () => {
    expect((await raw(h.httpPort, { method: "GET", path: "/dashboard/data" })).status).toBe(401);
    expect((await raw(h.httpPort, { method: "GET", path: "/dashboard/data", headers: { authorization: "Bearer nope" } })).status).toBe(401);
    expect((await data(h, KEY)).status).toBe(200);
  });

  it("reads its figures from the metrics registry, and is not counted as a call", async () => {
    const before = (await data(h, KEY)).snapshot;
    await create(h.chat, userRequest("one"), {}, authed(KEY));
    await create(h.chat, userRequest("two"), {}, authed(OTHER_KEY));
    const after = (await data(h, KEY)).snapshot;
    expect(after.calls - before.calls).toBe(2);
    expect(after.at).toBeGreaterThanOrEqual(before.at);
    const model = after.byModel.find((m) => m.model === "gpt-oss-120b")!;
    expect(model.completionTokens).toBeGreaterThan(0);
    expect(model.ttftCount).toBeGreaterThan(0);
    expect(after.byKey.map((k) => k.key).sort()).toEqual(expect.arrayContaining(["team-a", "team-b"]));
    expect(after.byKey.find((k) => k.key === "team-a")!.costUsd).toBeGreaterThan(0);
    expect(after.catalog.loaded).toBe(true);
    expect(after.catalog.stale).toBe(false);
    expect(after.catalog.models.map((m) => m.id)).toContain("gpt-oss-120b");
    // The figures agree with /metrics, and no poll of the dashboard shows up as a call.
    const metrics = (await scrape(h.httpPort)).metrics;
    expect(metrics.sum("gateway_requests_total")).toBe(after.calls);
    expect(metrics.sum("gateway_requests_total", { method: "DashboardData", code: "OK" })).toBe(0);
    expect(metrics.sum("gateway_requests_total", { method: "Dashboard" })).toBe(0);
  });

  it("is not there when metrics are off", async () => {
    const off = await startHttpHarness({ env: { METRICS_ENABLED: "false" } });
    try {
      expect((await raw(off.httpPort, { method: "GET", path: "/dashboard" })).status).toBe(404);
      expect((await raw(off.httpPort, { method: "GET", path: "/dashboard/data" })).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});

describe("the dashboard in a browser", () => {
  let h: HttpHarness;
  let browser: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    h = await startHttpHarness({ env: { GATEWAY_API_KEYS: `team-a=${KEY}`, FAKE_UPSTREAM_TOKEN_DELAY_MS: "0" } });
    profile = await mkdtemp(join(tmpdir(), "aigw-chromium-"));
    // A fresh profile (user-data-dir) per run: nothing remembered from another.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      viewport: { width: 1280, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await h?.close();
    if (profile !== undefined) await rm(profile, { recursive: true, force: true });
  });

  it("asks for the key, then draws live figures that change with the traffic, without a console error", async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`requestfailed: ${r.url()}`));
    // Every request the page makes stays on the gateway's origin.
    const origins = new Set<string>();
    page.on("request", (r) => origins.add(new URL(r.url()).origin));

    // A little traffic before and while the page is open: bounded, and stopped at the end.
    await create(h.chat, userRequest("warm up"), {}, authed());
    let traffic = true;
    const load = (async () => {
      for (let i = 0; traffic && i < 2000; i++) {
        if (i % 5 === 0) await collect(h.chat.streamChatCompletion(userRequest(`stream ${i}`), authed()));
        else if (i % 7 === 0) await stream(h.chat, userRequest(`no key ${i}`)); // refused: UNAUTHENTICATED, so errors show
        else await create(h.chat, userRequest(`call ${i}`), {}, authed());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    try {
      await page.goto(`http://127.0.0.1:${h.httpPort}/dashboard?every=300`);
      await page.locator("#keyform").waitFor({ state: "visible" });
      await page.fill("#key", KEY);
      await page.click("#keyform button");

      // Read through Playwright, not page-side code: the page's CSP forbids evaluating strings, and the test has no DOM types.
      const updates = async (): Promise<number> => Number(await page.getAttribute("body", "data-updates"));
      await expect.poll(updates, { timeout: 10_000, interval: 50 }).toBeGreaterThanOrEqual(2);
      const first = await page.textContent("#calls-total");
      const firstUpdates = await updates();
      await expect.poll(() => page.textContent("#calls-total"), { timeout: 10_000, interval: 50 }).not.toBe(first);
      expect(await updates()).toBeGreaterThan(firstUpdates);

      expect(await page.textContent("#status")).toMatch(/^live/);
      expect(Number((await page.textContent("#calls-per-s"))!.replace(/,/g, ""))).toBeGreaterThan(0);
      expect(await page.textContent("#error-rate")).toMatch(/%$/);
      expect(await page.locator("#spark-calls").getAttribute("points")).toMatch(/\d/);
      const models = await page.textContent("#models");
      expect(models).toContain("gpt-oss-120b");
      expect(models).toMatch(/\d+ ms/); // time to first token
      expect(await page.textContent("#keys")).toContain("team-a");
      expect(await page.textContent("#catalog-freshness")).toMatch(/^fresh, loaded/);
      expect(await page.textContent("#catalog")).toContain("gpt-oss-120b");

      mkdirSync(OUTPUT, { recursive: true });
      await page.screenshot({ path: join(OUTPUT, "dashboard.png"), fullPage: true });
      expect(problems).toEqual([]);
      expect([...origins]).toEqual([`http://127.0.0.1:${h.httpPort}`]);
    } finally {
      traffic = false;
      await load;
      await page.close();
    }
  }, 30_000);

  it("asks again when the stored key is refused", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${h.httpPort}/dashboard?every=300`);
      await page.fill("#key", "not-a-gateway-key");
      await page.click("#keyform button");
      await page.locator("#error").filter({ hasText: "that key was refused" }).waitFor({ timeout: 10_000 });
      // The refused key is not kept: a reload asks again.
      await page.reload();
      await page.locator("#keyform").waitFor({ state: "visible" });
      expect(await page.textContent("#error")).toBe(""); // asked afresh, not refused again with a kept key
      expect(await page.textContent("#status")).toBe("needs a key");
    } finally {
      await page.close();
    }
  });
});
