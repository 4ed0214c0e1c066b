"""Sends a JSON Schema whose property order matters, from Python (grpcio, gen/python).

The schema goes as JSON text (parameters_json, schema_json): a Struct is a map, and no
runtime promises to keep a map's order. The vitest side (test/contract/schema-order.e2e.test.ts)
checks the bytes the fake Cerebras received. Prints the tool call's arguments as JSON.

Usage: /usr/bin/python3 test/python/schema_order_client.py HOST:PORT PARAMETERS_JSON SCHEMA_JSON
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "gen" / "python"))

import grpc  # noqa: E402
from aigateway.v1 import chat_pb2, chat_pb2_grpc  # noqa: E402


def main(target, parameters_json, schema_json):
    request = chat_pb2.ChatCompletionRequest(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="answer with reasoning first")],
        tools=[chat_pb2.Tool(function=chat_pb2.FunctionDefinition(name="answer", parameters_json=parameters_json, strict=True))],
        response_format=chat_pb2.ResponseFormat(json_schema=chat_pb2.JsonSchemaFormat(name="answer", schema_json=schema_json, strict=True)),
    )
    with grpc.insecure_channel(target) as channel:
        reply = chat_pb2_grpc.ChatServiceStub(channel).CreateChatCompletion(request, timeout=10)
    calls = reply.choices[0].message.tool_calls
    print(json.dumps({"arguments": calls[0].function.arguments if calls else None}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: schema_order_client.py HOST:PORT PARAMETERS_JSON SCHEMA_JSON")
    main(*sys.argv[1:])
