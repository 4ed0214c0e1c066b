/**
 * Command line → a command, with node:util parseArgs. Never throws: a usage problem is
 * returned as a message for exit code 2.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { DEFAULT_TARGET } from "../client/options.js";
import type { LoadBalancingPolicy } from "../client/service-config.js";

export const USAGE = `Usage:
  aigw chat [options] <prompt…>   stream a chat completion ("-" reads the prompt from stdin)
  aigw models [options] [id]      list the models (or show one)

Options:
  --target TARGET       the gateway: host:port (default ${DEFAULT_TARGET}), or for several
                        replicas dns:///name:port or ipv4:host:port,host:port
  --lb POLICY           spread calls over the target's addresses: round_robin or pick_first
                        (retrying UNAVAILABLE a replica gave before answering)
  -m, --model NAME      model (default: the gateway's DEFAULT_MODEL)
  -s, --system TEXT     system message
  --max-tokens N        most completion tokens (reasoning included)
  --deadline DURATION   time budget of the call: 30s, 1500ms, 2m, or seconds (default 300s)
  --no-reasoning        do not print the model's reasoning
  --json                machine output: one JSON document on stdout (errors: one on stderr)
  --tls                 use TLS (system roots)
  --ca FILE             use TLS, trusting this CA certificate (PEM)
  --cert FILE           use TLS with this client certificate (PEM; mTLS, needs --key)
  --key FILE            the client certificate's private key (PEM; needs --cert)
  -h, --help            this text

Environment:
  AIGW_API_KEY          sent as "authorization: Bearer <key>"

Exit codes: 0 ok, 2 usage, 3–16 the gRPC status code, 1 other failures, 130 Ctrl-C.`;

export interface ConnectionArgs {
  readonly target: string;
  /** undefined: grpc-js' default (pick_first, no channel retries). */
  readonly loadBalancing: LoadBalancingPolicy | undefined;
  readonly tls: boolean;
  readonly caFile: string | undefined;
  /** Client certificate and key for mTLS: both or neither. */
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly deadlineMs: number | undefined;
  readonly json: boolean;
}

export type Command =
  | { readonly kind: "help" }
  | (ConnectionArgs & {
      readonly kind: "chat";
      /** "-": read it from stdin. */
      readonly prompt: string;
      readonly model: string | undefined;
      readonly system: string | undefined;
      readonly maxTokens: number | undefined;
      readonly showReasoning: boolean;
    })
  | (ConnectionArgs & { readonly kind: "models"; readonly id: string | undefined });

export type Parsed = { readonly ok: true; readonly command: Command } | { readonly ok: false; readonly message: string };

const OPTIONS = {
  target: { type: "string" },
  model: { type: "string", short: "m" },
  system: { type: "string", short: "s" },
  "max-tokens": { type: "string" },
  deadline: { type: "string" },
  "no-reasoning": { type: "boolean" },
  json: { type: "boolean" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  lb: { type: "string" },
  help: { type: "boolean", short: "h" },
} satisfies ParseArgsConfig["options"];

export function parseCommand(argv: readonly string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  const [verb, ...rest] = positionals;
  if (values.help === true || verb === "help") return { ok: true, command: { kind: "help" } };
  if (verb === undefined) return usage("a command is required: chat or models");

  const target = values.target ?? DEFAULT_TARGET;
  if (!isTarget(target)) return usage(`--target must be host:port, dns:///name:port or ipv4:host:port,… (got "${target}")`);
  const lb = values.lb;
  if (lb !== undefined && lb !== "round_robin" && lb !== "pick_first") return usage(`--lb must be round_robin or pick_first (got "${lb}")`);
  if ((values.cert === undefined) !== (values.key === undefined)) return usage("--cert and --key go together (mutual TLS needs both)");
  let deadlineMs: number | undefined;
  if (values.deadline !== undefined) {
    deadlineMs = parseDuration(values.deadline);
    if (deadlineMs === undefined) return usage(`--deadline must be a positive duration such as 30s, 1500ms or 2m (got "${values.deadline}")`);
  }
  const connection: ConnectionArgs = {
    target,
    loadBalancing: lb,
    tls: values.tls === true || values.ca !== undefined || values.cert !== undefined,
    caFile: values.ca,
    certFile: values.cert,
    keyFile: values.key,
    deadlineMs,
    json: values.json === true,
  };

  switch (verb) {
    case "chat": {
      if (rest.length === 0) return usage('chat needs a prompt, e.g. aigw chat "Say hi" (or "-" to read it from stdin)');
      let maxTokens: number | undefined;
      if (values["max-tokens"] !== undefined) {
        maxTokens = Number(values["max-tokens"]);
        if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 2 ** 31 - 1) return usage(`--max-tokens must be a positive integer (got "${values["max-tokens"]}")`);
      }
      return {
        ok: true,
        command: {
          kind: "chat",
          ...connection,
          prompt: rest.join(" "),
          model: values.model,
          system: values.system,
          maxTokens,
          showReasoning: values["no-reasoning"] !== true,
        },
      };
    }
    case "models": {
      const chatOnly = (["model", "system", "max-tokens", "no-reasoning"] as const).find((k) => values[k] !== undefined);
      if (chatOnly !== undefined) return usage(`--${chatOnly} applies to chat, not models`);
      if (rest.length > 1) return usage("models takes at most one model id");
      return { ok: true, command: { kind: "models", ...connection, id: rest[0] } };
    }
    default:
      return usage(`unknown command "${verb}": use chat or models`);
  }
}

const HOST_PORT = /^[^\s:/,]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/;

/**
 * host:port, [v6]:port, or a gRPC target URI whose scheme grpc-js resolves: dns:name:port,
 * dns:///name:port, dns://server/name:port, ipv4:/ipv6: address lists, unix:path.
 */
export function isTarget(target: string): boolean {
  if (HOST_PORT.test(target)) return true;
  const m = /^(dns|ipv4|ipv6|unix|unix-abstract):(\S+)$/.exec(target);
  if (m === null) return false;
  const [, scheme, rest] = m;
  if (scheme === "ipv4" || scheme === "ipv6") return rest!.split(",").every((a) => HOST_PORT.test(a));
  if (scheme === "dns") return HOST_PORT.test(rest!.replace(/^\/\/[^/]*\//, ""));
  return true;
}

/** "30s", "1500ms", "2m", "1h", or plain seconds ("2.5") → ms; undefined when not a positive duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) return undefined;
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"] ?? 1000;
  const ms = Number(m[1]) * scale;
  return ms > 0 && Number.isFinite(ms) ? ms : undefined;
}

function usage(message: string): Parsed {
  return { ok: false, message };
}
