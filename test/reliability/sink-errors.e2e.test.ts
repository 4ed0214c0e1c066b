/**
 * The caller's side of a stream failing inside the provider: chunks are pushed to the
 * transport's sink from the socket reads, so whatever the sink throws ends the upstream
 * request. A bug there is INTERNAL (never retried, never blamed on Cerebras); a sink that
 * gives up with a GatewayError (the client went away) ends the stream with it.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { CallScope } from "../../src/core/call-scope.js";
import { Code, GatewayError, Reason } from "../../src/core/errors.js";
import { startFakeUpstream, type FakeUpstream } from "../../src/fake-upstream/server.js";
import { CerebrasProvider } from "../../src/providers/cerebras/provider.js";
import { until, userRequest } from "../helpers/harness.js";

const request = (): ChatCompletionRequest => userRequest("hi", { model: "gpt-oss-120b" });

let fake: FakeUpstream;
let provider: CerebrasProvider;
let scope: CallScope;

beforeEach(async () => {
  fake = await startFakeUpstream({ apiKey: "k", fixedTokens: 50, tokenDelayMs: 2 });
  provider = new CerebrasProvider({ baseUrl: fake.url, apiKey: "k" });
  scope = new CallScope(Infinity, 10_000, "sink-test");
});

afterEach(async () => {
  scope.dispose();
  await provider.close();
  await fake.close();
});

describe("a sink that fails", () => {
  it("with a bug: the stream ends INTERNAL with the bug as its cause, is not retried, and the upstream request is closed", async () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
    const failure = await provider
      .streamChatCompletion(request(), scope, () => {
        throw bug;
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toBeInstanceOf(GatewayError);
    expect((failure as GatewayError).code).toBe(Code.INTERNAL);
    expect((failure as GatewayError).cause).toBe(bug);
    expect(fake.chatRequests()).toHaveLength(1);
    await until(() => fake.openRequests() === 0, 5000, "the upstream request to close");
    expect(fake.chatRequests()[0]!.chunksSent).toBeLessThan(52);
  });

  it("with a GatewayError after some chunks: the stream ends with it and the chunk count, and the upstream request is closed", async () => {
    let seen = 0;
    const gone = new GatewayError({ code: Code.CANCELLED, reason: Reason.CANCELLED, message: "the client went away" });
    const failure = await provider
      .streamChatCompletion(request(), scope, () => (++seen === 3 ? Promise.reject(gone) : undefined))
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toBeInstanceOf(GatewayError);
    expect((failure as GatewayError).reason).toBe(Reason.CANCELLED);
    expect((failure as GatewayError).metadata["chunksDelivered"]).toBe("3");
    expect(fake.chatRequests()).toHaveLength(1);
    await until(() => fake.openRequests() === 0, 5000, "the upstream request to close");
    expect(fake.chatRequests()[0]!.chunksSent).toBeLessThan(52);
  });
});
