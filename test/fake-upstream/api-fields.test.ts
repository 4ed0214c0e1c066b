/**
 * The fake upstream's accepted request fields come from Cerebras' documented API, not from
 * the gateway's codec: the top-level list is CEREBRAS_API.md §2's field table, and the
 * message / part / nested keys are the Cerebras SDK's own request types. If either source
 * changes, this fails and the fake's table (src/fake-upstream/api-fields.ts) must follow.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MESSAGE_FIELDS, NESTED_FIELDS, PART_FIELDS, REQUEST_FIELDS } from "../../src/fake-upstream/api-fields.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const COPY = join(ROOT, "test/fixtures/cerebras-api/CEREBRAS_API.md");
/** Where CI lays shared/ (beside the clone). */
const SHARED = join(ROOT, "../shared/CEREBRAS_API.md");

/** The first cells of §2's field table: every `backticked` name in them, in order. */
function fieldTable(markdown: string): string[] {
  const section = markdown.slice(markdown.indexOf("## 2. Chat-completions request body"), markdown.indexOf("**Message content forms**"));
  const rows = section.split("\n").filter((l) => l.startsWith("| `"));
  return rows.flatMap((row) => [...row.split("|")[1]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!));
}

/** The member names of `interface name { … }` in a .d.ts (top level of that interface only). */
function members(dts: string, name: string, from = 0): string[] {
  const start = dts.indexOf(`interface ${name} {`, from);
  if (start < 0) throw new Error(`interface ${name} not found`);
  const indent = /\n( *)[^\n]*$/.exec(dts.slice(0, start + 1))?.[1]?.length ?? 0;
  const lines = dts.slice(start).split("\n").slice(1);
  const out: string[] = [];
  for (const line of lines) {
    if (line === `${" ".repeat(indent)}}`) break;
    const m = new RegExp(`^ {${indent + 4}}'?([A-Za-z_-]+)'?\\??:`).exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

const sorted = (xs: readonly string[]) => [...xs].sort();

describe("the fake's request fields", () => {
  it("are CEREBRAS_API.md §2's field table, in its order", () => {
    expect(REQUEST_FIELDS).toEqual(fieldTable(readFileSync(COPY, "utf8")));
  });

  it.runIf(existsSync(SHARED))("the repository's copy of CEREBRAS_API.md has the same table as shared/ (CI lays it beside the clone)", () => {
    expect(fieldTable(readFileSync(COPY, "utf8"))).toEqual(fieldTable(readFileSync(SHARED, "utf8")));
  });

  const sdk = join(dirname(createRequire(import.meta.url).resolve("@cerebras/cerebras_cloud_sdk")), "resources/chat/completions.d.ts");
  const dts = readFileSync(sdk, "utf8");
  const params = dts.indexOf("export declare namespace ChatCompletionCreateParams {");

  it("agree with the SDK's body params", () => {
    const body = members(dts, "ChatCompletionCreateParamsBase").filter((m) => !/^[A-Z]/.test(m)); // header params are capitalised
    expect(sorted(REQUEST_FIELDS)).toEqual(sorted(body));
  });

  it("per message role, part type and nested object, are the SDK's request types", () => {
    const roles: Record<string, string> = { system: "SystemMessageRequest", developer: "DeveloperMessageRequest", user: "UserMessageRequest", assistant: "AssistantMessageRequest", tool: "ToolMessageRequest" };
    for (const [role, type] of Object.entries(roles)) expect(sorted(MESSAGE_FIELDS[role]!), role).toEqual(sorted(members(dts, type, params)));
    const user = dts.indexOf("interface UserMessageRequest {", params);
    expect(sorted(PART_FIELDS["text"]!)).toEqual(sorted(members(dts, "TextContent", user)));
    expect(sorted(PART_FIELDS["image_url"]!)).toEqual(sorted(members(dts, "ImageURLContent", user)));
    expect(sorted(PART_FIELDS["image"]!)).toEqual(sorted(members(dts, "ImageContent", user)));
    expect(sorted(NESTED_FIELDS.imageUrl)).toEqual(sorted(members(dts, "ImageURL", user)));
    const assistant = dts.indexOf("interface AssistantMessageRequest {", params);
    expect(sorted(NESTED_FIELDS.toolCall)).toEqual(sorted(members(dts, "ToolCall", assistant)));
    expect(sorted(NESTED_FIELDS.toolCallFunction)).toEqual(sorted(members(dts, "Function", dts.indexOf("interface ToolCall {", assistant))));
    expect(sorted(NESTED_FIELDS.tool)).toEqual(sorted(members(dts, "Tool", params)));
    expect(sorted(NESTED_FIELDS.toolFunction)).toEqual(sorted(members(dts, "Function", dts.indexOf("interface Tool {", params))));
    expect(sorted(NESTED_FIELDS.toolChoice)).toEqual(sorted(members(dts, "ChoiceObject", params)));
    expect(sorted(NESTED_FIELDS.jsonSchema)).toEqual(sorted(members(dts, "JsonSchema", params)));
    expect(sorted(NESTED_FIELDS.streamOptions)).toEqual(sorted(members(dts, "StreamOptions", params)));
    expect(sorted(NESTED_FIELDS.prediction)).toEqual(sorted(members(dts, "Prediction", params)));
  });
});
