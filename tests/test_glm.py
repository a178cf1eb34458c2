"""GLMClient against a byte-exact server replaying GLM-4.6's wire format verbatim."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest

from glm_live import (
    AuthenticationError,
    Backoff,
    Completion,
    ContentFilteredError,
    GLMClient,
    InsufficientBalanceError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    StreamInterrupted,
)
from tests.byteserver import ByteServer, Reply, error, sse

KEY = "0123456789abcdef.glmtestsecretkey"

# Verbatim from the Z.ai streaming guide (docs.z.ai/guides/capabilities/streaming).
DOCS_STREAM = [
    'data: {"id":"1","created":1677652288,"model":"glm-4.6","choices":[{"index":0,"delta":'
    '{"content":"Spring"},"finish_reason":null}]}\n\n',
    'data: {"id":"1","created":1677652288,"model":"glm-4.6","choices":[{"index":0,"delta":'
    '{"content":" comes"},"finish_reason":null}]}\n\n',
    'data: {"id":"1","created":1677652288,"model":"glm-4.6","choices":[{"index":0,'
    '"finish_reason":"stop","delta":{"role":"assistant","content":""}}],"usage":'
    '{"prompt_tokens":8,"completion_tokens":262,"total_tokens":270,"prompt_tokens_details":'
    '{"cached_tokens":0}}}\n\n',
    "data: [DONE]\n\n",
]
# A captured GLM-4.6 chunk with no "object" field.
CAPTURED = (
    'data: {"id":"202510181239034578873d49744455","created":1760762344,"model":"glm-4.6",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"\\n"}}]}\n\n'
)
# A whole tool call in the same chunk as finish_reason (observed on GLM-4).
WHOLE_TOOL_CALL = (
    'data: {"id":"t","choices":[{"index":0,"finish_reason":"tool_calls","delta":{"role":'
    '"assistant","content":null,"tool_calls":[{"id":"call_2025051415263","index":0,"type":'
    '"function","function":{"name":"execute_shell_command","arguments":'
    '"{\\"cmd\\": \\"ls\\"}"}}]}}]}\n\n'
)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}}
    if finish is not None:
        choice["finish_reason"] = finish
    return (
        "data: "
        + json.dumps({"id": "c1", "model": "glm-4.6", "choices": [choice], **extra})
        + "\n\n"
    )


def client_for(server: ByteServer, **kwargs: Any) -> GLMClient:
    kwargs.setdefault("backoff", Backoff(initial=0.01, maximum=0.05, rng=random.Random(0)))
    return GLMClient(base_url=server.url + "/api/paas/v4", api_key=KEY, **kwargs)


async def test_docs_stream_assembles(server: ByteServer) -> None:
    server.play(sse(*DOCS_STREAM))
    async with client_for(server) as client:
        stream = client.stream("Write a poem about spring")
        chunks = [c async for c in stream]
    completion = stream.completion
    assert [c.content for c in chunks] == ["Spring", " comes", ""]
    assert completion.text == "Spring comes"
    assert completion.finish_reason == "stop"
    assert completion.usage == {
        "prompt_tokens": 8,
        "completion_tokens": 262,
        "total_tokens": 270,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert completion.model == "glm-4.6"
    assert completion.id == "1"
    request = server.requests[0]
    assert request.path == "/api/paas/v4/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert request.json() == {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": "Write a poem about spring"}],
        "stream": True,
    }


async def test_request_fields_and_pass_through(server: ByteServer) -> None:
    server.play(sse(*DOCS_STREAM))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    async with client_for(server) as client:
        await client.complete(
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            thinking=True,
            tools=tools,
            tool_choice="auto",
            tool_stream=True,
            temperature=0.2,
            top_p=0.9,
            max_tokens=64,
            stop=["END"],
            stream_options={"include_usage": True},
            request_id="r-1",
            model="glm-4.5",
            top_k=None,
        )
    body = server.requests[0].json()
    assert body["thinking"] == {"type": "enabled"}
    assert body["tools"] == tools
    assert body["tool_choice"] == "auto"
    assert body["tool_stream"] is True
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 64
    assert body["stop"] == ["END"]
    assert body["stream_options"] == {"include_usage": True}
    assert body["request_id"] == "r-1"
    assert body["model"] == "glm-4.5"
    assert "top_k" not in body
    assert len(body["messages"]) == 2


async def test_thinking_disabled(server: ByteServer) -> None:
    server.play(sse(*DOCS_STREAM))
    async with client_for(server) as client:
        await client.complete("x", thinking=False)
    assert server.requests[0].json()["thinking"] == {"type": "disabled"}


async def test_reasoning_then_content_and_timings(server: ByteServer) -> None:
    server.play(
        sse(
            CAPTURED,
            0.02,
            chunk({"reasoning_content": "Let me think."}),
            0.02,
            chunk({"reasoning_content": " Done."}),
            0.02,
            chunk({"content": "Answer"}),
            chunk({}, finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 4}),
            "data: [DONE]\n\n",
        )
    )
    async with client_for(server) as client:
        completion = await client.complete("q")
    assert completion.reasoning == "Let me think. Done."
    assert completion.text == "\nAnswer"
    t = completion.timings
    stamps = [
        t.request_start_ns,
        t.request_sent_ns,
        t.headers_ns,
        t.first_byte_ns,
        t.first_event_ns,
        t.first_reasoning_ns,
        t.end_ns,
    ]
    assert all(s is not None for s in stamps)
    assert stamps == sorted(stamps)  # type: ignore[type-var]
    assert t.first_content_ns == t.first_event_ns  # the captured chunk's "\n" is content
    assert t.first_reasoning_ns is not None
    assert t.first_reasoning_ns > t.first_event_ns
    assert len(t.event_arrivals_ns) == 6  # five chunks and [DONE]
    assert list(t.event_arrivals_ns) == sorted(t.event_arrivals_ns)
    assert t.ttft is not None
    assert t.e2e is not None
    assert 0 < t.ttft < t.e2e
    assert t.attempts == 1
    assert t.wall_anchor_ns is not None


async def test_fragmented_tool_calls_by_index(server: ByteServer) -> None:
    server.play(
        sse(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({}, finish="tool_calls"),
            "data: [DONE]\n\n",
        )
    )
    async with client_for(server) as client:
        completion = await client.complete("weather?", tools=[], tool_stream=True)
    calls = completion.tool_calls
    assert [(c.index, c.id, c.name) for c in calls] == [
        (0, "call_a", "get_weather"),
        (1, "call_b", "get_time"),
    ]
    assert calls[0].parsed_arguments() == {"city": "Paris"}
    assert calls[1].parsed_arguments() == {}
    assert completion.finish_reason == "tool_calls"
    assert completion.timings.first_tool_call_ns is not None
    assert completion.to_message()["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'


async def test_whole_tool_call_in_finish_chunk(server: ByteServer) -> None:
    server.play(sse(WHOLE_TOOL_CALL, "data: [DONE]\n\n"))
    async with client_for(server) as client:
        completion = await client.complete("list files")
    assert completion.finish_reason == "tool_calls"
    (call,) = completion.tool_calls
    assert call.id == "call_2025051415263"
    assert call.name == "execute_shell_command"
    assert call.parsed_arguments() == {"cmd": "ls"}


async def test_tool_arguments_cut_short_are_a_typed_error(server: ByteServer) -> None:
    server.play(
        sse(
            chunk(
                {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": '{"a": '}}]},
                finish="length",
            ),
            "data: [DONE]\n\n",
        )
    )
    async with client_for(server) as client:
        completion = await client.complete("x")
    with pytest.raises(MalformedResponseError, match="not JSON"):
        completion.tool_calls[0].parsed_arguments()


# --- errors ---------------------------------------------------------------------------------


async def test_401_authentication_error_not_retried(server: ByteServer) -> None:
    server.play(
        error(
            401,
            {
                "error": {
                    "code": "1002",
                    "message": "Authorization Token is "
                    "invalid, please ensure that the Authorization Token is "
                    "correctly provided.",
                }
            },
        )
    )
    async with client_for(server) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.complete("x")
    assert info.value.status == 401
    assert info.value.code == "1002"
    assert info.value.retryable is False
    assert "ZAI_API_KEY" in str(info.value)
    assert server.connections == 1


async def test_429_1302_is_retried_with_retry_after_then_succeeds(server: ByteServer) -> None:
    limited = error(
        429,
        {"error": {"code": "1302", "message": "Rate limit reached for requests"}},
        {"retry-after": "0.05"},
    )
    server.play(limited, sse(*DOCS_STREAM))
    async with client_for(server) as client:
        completion = await client.complete("x")
    assert completion.text == "Spring comes"
    assert completion.timings.attempts == 2
    assert server.connections == 2


async def test_429_retries_exhaust_into_rate_limit_error(server: ByteServer) -> None:
    server.play(
        error(
            429,
            {"error": {"code": "1302", "message": "Rate limit reached"}},
            {"retry-after": "0.01"},
        )
    )
    async with client_for(server, max_retries=2) as client:
        with pytest.raises(RateLimitError) as info:
            await client.complete("x")
    assert info.value.retry_after == pytest.approx(0.01)
    assert info.value.code == "1302"
    assert server.connections == 3


async def test_retries_can_be_turned_off(server: ByteServer) -> None:
    server.play(error(500, {"error": {"code": "500", "message": "Internal"}}))
    async with client_for(server, max_retries=0) as client:
        with pytest.raises(ServerError):
            await client.complete("x")
    assert server.connections == 1


async def test_1113_is_not_retried_though_429(server: ByteServer) -> None:
    server.play(
        error(
            429,
            {
                "error": {
                    "code": "1113",
                    "message": "Your account is in arrears, please recharge and try again",
                }
            },
        )
    )
    async with client_for(server) as client:
        with pytest.raises(InsufficientBalanceError) as info:
            await client.complete("x")
    assert info.value.status == 429
    assert info.value.retryable is False
    assert server.connections == 1


async def test_400_invalid_request(server: ByteServer) -> None:
    server.play(error(400, {"error": {"code": "1214", "message": "Input cannot be empty"}}))
    async with client_for(server) as client:
        with pytest.raises(InvalidRequestError, match="Input cannot be empty"):
            await client.complete("x")


async def test_5xx_retried_then_server_error(server: ByteServer) -> None:
    server.play(error(502, "<html>bad gateway</html>"))
    async with client_for(server, max_retries=1) as client:
        with pytest.raises(ServerError) as info:
            await client.complete("x")
    assert info.value.status == 502
    assert "bad gateway" in str(info.value)
    assert server.connections == 2


async def test_sensitive_finish_is_content_filtered_with_partial(server: ByteServer) -> None:
    server.play(
        sse(
            chunk({"content": "Once upon"}),
            chunk({"content": ""}, finish="sensitive"),
            "data: [DONE]\n\n",
        )
    )
    seen = []
    async with client_for(server) as client:
        stream = client.stream("x")
        with pytest.raises(ContentFilteredError) as info:
            async for c in stream:
                seen.append(c.content)
    assert seen == ["Once upon", ""]  # every chunk reached the caller before the error
    assert info.value.code == "1301"
    assert info.value.partial is stream.completion
    assert info.value.partial.text == "Once upon"


async def test_network_error_finish_is_stream_interrupted(server: ByteServer) -> None:
    server.play(
        sse(chunk({"content": "Half an"}), chunk({}, finish="network_error"), "data: [DONE]\n\n")
    )
    async with client_for(server) as client:
        with pytest.raises(StreamInterrupted) as info:
            await client.complete("x")
    assert info.value.partial.text == "Half an"
    assert info.value.partial.finish_reason == "network_error"
    assert server.connections == 1  # chunks had been delivered: no retry


async def test_dropped_connection_keeps_partial(server: ByteServer) -> None:
    server.play(sse(chunk({"content": "Hello"}), chunk({"content": " wor"}), end="drop"))
    async with client_for(server) as client:
        with pytest.raises(StreamInterrupted) as info:
            await client.complete("x")
    assert info.value.partial.text == "Hello wor"
    assert info.value.partial.chunks == 2
    assert "after 2 chunks" in str(info.value)
    assert server.connections == 1


async def test_drop_before_first_chunk_is_retried(server: ByteServer) -> None:
    server.play(sse(": hello\n\n", end="drop"), sse(*DOCS_STREAM))
    async with client_for(server) as client:
        completion = await client.complete("x")
    assert completion.text == "Spring comes"
    assert server.connections == 2


async def test_stalled_stream_is_interrupted_by_idle_timeout(server: ByteServer) -> None:
    server.play(sse(chunk({"content": "Hi"}), end="hang"))
    async with client_for(server, idle_timeout=0.2) as client:
        with pytest.raises(StreamInterrupted, match=r"no bytes for 0\.2 s") as info:
            await client.complete("x")
    assert info.value.partial.text == "Hi"


async def test_end_without_done_or_finish_reason(server: ByteServer) -> None:
    server.play(sse(chunk({"content": "Hi"})))
    async with client_for(server) as client:
        with pytest.raises(StreamInterrupted, match="no finish_reason, no \\[DONE\\]"):
            await client.complete("x")


async def test_finish_reason_without_done_is_complete(server: ByteServer) -> None:
    server.play(sse(chunk({"content": "Hi"}), chunk({}, finish="stop")))
    async with client_for(server) as client:
        completion = await client.complete("x")
    assert completion.text == "Hi"


async def test_bad_json_is_malformed_with_partial(server: ByteServer) -> None:
    server.play(sse(chunk({"content": "ok"}), "data: {not json\n\n", chunk({"content": "late"})))
    async with client_for(server) as client:
        with pytest.raises(MalformedResponseError, match="not JSON") as info:
            await client.complete("x")
    assert info.value.partial.text == "ok"


async def test_in_stream_error_object(server: ByteServer) -> None:
    server.play(
        sse('data: {"error":{"code":"1302","message":"Rate limit reached for requests"}}\n\n'),
        sse(*DOCS_STREAM),
    )
    async with client_for(server) as client:
        completion = await client.complete("x")
    # A rate limit delivered inside a 200 stream is retried too (openai-python#2699).
    assert completion.text == "Spring comes"
    assert server.connections == 2


async def test_in_stream_error_after_content_is_raised(server: ByteServer) -> None:
    server.play(
        sse(
            chunk({"content": "ab"}),
            'event: error\ndata: {"error":{"code":"500","message":"boom"}}\n\n',
        )
    )
    async with client_for(server) as client:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the class is asserted below
            await client.complete("x")
    assert type(info.value).__name__ == "GLMError"
    assert info.value.partial.text == "ab"  # type: ignore[attr-defined]


async def test_oversized_event_is_malformed(server: ByteServer) -> None:
    server.play(sse(chunk({"content": "ok"}), chunk({"content": "x" * 5000})))
    async with client_for(server, max_line_size=2000) as client:
        with pytest.raises(MalformedResponseError, match="max_line_size") as info:
            await client.complete("x")
    assert info.value.partial.text == "ok"


async def test_wrong_content_type_is_malformed(server: ByteServer) -> None:
    server.play(
        Reply(
            headers={"content-type": "application/json"}, steps=[b'{"choices": []}'], chunked=False
        )
    )
    async with client_for(server) as client:
        with pytest.raises(MalformedResponseError, match="application/json"):
            await client.complete("x")


async def test_cancel_mid_stream_closes_connection(server: ByteServer) -> None:
    server.play(sse(chunk({"content": "a"}), chunk({"content": "b"}), end="hang"))
    async with client_for(server) as client:
        stream = client.stream("x")
        async for _ in stream:
            break
        await stream.aclose()
    assert stream.completion.text == "a"
    assert stream.completion.done is False


# --- secrets ----------------------------------------------------------------------------------


async def test_key_never_leaks(server: ByteServer, caplog: pytest.LogCaptureFixture) -> None:
    echo = error(401, {"error": {"code": "1002", "message": f"Token {KEY} is invalid"}})
    server.play(echo)
    with caplog.at_level(logging.DEBUG):
        client = client_for(server)
        assert KEY not in repr(client)
        assert "api_key=set" in repr(client)
        with pytest.raises(AuthenticationError) as info:
            await client.complete("x")
        server.play(sse(*DOCS_STREAM))
        completion = await client.complete("x")
        await client.aclose()
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)
    assert KEY not in caplog.text
    assert KEY not in json.dumps(completion.timings.as_dict())
    assert KEY not in repr(completion)
    assert KEY[:16] not in str(vars(client))


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZAI_API_KEY", raising=False)
    monkeypatch.setenv("ZHIPUAI_API_KEY", "zhipu-key-123456")
    assert GLMClient().has_api_key
    monkeypatch.delenv("ZHIPUAI_API_KEY")
    monkeypatch.delenv("ZAI_BASE_URL", raising=False)
    client = GLMClient()
    assert not client.has_api_key
    assert client.url == "https://api.z.ai/api/paas/v4/chat/completions"


def test_completion_to_message_keeps_reasoning() -> None:
    completion = Completion()
    assert completion.to_message() == {"role": "assistant", "content": ""}
