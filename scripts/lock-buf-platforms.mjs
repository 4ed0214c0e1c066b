// Re-adds package-lock.json entries for @bufbuild/buf's binaries of other platforms.
//
// Why: the npm registry mirror these machines use lacks the darwin/win32/armv7 buf
// packages, so `npm install` leaves them out of the lock, and `npm ci` then refuses the
// lock as out of sync. Entries without a download address are skipped on Linux x64
// (optional, other platform) and fetched by name where they exist.
// Run after any `npm install` that rewrites the lock: node scripts/lock-buf-platforms.mjs
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const base = lock.packages["node_modules/@bufbuild/buf-linux-x64"];
const platforms = { "darwin-arm64": ["darwin", "arm64"], "darwin-x64": ["darwin", "x64"], "linux-armv7": ["linux", "arm"], "win32-arm64": ["win32", "arm64"], "win32-x64": ["win32", "x64"] };
let added = 0;
for (const [name, [os, cpu]] of Object.entries(platforms)) {
  const key = `node_modules/@bufbuild/buf-${name}`;
  if (lock.packages[key]) continue;
  lock.packages[key] = { version: base.version, cpu: [cpu], dev: true, license: base.license, optional: true, os: [os], engines: base.engines };
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(added ? `added ${added} buf platform entries` : "lock already complete");
