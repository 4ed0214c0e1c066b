/**
 * GET /v1/models and GET /v1/models/{id}, in OpenAI's list / model shapes.
 */
import type { ChatService } from "../core/chat-service.js";
import { modelToJson } from "../wire/response-to-json.js";
import type { HttpCall } from "./call.js";
import { sendJson } from "./respond.js";

export async function listModels(call: HttpCall, chat: ChatService): Promise<void> {
  const { models } = await chat.listModels(call.scope);
  sendJson(call.res, 200, { object: "list", data: models.map(modelToJson) });
}

export async function getModel(call: HttpCall, chat: ChatService): Promise<void> {
  const model = await chat.getModel(call.params["id"] ?? "", call.scope);
  sendJson(call.res, 200, modelToJson(model));
}
