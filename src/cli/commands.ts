/**
 * The two commands. Each returns normally when the call succeeded and throws (a
 * GatewayError, for a failed call) otherwise; main.ts turns that into output and an exit code.
 */
import { Role } from "../../gen/aigateway/v1/chat.js";
import type { GatewayClient } from "../client/gateway-client.js";
import { textMessage } from "../client/messages.js";
import type { Command } from "./args.js";
import { chatJson, figuresLine, StreamStats, TokenPrinter } from "./render.js";

export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** ANSI dim for reasoning: stdout is a terminal (and NO_COLOR is unset). */
  readonly color: boolean;
  /** Dim the figures line: stderr is a terminal. */
  readonly colorErr: boolean;
}

type ChatCommand = Extract<Command, { kind: "chat" }>;
type ModelsCommand = Extract<Command, { kind: "models" }>;

export async function chat(cmd: ChatCommand, prompt: string, client: GatewayClient, io: Io, signal: AbortSignal): Promise<void> {
  const messages = [...(cmd.system === undefined ? [] : [textMessage(Role.ROLE_SYSTEM, cmd.system)]), textMessage(Role.ROLE_USER, prompt)];
  const stream = client.streamChatCompletion(
    { model: cmd.model ?? "", messages, ...(cmd.maxTokens === undefined ? {} : { maxCompletionTokens: cmd.maxTokens }) },
    { signal, ...(cmd.deadlineMs === undefined ? {} : { deadlineMs: cmd.deadlineMs }) },
  );
  const stats = new StreamStats();
  const printer = cmd.json ? undefined : new TokenPrinter(io.out, { color: io.color, showReasoning: cmd.showReasoning });
  try {
    for await (const chunk of stream) {
      stats.chunk(chunk);
      printer?.chunk(chunk);
    }
  } finally {
    // A failed stream keeps what it printed; the error goes below it.
    printer?.finish();
  }
  if (cmd.json) {
    io.out(JSON.stringify(chatJson(stats, stream.requestId)) + "\n");
  } else {
    const line = figuresLine(stats, stream.requestId);
    io.err((io.colorErr ? `\x1b[2m${line}\x1b[22m` : line) + "\n");
  }
}

export async function models(cmd: ModelsCommand, client: GatewayClient, io: Io, signal: AbortSignal): Promise<void> {
  const options = { signal, ...(cmd.deadlineMs === undefined ? {} : { deadlineMs: cmd.deadlineMs }) };
  const list = cmd.id === undefined ? await client.listModels(options) : [await client.getModel(cmd.id, options)];
  if (cmd.json) {
    io.out(JSON.stringify(cmd.id === undefined ? { models: list } : list[0]) + "\n");
    return;
  }
  const width = Math.max(2, ...list.map((m) => m.id.length));
  for (const m of list) io.out(`${m.id.padEnd(width)}  ${m.ownedBy}\n`);
}
