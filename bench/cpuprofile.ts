/**
 * Prints the summary of a .cpuprofile:
 *
 *   node dist/bench/cpuprofile.js FILE.cpuprofile [--top N]
 */
import { parseArgs } from "node:util";
import { formatProfile, summariseProfile } from "./lib/cpuprofile.js";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string" } } });
if (positionals.length === 0) {
  process.stderr.write("usage: node dist/bench/cpuprofile.js FILE.cpuprofile... [--top N]\n");
  process.exit(2);
}
const top = Number(values.top ?? 25);
for (const file of positionals) process.stdout.write(`${formatProfile(summariseProfile(file, top), file)}\n\n`);
