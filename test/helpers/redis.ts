/**
 * A real redis-server (Debian's package; `.ci/run` installs it) on 127.0.0.1 with a free
 * port, started by the test that needs it and stopped by it. No persistence, no config
 * file: each server starts empty. `kill()` then `start()` again on the same port is how
 * tests take Redis away under traffic and bring it back.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** Whether the server process is running. */
  readonly running: boolean;
  /** Starts it again on the same port, empty (after kill()). */
  start(): Promise<void>;
  /** SIGKILL: connections drop at once, as when a Redis host dies. */
  kill(): Promise<void>;
  /** Stops it for good. */
  stop(): Promise<void>;
}

const READY = /Ready to accept connections/;

/** A port nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function launch(port: number): Promise<ChildProcess> {
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "notice"];
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`redis-server did not start on port ${port} within 10 s: ${out}`));
    }, 10_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (READY.test(out)) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stdout?.resume(); // keep draining, never block the server on a full pipe
        resolve(child);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === "ENOENT" ? new Error("redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)") : err);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}) before it was ready: ${out}`));
    });
  });
}

function exit(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/** Starts a redis-server on a free port (a few tries, in case another process takes the port first). */
export async function startRedis(): Promise<RedisServer> {
  let child: ChildProcess | undefined;
  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < 5 && child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await launch(port);
    } catch (err) {
      lastError = err;
      if (err instanceof Error && err.message.includes("not installed")) throw err;
    }
  }
  if (child === undefined) throw lastError;
  let current: ChildProcess | undefined = child;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return current !== undefined && current.exitCode === null && current.signalCode === null;
    },
    start: async () => {
      if (current !== undefined && current.exitCode === null && current.signalCode === null) return;
      current = await launch(port);
    },
    kill: async () => {
      if (current !== undefined) await exit(current, "SIGKILL");
    },
    stop: async () => {
      if (current !== undefined) await exit(current, "SIGTERM");
      current = undefined;
    },
  };
}

/**
 * For a test file that shares one server: a redis-server started before its tests, with
 * an admin client on it, both handed to `use` once started; stopped after the tests.
 */
export function redisForFile(use: (server: RedisServer, admin: Redis) => void): void {
  let server: RedisServer | undefined;
  let admin: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.url);
    use(server, admin);
  });
  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });
}
