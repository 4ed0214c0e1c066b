/**
 * What HPACK indexing of ever-changing header values costs (reply-metadata.ts sends them
 * never-indexed): a node:http2 server answers with 26 headers shaped like a limited
 * reply's (grpc-js' four, 8 limits that repeat, 10 remaining/reset figures and a request
 * id that change with every reply), to a node:http2 client in the same process, 64 in
 * flight on one connection, the two variants taking turns:
 *
 *   npm run build && node dist/bench/micro/hpack-indexing.js [--rounds N] [--replies C]
 *
 * - indexed: HPACK's default, every header added to the connection's 4 KiB table;
 * - never-indexed: the 11 changing ones listed in `http2.sensitiveHeaders`.
 *
 * µs of this process's CPU (server and client together) per reply, median of N rounds of
 * C replies. Bounded: N × C replies per variant, on 127.0.0.1.
 */
import { connect, createServer, sensitiveHeaders, type OutgoingHttpHeaders } from "node:http2";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { bounded, median } from "../lib/stats.js";

const { values } = parseArgs({ options: { rounds: { type: "string" }, replies: { type: "string" } } });
const ROUNDS = bounded(values.rounds, 12, 2, 100);
const REPLIES = bounded(values.replies, 10_000, 100, 1_000_000);
const IN_FLIGHT = 64;

const LIMITS: Record<string, string> = {};
for (const r of ["requests", "tokens"]) for (const w of ["minute", "hour", "day", "week"]) LIMITS[`x-ratelimit-limit-${r}-${w}`] = String(r === "requests" ? 1_000 : 1_000_000);
const CHANGING = [...["requests-minute", "requests-day", "tokens-minute", "tokens-day", "usd-day"].flatMap((w) => [`x-ratelimit-remaining-${w}`, `x-ratelimit-reset-${w}`]), "x-request-id"];

let neverIndexed = false;
let served = 0;
const server = createServer();
server.on("stream", (stream) => {
  served++;
  const h: OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc+proto", "grpc-accept-encoding": "identity,deflate,gzip", "grpc-encoding": "identity", ...LIMITS };
  for (let i = 0; i < CHANGING.length; i++) h[CHANGING[i]!] = i === CHANGING.length - 1 ? `req-${served}` : String(999_999_999 - served * (i + 1));
  // OutgoingHttpHeaders has no symbol keys in its type; node:http2 reads this one (README: never-indexed headers).
  if (neverIndexed) Object.defineProperty(h, sensitiveHeaders, { value: CHANGING, enumerable: true });
  stream.respond(h, { endStream: true });
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);

/** `total` requests, IN_FLIGHT at a time; resolves when every reply has closed. */
function replies(total: number): Promise<void> {
  let sent = 0;
  let closed = 0;
  return new Promise((resolve) => {
    const next = (): void => {
      if (sent >= total) return;
      sent++;
      const req = client.request({ ":path": "/" });
      req.resume();
      req.on("close", () => {
        if (++closed === total) resolve();
        else next();
      });
      req.end();
    };
    for (let i = 0; i < Math.min(IN_FLIGHT, total); i++) next();
  });
}

await replies(Math.min(5_000, REPLIES)); // warm-up
const results: Record<"indexed" | "never-indexed", number[]> = { indexed: [], "never-indexed": [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const variant of round % 2 === 0 ? (["never-indexed", "indexed"] as const) : (["indexed", "never-indexed"] as const)) {
    neverIndexed = variant === "never-indexed";
    const before = process.cpuUsage();
    await replies(REPLIES);
    const used = process.cpuUsage(before);
    results[variant].push((used.user + used.system) / REPLIES);
  }
}
client.close();
server.close();

const indexed = median(results.indexed);
const never = median(results["never-indexed"]);
process.stdout.write(`| 26 reply headers, 11 changing (median of ${ROUNDS} rounds of ${REPLIES}) | µs CPU per reply, server + client |\n| --- | --: |\n`);
process.stdout.write(`| indexed (HPACK's default) | ${indexed.toFixed(1)} |\n| never-indexed (sensitiveHeaders) | ${never.toFixed(1)} (${(never - indexed).toFixed(1)}) |\n`);
