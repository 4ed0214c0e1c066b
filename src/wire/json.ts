/**
 * The shape every reader of untyped JSON in the codec narrows to first.
 */
export type JsonObject = Record<string, unknown>;

/** A plain JSON object: not null, not an array. */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
