/**
 * The fake Cerebras as a process of its own (benchmarks, manual testing):
 *
 *   node dist/src/fake-upstream/main.js [--port N] [--token-delay-ms MS] [--fixed-tokens N] [--api-key KEY]
 *
 * Listens on 127.0.0.1 only. When ready it prints one JSON line, {"url":…,"port":…}, on
 * stdout (so a parent started with --port 0 learns the port), then serves until SIGTERM
 * or SIGINT, and exits 0 after closing. Bad arguments exit 2.
 */
import { parseArgs } from "node:util";
import { startFakeUpstream, type FakeUpstreamOptions } from "./server.js";

const USAGE = "usage: fake-upstream [--port N] [--token-delay-ms MS] [--fixed-tokens N] [--api-key KEY]";

function fail(message: string): never {
  process.stderr.write(`fake-upstream: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function number(name: string, value: string | undefined, min: number, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    fail(`--${name} must be ${integer ? "an integer" : "a number"} >= ${min}, got ${JSON.stringify(value)}`);
  }
  return n;
}

function options(argv: string[]): FakeUpstreamOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        "token-delay-ms": { type: "string" },
        "fixed-tokens": { type: "string" },
        "api-key": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const port = number("port", values.port, 0, true);
  if (port !== undefined && port > 65535) fail("--port must be 0-65535");
  const tokenDelayMs = number("token-delay-ms", values["token-delay-ms"], 0, false);
  const fixedTokens = number("fixed-tokens", values["fixed-tokens"], 1, true);
  const apiKey = values["api-key"];
  return {
    ...(port !== undefined ? { port } : {}),
    ...(tokenDelayMs !== undefined ? { tokenDelayMs } : {}),
    ...(fixedTokens !== undefined ? { fixedTokens } : {}),
    ...(apiKey !== undefined && apiKey !== "" ? { apiKey } : {}),
  };
}

async function main(): Promise<void> {
  const fake = await startFakeUpstream(options(process.argv.slice(2)));
  const { port } = new URL(fake.url);
  process.stdout.write(`${JSON.stringify({ url: fake.url, port: Number(port) })}\n`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1); // a second signal: exit now
    stopping = true;
    fake.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake-upstream: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
