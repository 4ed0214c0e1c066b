"""Calls the gateway from Python with the stubs in gen/python: unary, streaming, errors.

Proves the contract works with a gRPC implementation we did not write (grpcio's C core).
Decodes grpc-status-details-bin by hand with the generated google.rpc stubs, as any
client without grpcio-status would. Prints one JSON report on stdout for the vitest test
(test/python/interop.test.ts) to check; exits non-zero if a step fails unexpectedly.

Usage: /usr/bin/python3 test/python/interop_client.py HOST:PORT
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "gen" / "python"))

import grpc  # noqa: E402  (after the path set-up, like the generated stubs)
from aigateway.v1 import chat_pb2, chat_pb2_grpc, models_pb2, models_pb2_grpc  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402

DEADLINE_S = 10


def user(text):
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)


def unary(chat):
    reply, call = chat.CreateChatCompletion.with_call(
        chat_pb2.ChatCompletionRequest(messages=[user("hello from python")]),
        timeout=DEADLINE_S,
        metadata=[("x-request-id", "py-unary-1")],
    )
    choice = reply.choices[0]
    return {
        "content": choice.message.content,
        "finishReason": chat_pb2.FinishReason.Name(choice.finish_reason),
        "totalTokens": reply.usage.total_tokens,
        "requestIdHeader": dict(call.initial_metadata()).get("x-request-id"),
    }


def streaming(chat):
    chunks = list(chat.StreamChatCompletion(chat_pb2.ChatCompletionRequest(messages=[user("stream to python")]), timeout=DEADLINE_S))
    last = chunks[-1]
    return {
        "chunks": len(chunks),
        "content": "".join(c.choices[0].delta.content for c in chunks if c.choices),
        "finishReason": chat_pb2.FinishReason.Name(last.choices[0].finish_reason),
        "completionTokens": last.usage.completion_tokens,
    }


def rich_error(err):
    """grpc.RpcError → code, message and the google.rpc details, decoded."""
    out = {"code": err.code().name, "message": err.details()}
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return out
    status = status_pb2.Status.FromString(raw)
    out["statusCode"] = status.code
    out["statusMessage"] = status.message
    out["errorInfoCount"] = 0
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            out["errorInfoCount"] += 1
            out["errorInfo"] = {"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)}
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            out["fieldViolations"] = [{"field": v.field, "description": v.description} for v in bad.field_violations]
    return out


def expect_error(call):
    try:
        call()
    except grpc.RpcError as err:
        return rich_error(err)
    raise AssertionError("expected the call to fail")


def main(target):
    with grpc.insecure_channel(target) as channel:
        chat = chat_pb2_grpc.ChatServiceStub(channel)
        models = models_pb2_grpc.ModelServiceStub(channel)
        report = {
            "unary": unary(chat),
            "streaming": streaming(chat),
            "models": [m.id for m in models.ListModels(models_pb2.ListModelsRequest(), timeout=DEADLINE_S).models],
            "invalidRequest": expect_error(lambda: chat.CreateChatCompletion(chat_pb2.ChatCompletionRequest(), timeout=DEADLINE_S)),
            "modelNotFound": expect_error(
                lambda: list(chat.StreamChatCompletion(chat_pb2.ChatCompletionRequest(model="no-such-model", messages=[user("x")]), timeout=DEADLINE_S))
            ),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: interop_client.py HOST:PORT")
    main(sys.argv[1])
