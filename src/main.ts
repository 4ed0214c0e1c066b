/**
 * The process: read the environment, start the gateway, stop it cleanly on SIGTERM or
 * SIGINT (a second signal, a second or more after the first, exits at once).
 *
 * Where a process manager is in charge (a container's PID 1, systemd), run
 * `node dist/src/main.js` directly: the signal then reaches this process and nothing else.
 */
import { setLogger } from "@grpc/grpc-js";
import { format } from "node:util";
import { ConfigError, loadConfig } from "./config.js";
import { startGateway } from "./gateway.js";
import { ListenError } from "./listen-error.js";
import { createLogger, type Logger } from "./log.js";

/** A repeat of the first signal within this window is the same signal delivered twice. */
const DUPLICATE_SIGNAL_MS = 1000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cerebras-grpc-gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  // Handlers catch everything they start; this is the net under the net. A stray
  // rejection is logged, not allowed to take the process (and every call) down.
  process.on("unhandledRejection", (err: unknown) => logger.error({ err }, "unhandled rejection"));
  routeGrpcLogs(logger);
  const gateway = await startGateway(config, logger);

  let first: { readonly signal: NodeJS.Signals; readonly at: number } | undefined;
  const stop = (signal: NodeJS.Signals): void => {
    if (first !== undefined) {
      // Ctrl-C sends SIGINT to the terminal's whole process group, and `npm start` forwards
      // the one it got too: the same signal right after the first is that copy, not a
      // second request.
      if (signal === first.signal && performance.now() - first.at < DUPLICATE_SIGNAL_MS) return;
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    first = { signal, at: performance.now() };
    logger.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down");
    gateway.close().then(
      () => {
        logger.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/**
 * grpc-js writes its own lines ("E No address added…") to stderr; as JSON lines through
 * pino they sit with the gateway's, and stderr keeps only the process's own messages.
 */
function routeGrpcLogs(logger: Logger): void {
  const child = logger.child({ component: "grpc-js" });
  const text = (message: unknown, params: unknown[]): string => format(message, ...params);
  setLogger({
    error: (message?: unknown, ...params: unknown[]) => child.error(text(message, params)),
    info: (message?: unknown, ...params: unknown[]) => child.info(text(message, params)),
    debug: (message?: unknown, ...params: unknown[]) => child.debug(text(message, params)),
  });
}

main().catch((err: unknown) => {
  // A listener that cannot bind is a configuration problem, reported like a bad environment.
  if (err instanceof ListenError) {
    process.stderr.write(`cerebras-grpc-gateway: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`cerebras-grpc-gateway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
