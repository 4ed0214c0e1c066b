/**
 * `__proto__` in an HTTP body is a key like any other: unknown, so a 400 naming it. It
 * never becomes the prototype of the gateway's copy of the request, so nothing under it
 * slips past the unknown-field check or reaches the upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

/** JSON text with a literal "__proto__" key (JSON.stringify of an object literal could not write one). */
const post = (text: string) => raw(h.httpPort, { path: "/v1/chat/completions", body: text, headers: { "content-type": "application/json" } });

const USER = '{"role":"user","content":"hi"}';

describe("__proto__ in a chat request", () => {
  for (const [where, text, field] of [
    ["at the top level", `{"model":"gpt-oss-120b","messages":[${USER}],"__proto__":{"temperature":0.5,"seed":7}}`, "__proto__"],
    ["in an assistant message", `{"model":"gpt-oss-120b","messages":[${USER},{"role":"assistant","content":"a","__proto__":{"name":"smuggled"}},${USER}]}`, "messages.1.__proto__"],
    ["in a user message", `{"model":"gpt-oss-120b","messages":[{"role":"user","content":"hi","__proto__":{"name":"smuggled"}}]}`, "messages.0.__proto__"],
    ["in a tool's function", `{"model":"gpt-oss-120b","messages":[${USER}],"tools":[{"type":"function","function":{"name":"f","__proto__":{"description":"smuggled"}}}]}`, "tools.0.function.__proto__"],
  ] as const) {
    it(`${where}: 400 naming ${field}, and nothing reaches the upstream`, async () => {
      const before = h.fake.chatRequests().length;
      const res = await post(text);
      expect(res.status, res.text).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: { param: field, type: "invalid_request_error" } });
      expect(h.fake.chatRequests().length).toBe(before);
      for (const r of h.fake.chatRequests()) expect(JSON.stringify(r.body)).not.toMatch(/smuggled|"seed":7/);
    });
  }

  it("a __proto__ key inside a JSON value (tool parameters) is passed through as data, as it was sent", async () => {
    const res = await post(`{"model":"gpt-oss-120b","messages":[${USER}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","__proto__":{"x":1}}}}]}`);
    expect(res.status, res.text).toBe(200);
    const sent = h.fake.chatRequests().at(-1)!.body as { tools: Array<{ function: { parameters: Record<string, unknown> } }> };
    expect(Object.hasOwn(sent.tools[0]!.function.parameters, "__proto__")).toBe(true);
  });
});
