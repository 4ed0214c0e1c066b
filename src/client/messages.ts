/**
 * Small builders for the messages most calls send.
 */
import { Message, type Role } from "../../gen/aigateway/v1/chat.js";

/** A plain-text message, e.g. `textMessage(Role.ROLE_USER, "Say hi")`. */
export function textMessage(role: Role, text: string): Message {
  return Message.fromPartial({ role, contentKind: { $case: "content", value: text } });
}
