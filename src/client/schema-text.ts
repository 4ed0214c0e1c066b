/**
 * JSON Schemas as JSON text: a google.protobuf.Struct is a map, and protobuf promises no
 * map order, so a schema sent as a Struct may reach Cerebras with its properties
 * reordered (and with strict decoding the model writes them in schema order). The client
 * sends each Struct it is given as parameters_json / schema_json instead, which the
 * gateway passes on byte for byte. JSON.stringify keeps a JavaScript object's insertion
 * order, except that integer-like keys ("1", "2") come first in ascending order; give
 * the text yourself (parametersJson, schemaJson) to control that too.
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";

/** The request with every Struct schema replaced by its JSON text (a copy where it changes; the caller's object is not touched). */
export function withSchemaText(request: ChatCompletionRequest): ChatCompletionRequest {
  let out = request;
  if (request.tools.some((t) => t.function?.parameters !== undefined && t.function.parametersJson === undefined)) {
    out = {
      ...out,
      tools: request.tools.map((t) => {
        const fn = t.function;
        if (fn?.parameters === undefined || fn.parametersJson !== undefined) return t;
        const { parameters, ...rest } = fn;
        return { ...t, function: { ...rest, parametersJson: JSON.stringify(parameters) } };
      }),
    };
  }
  const format = request.responseFormat?.format;
  if (format?.$case === "jsonSchema" && format.value.schema !== undefined && format.value.schemaJson === undefined) {
    const { schema, ...rest } = format.value;
    out = { ...out, responseFormat: { format: { $case: "jsonSchema", value: { ...rest, schemaJson: JSON.stringify(schema) } } } };
  }
  return out;
}
