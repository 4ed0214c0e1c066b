/**
 * The shape every reader of untyped JSON in the codec narrows to first.
 */
export type JsonObject = Record<string, unknown>;

/** A plain JSON object: not null, not an array. */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Whether `value` nests objects and arrays deeper than `max` levels (a scalar is 0, `{}`
 * and `[]` are 1). Iterative, so no input can exhaust the stack, and it stops at the
 * first path that goes too deep.
 */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const v = top.value;
    if (typeof v !== "object" || v === null) continue;
    const depth = top.depth + 1;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push({ value: child, depth });
    }
  }
  return false;
}
