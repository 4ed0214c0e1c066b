#!/usr/bin/env node
/**
 * aigw: the gateway from a terminal. `aigw chat "prompt"` streams the answer as it
 * arrives; `aigw models` lists models. Ctrl-C cancels the call on the wire (the gateway
 * aborts its upstream request) and exits 130; a failed call exits with its gRPC code
 * (exit-codes.ts). `aigw --help` for the rest.
 */
import { readFile } from "node:fs/promises";
import { text } from "node:stream/consumers";
import { GatewayClient } from "../client/gateway-client.js";
import { toGatewayError } from "../client/grpc-error.js";
import { parseCommand, USAGE, type Command } from "./args.js";
import { chat, models, type Io } from "./commands.js";
import { errorJson, errorText } from "./errors.js";
import { EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, exitCodeFor } from "./exit-codes.js";

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCommand(argv);
  if (!parsed.ok) {
    process.stderr.write(`aigw: ${parsed.message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  const cmd = parsed.command;
  if (cmd.kind === "help") {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }

  const noColor = process.env["NO_COLOR"] !== undefined && process.env["NO_COLOR"] !== "";
  const io: Io = {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    color: process.stdout.isTTY === true && !noColor,
    colorErr: process.stderr.isTTY === true && !noColor,
  };

  // Ctrl-C: cancel the call and let it end cleanly; a second Ctrl-C exits at once.
  const interrupt = new AbortController();
  process.once("SIGINT", () => {
    interrupt.abort(new Error("interrupted (SIGINT)"));
    process.once("SIGINT", () => process.exit(EXIT_INTERRUPTED));
  });
  // A reader that went away (`aigw chat … | head -1`): stop the call, exit quietly.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") interrupt.abort(err);
  });

  let client: GatewayClient;
  let prompt = "";
  try {
    client = await connect(cmd);
    if (cmd.kind === "chat") prompt = cmd.prompt === "-" ? await text(process.stdin) : cmd.prompt;
  } catch (err) {
    process.stderr.write(`aigw: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  }
  try {
    if (cmd.kind === "chat") await chat(cmd, prompt, client, io, interrupt.signal);
    else await models(cmd, client, io, interrupt.signal);
    return EXIT_OK;
  } catch (err) {
    if (interrupt.signal.aborted) {
      // The reader left (EPIPE): it has what it wanted; nothing more to say.
      if ((interrupt.signal.reason as NodeJS.ErrnoException | undefined)?.code === "EPIPE") return EXIT_OK;
      process.stderr.write("aigw: cancelled\n");
      return EXIT_INTERRUPTED;
    }
    const error = toGatewayError(err);
    process.stderr.write((cmd.json ? JSON.stringify(errorJson(error)) : errorText(error)) + "\n");
    return exitCodeFor(error);
  } finally {
    client.close();
  }
}

async function connect(cmd: Exclude<Command, { kind: "help" }>): Promise<GatewayClient> {
  const apiKey = process.env["AIGW_API_KEY"];
  const read = async (file: string | undefined): Promise<Buffer | undefined> => (file === undefined ? undefined : readFile(file));
  const [ca, cert, key] = await Promise.all([read(cmd.caFile), read(cmd.certFile), read(cmd.keyFile)]);
  return new GatewayClient({
    target: cmd.target,
    ...(apiKey === undefined || apiKey === "" ? {} : { apiKey }),
    ...(cmd.tls ? { tls: { ...(ca === undefined ? {} : { ca }), ...(cert === undefined || key === undefined ? {} : { cert, key }) } } : {}),
    ...(cmd.loadBalancing === undefined ? {} : { loadBalancing: { policy: cmd.loadBalancing } }),
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // The call is over and the channel closed, so the process ends by itself once
    // stdout is flushed; this only guards against a handle that would keep it alive.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`aigw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT_FAILURE);
  },
);
