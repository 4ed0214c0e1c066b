/**
 * The built `aigw` CLI as a child process against a gateway (and fake Cerebras) on
 * loopback: what it prints, its exit codes, and Ctrl-C cancelling the call upstream.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { credentials, ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { recordingServer } from "../client/recording-server.js";
import { NO_GATEWAY_RETRIES } from "../client/support.js";
import { startHarness, until, type Harness } from "../helpers/harness.js";
import { cli, runCli } from "./support.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: NO_GATEWAY_RETRIES });
});
afterAll(async () => {
  await h.close();
});

const lastUpstream = () => h.fake.chatRequests().at(-1)!;
const chat = (...args: string[]) => cli(["chat", "--target", h.address, ...args]);

describe("aigw chat", () => {
  it("streams reasoning then the answer to stdout (no ANSI when stdout is not a terminal), then one line of figures on stderr", async () => {
    const { code, stdout, stderr } = await chat("hello cli");
    expect(code).toBe(0);
    expect(stdout).toBe('The user asked: "hello cli". Answer directly.\n\nEcho: hello cli\n');
    expect(stdout).not.toContain("\x1b[");
    const lines = stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ttft \d+ ms · [\d.]+ tok\/s · \d+ tokens \(\d+ in, 10 out\) · \$[\d.e-]+ · gpt-oss-120b · request [0-9a-f-]{36}$/);
    // The request id shown is the one the gateway used (and sent upstream).
    expect(lines[0]).toContain(`request ${String(lastUpstream().headers["x-request-id"])}`);
  });

  it("--no-reasoning prints the answer only", async () => {
    const { code, stdout } = await chat("--no-reasoning", "just the answer");
    expect(code).toBe(0);
    expect(stdout).toBe("Echo: just the answer\n");
  });

  it("--model, --system and --max-tokens reach the upstream request", async () => {
    const { code, stderr } = await chat("-m", "zai-glm-4.7", "--system", "be brief", "--max-tokens", "4", "knobs");
    expect(code).toBe(0);
    expect(lastUpstream().body).toMatchObject({
      model: "zai-glm-4.7",
      max_completion_tokens: 4,
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: "knobs" },
      ],
    });
    expect(stderr).toContain("finish: length");
  });

  it("joins several words into one prompt", async () => {
    expect((await chat("--no-reasoning", "two", "words")).stdout).toBe("Echo: two words\n");
  });

  it("--json prints one JSON document on stdout and nothing on stderr", async () => {
    const { code, stdout, stderr } = await chat("--json", "as json");
    expect(code).toBe(0);
    expect(stderr).toBe("");
    const doc = JSON.parse(stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({
      model: "gpt-oss-120b",
      content: "Echo: as json",
      reasoning: 'The user asked: "as json". Answer directly.',
      finishReason: "stop",
      usage: { completionTokens: 10, reasoningTokens: 7 },
      requestId: lastUpstream().headers["x-request-id"],
    });
    expect((doc["timing"] as Record<string, unknown>)["timeToFirstTokenMs"]).toEqual(expect.any(Number));
    expect(String(doc["id"])).toMatch(/^chatcmpl-/);
  });
});

describe("aigw models", () => {
  it("lists model ids and owners", async () => {
    const { code, stdout } = await cli(["models", "--target", h.address]);
    expect(code).toBe(0);
    expect(stdout.split("\n")[0]).toMatch(/^gpt-oss-120b\s+Cerebras$/);
  });

  it("--json, and one model by id", async () => {
    const list = await cli(["models", "--json", "--target", h.address]);
    expect((JSON.parse(list.stdout) as { models: Array<{ id: string }> }).models.map((m) => m.id)).toContain("gpt-oss-120b");
    const one = await cli(["models", "--json", "--target", h.address, "zai-glm-4.7"]);
    expect(JSON.parse(one.stdout)).toMatchObject({ id: "zai-glm-4.7", ownedBy: "Cerebras" });
  });
});

describe("exit codes follow the gRPC code", () => {
  it("NOT_FOUND → 5, with the reason and request id on stderr", async () => {
    const { code, stdout, stderr } = await chat("-m", "no-such-model", "hi");
    expect(code).toBe(5);
    expect(stdout).toBe("");
    // Caught by the gateway's catalog check: the field violation is shown under the message.
    expect(stderr).toMatch(/^aigw: NOT_FOUND \(MODEL_NOT_FOUND\): .+\n {2}model: unknown model "no-such-model"\n {2}request [0-9a-f-]{36}\n$/);
  });

  it("INVALID_ARGUMENT → 3", async () => {
    h.fake.failNext(cerebrasErrors.wrongApiFormat());
    const { code, stderr } = await chat("x");
    expect(code).toBe(3);
    expect(stderr).toContain("aigw: INVALID_ARGUMENT (UPSTREAM_INVALID_REQUEST): Cerebras: body.top_k");
  });

  it("RESOURCE_EXHAUSTED → 8, saying when to retry", async () => {
    h.fake.failNext(cerebrasErrors.requestQuotaPerDay(120));
    const { code, stderr } = await chat("x");
    expect(code).toBe(8);
    expect(stderr).toContain("retry after 2 min");
    expect(stderr).toContain("quota cerebras:request_quota_exceeded");
  });

  it("UNAVAILABLE mid-stream → 14, after the tokens already printed", async () => {
    h.fake.failNext({ kind: "cut-stream", afterChunks: 3 });
    const { code, stdout, stderr } = await chat("cut me");
    expect(code).toBe(14);
    expect(stdout).toBe("The user\n"); // role, "The", " user"
    expect(stderr).toMatch(/^aigw: UNAVAILABLE \(UPSTREAM_CONNECTION_FAILED\): /);
  });

  it("--json errors: one JSON document on stderr, stdout empty", async () => {
    h.fake.failNext({ kind: "http-error", status: 503, body: { message: "busy" }, headers: { "retry-after": "3" } });
    const { code, stdout, stderr } = await chat("--json", "x");
    expect(code).toBe(14);
    expect(stdout).toBe("");
    expect(JSON.parse(stderr)).toMatchObject({ error: { code: 14, status: "UNAVAILABLE", reason: "UPSTREAM_SERVER_ERROR", retryDelayMs: 3000, metadata: { upstreamStatus: "503" } } });
  });

  it("--deadline passing → DEADLINE_EXCEEDED (4), and the upstream request is aborted", async () => {
    h.fake.failNext({ kind: "hang" });
    const { code, stderr } = await chat("--deadline", "300ms", "slow");
    expect(code).toBe(4);
    expect(stderr).toMatch(/^aigw: DEADLINE_EXCEEDED: /);
    expect(await lastUpstream().settled).toBe("aborted");
  });

  it("no gateway at --target → UNAVAILABLE (14)", async () => {
    const { code, stderr } = await cli(["models", "--target", "127.0.0.1:1", "--deadline", "5s"]);
    expect(code).toBe(14);
    expect(stderr).toMatch(/^aigw: UNAVAILABLE: /);
  });
});

describe("Ctrl-C", () => {
  it("SIGINT mid-stream cancels the call: the upstream request is aborted, exit 130", async () => {
    const gate = h.fake.holdNext(3);
    try {
      const before = h.fake.chatRequests().length;
      const run = runCli(["chat", "--target", h.address, "interrupt me"]);
      await run.waitForStdout(/The user/);
      await until(() => h.fake.chatRequests().length > before, 5000, "the upstream request");
      run.child.kill("SIGINT");
      expect(await run.exited).toBe(130);
      expect(await lastUpstream().settled).toBe("aborted");
      expect(run.stdout()).toBe("The user\n");
      expect(run.stderr()).toBe("aigw: cancelled\n");
    } finally {
      gate.release();
    }
  });
});

describe("usage errors exit 2 with a helpful message", () => {
  it.each([
    [[], "a command is required"],
    [["frobnicate"], 'unknown command "frobnicate"'],
    [["chat"], "chat needs a prompt"],
    [["chat", "--deadline", "soon", "x"], "--deadline must be a positive duration"],
    [["chat", "--max-tokens", "0", "x"], "--max-tokens must be a positive integer"],
    [["chat", "--target", "nohost", "x"], "--target must be host:port"],
    [["chat", "--target", "dns:///noport", "x"], "--target must be host:port, dns:///name:port"],
    [["chat", "--target", "ipv4:127.0.0.1:1,nohost", "x"], "--target must be host:port"],
    [["chat", "--lb", "fastest", "x"], "--lb must be round_robin or pick_first"],
    [["chat", "--cert", "client.pem", "x"], "--cert and --key go together"],
    [["models", "--key", "client.key"], "--cert and --key go together"],
    [["chat", "--frob", "x"], "Unknown option '--frob'"],
    [["models", "--system", "x"], "--system applies to chat"],
  ])("aigw %j", async (args, message) => {
    const { code, stdout, stderr } = await cli(args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toContain(message);
    expect(stderr).toContain("Usage:");
  });

  it("--help prints usage on stdout and exits 0", async () => {
    const { code, stdout } = await cli(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("aigw chat [options] <prompt…>");
    expect(stdout).toContain("Exit codes:");
  });
});

it("AIGW_API_KEY is sent as a bearer key", async () => {
  const s = await recordingServer(ServerCredentials.createInsecure());
  try {
    const { code, stderr } = await cli(["chat", "--target", `127.0.0.1:${s.port}`, "x"], { AIGW_API_KEY: "aigw-cli-key" });
    expect(code).toBe(0);
    expect(stderr).toMatch(/^no tokens · request /);
    expect(s.seen[0]!.metadata.get("authorization")).toEqual(["Bearer aigw-cli-key"]);
  } finally {
    s.stop();
  }
});

describe("several replicas", () => {
  it("--target ipv4:…,… --lb round_robin reaches a replica when the first address has nothing listening", async () => {
    const dead = await recordingServer(ServerCredentials.createInsecure());
    dead.stop(); // its port now has nothing behind it
    const { code, stdout, stderr } = await cli(["chat", "--no-reasoning", "--lb", "round_robin", "--target", `ipv4:127.0.0.1:${dead.port},${h.address}`, "spread"]);
    expect(code, stderr).toBe(0);
    expect(stdout).toBe("Echo: spread\n");
  });

  it("--target dns:///localhost:port (a name the resolver expands)", async () => {
    const { code, stdout } = await cli(["models", "--lb", "pick_first", "--target", `dns:///localhost:${h.gateway.grpcPort}`]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^gpt-oss-120b\s+Cerebras$/m);
  });
});

describe("TLS", () => {
  const fixture = (name: string) => fileURLToPath(new URL(`../client/fixtures/${name}`, import.meta.url));

  it("--ca FILE connects over TLS trusting that CA", async () => {
    const creds = ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(fixture("server.pem")), private_key: readFileSync(fixture("server.key")) }], false);
    const s = await recordingServer(creds);
    try {
      const { code, stderr } = await cli(["chat", "--target", `localhost:${s.port}`, "--ca", fixture("ca.pem"), "x"]);
      expect(code, stderr).toBe(0);
      expect(s.seen).toHaveLength(1);
    } finally {
      s.stop();
    }
  });

  it("--cert and --key reach a gateway that requires client certificates (mTLS); without them the handshake fails: 14", async () => {
    const tls = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
    const g = await startHarness({
      env: { TLS_CERT_FILE: tls("server.pem"), TLS_KEY_FILE: tls("server.key"), TLS_CLIENT_CA_FILE: tls("ca.pem") },
      clientCredentials: credentials.createSsl(readFileSync(tls("ca.pem")), readFileSync(tls("client.key")), readFileSync(tls("client.pem"))),
    });
    try {
      const target = `localhost:${g.gateway.grpcPort}`;
      const ok = await cli(["chat", "--no-reasoning", "--target", target, "--ca", tls("ca.pem"), "--cert", tls("client.pem"), "--key", tls("client.key"), "over mTLS"]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toBe("Echo: over mTLS\n");
      const refused = await cli(["models", "--target", target, "--ca", tls("ca.pem"), "--deadline", "5s"]);
      expect(refused.code).toBe(14);
    } finally {
      await g.close();
    }
  });

  it("an unreadable --ca file is a local failure: exit 1", async () => {
    const { code, stderr } = await cli(["models", "--ca", "/nonexistent/ca.pem"]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^aigw: .*ENOENT/);
  });
});
