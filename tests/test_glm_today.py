"""Today's GLM API (GLM-4.7, GLM-5, GLM-5.1): per-model defaults, preserved thinking,
``reasoning_content`` in tool-call loops, cached tokens, ``/v1/models``, OpenAI's
``stream_options.include_usage`` and ``request_id``; against the real runtime on loopback and
a byte-exact server where the body a server receives matters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from glm_live import GLMClient
from glm_live.measure.recorder import Recorder
from glm_live.server import ServerHandle, serve
from glm_live.wire.chat import build_body
from glm_live.wire.models import CATALOG, apply_defaults, model_info
from glm_live.wire.sse import Decoder
from tests.byteserver import ByteServer, error, sse

FAST = {"ttft_ms": 1, "itl_ms": 1, "tokens": 12, "reasoning_tokens": 6}
THINKERS = ["glm-4.7", "glm-5", "glm-5.1"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(seed=11) as handle:
        yield handle


def sse_data(handle: ServerHandle, path: str, body: dict[str, Any]) -> list[str]:
    """The data fields of a streamed response, read from the raw bytes with httpx."""
    decoder = Decoder()
    events = []
    with httpx.stream("POST", handle.url + path, json=body, headers=handle.headers) as r:
        assert r.status_code == 200, r.read()
        for piece in r.iter_bytes():
            events += decoder.feed(piece)
    return [e.data for e in events]


def body_for(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Plan the migration"}],
        "stream": True,
        "sim": FAST,
        **extra,
    }


# --- the catalog and the bodies the client builds ---------------------------------------------


def test_catalog_defaults() -> None:
    for name in THINKERS:
        info = CATALOG[name]
        assert info.thinks_by_default
        assert info.clear_thinking
        assert (info.context_window, info.max_output) == (200 * 1024, 128 * 1024)
    for name in ("glm-4.5", "glm-4.6"):
        assert not CATALOG[name].thinks_by_default
        assert not CATALOG[name].clear_thinking
    assert model_info("glm-4.7-sim") is CATALOG["glm-4.7"]
    assert model_info("gpt-4o") is None
    created = [CATALOG[n].created for n in ("glm-4.5", "glm-4.6", "glm-4.7", "glm-5", "glm-5.1")]
    assert created == sorted(created)


@pytest.mark.parametrize("model", THINKERS)
def test_thinking_models_get_thinking_enabled_explicitly(model: str) -> None:
    body = build_body(model, "hi", {})
    assert body["thinking"] == {"type": "enabled"}


@pytest.mark.parametrize("model", ["glm-4.6", "glm-4.5", "gpt-4o", "my-local-model"])
def test_hybrid_and_unknown_models_get_nothing_added(model: str) -> None:
    assert build_body(model, "hi", {}) == {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


def test_the_callers_fields_win() -> None:
    assert build_body("glm-5", "hi", {"thinking": False})["thinking"] == {"type": "disabled"}
    assert build_body("glm-5", "hi", {"thinking": "disabled"})["thinking"] == {"type": "disabled"}
    given = {"type": "enabled", "clear_thinking": True}
    assert build_body("glm-5.1", "hi", {"thinking": given}, clear_thinking=False)["thinking"] == (
        given
    )
    # None means "not given": the default applies.
    assert build_body("glm-4.7", "hi", {"thinking": None})["thinking"] == {"type": "enabled"}


def test_clear_thinking_goes_into_the_thinking_object() -> None:
    body = build_body("glm-4.7", "hi", {}, clear_thinking=False)
    assert body["thinking"] == {"type": "enabled", "clear_thinking": False}
    body = build_body("glm-5", "hi", {"thinking": False}, clear_thinking=True)
    assert body["thinking"] == {"type": "disabled", "clear_thinking": True}
    # Unknown models: no defaults guessed, but what the caller asked for is sent.
    assert apply_defaults("other", {}, clear_thinking=False) == {
        "thinking": {"type": "enabled", "clear_thinking": False}
    }
    assert apply_defaults("other", {}) == {}


# --- the simulator answers as each model --------------------------------------------------------


@pytest.mark.parametrize("model", THINKERS)
async def test_thinking_models_reason_by_default_through_glm_client(
    runtime: ServerHandle, model: str
) -> None:
    async with GLMClient(base_url=runtime.url + "/api/paas/v4", api_key=runtime.token) as c:
        completion = await c.complete("Plan the migration", model=model, sim=FAST)
        quiet = await c.complete("Plan the migration", model=model, thinking=False, sim=FAST)
    assert completion.model == f"{model}-sim"
    assert completion.reasoning
    assert completion.reasoning_tokens == 6
    assert completion.cached_tokens == 0
    assert quiet.model == f"{model}-sim"
    assert quiet.reasoning == ""
    assert quiet.reasoning_tokens == 0
    assert quiet.text


@pytest.mark.parametrize("model", THINKERS)
def test_thinking_models_reason_by_default_on_the_raw_wire(
    runtime: ServerHandle, model: str
) -> None:
    # Not through our client (which sends thinking explicitly): the server's own default.
    data = sse_data(runtime, "/api/paas/v4/chat/completions", body_for(model))
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"].get("reasoning_content")
    assert {c["model"] for c in chunks} == {f"{model}-sim"}
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    off = sse_data(
        runtime,
        "/api/paas/v4/chat/completions",
        body_for(model, thinking={"type": "disabled", "clear_thinking": False}),
    )
    assert not any("reasoning_content" in d for d in off[:-1])


@pytest.mark.parametrize("model", ["glm-4.6", "glm-4.5"])
def test_hybrid_models_keep_todays_behaviour(runtime: ServerHandle, model: str) -> None:
    data = sse_data(runtime, "/api/paas/v4/chat/completions", body_for(model))
    assert not any("reasoning_content" in d for d in data[:-1])
    assert json.loads(data[-2])["model"] == f"{model}-sim"
    thinking = sse_data(
        runtime, "/api/paas/v4/chat/completions", body_for(model, thinking={"type": "enabled"})
    )
    assert "reasoning_content" in thinking[0]


@pytest.mark.parametrize("model", ["glm-4.7", "glm-5.1"])
async def test_openai_sdk_sees_model_reasoning_and_cached_tokens(
    runtime: ServerHandle, model: str
) -> None:
    client = openai.AsyncOpenAI(base_url=runtime.base_url, api_key=runtime.token)
    whole = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Plan the migration"}],
        extra_body={"sim": FAST},
    )
    assert whole.model == f"{model}-sim"
    message = whole.choices[0].message.model_dump()
    assert message["reasoning_content"]
    assert whole.usage is not None
    assert whole.usage.prompt_tokens_details is not None
    assert whole.usage.prompt_tokens_details.cached_tokens == 0
    assert whole.usage.completion_tokens_details is not None
    assert whole.usage.completion_tokens_details.reasoning_tokens == 6
    off = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Plan the migration"}],
        extra_body={"sim": FAST, "thinking": {"type": "disabled"}},
    )
    assert "reasoning_content" not in off.choices[0].message.model_dump()
    await client.close()


def test_bad_thinking_fields_are_a_glm_400(runtime: ServerHandle) -> None:
    for extra, fragment in (
        ({"thinking": {"type": "enabled", "clear_thinking": "no"}}, "clear_thinking"),
        ({"stream_options": "usage"}, "stream_options"),
        ({"stream_options": {"include_usage": 1}}, "include_usage"),
        ({"request_id": 42}, "request_id"),
    ):
        r = httpx.post(
            runtime.base_url + "/chat/completions",
            json=body_for("glm-5", **extra),
            headers=runtime.headers,
        )
        assert r.status_code == 400, extra
        assert r.json()["error"]["code"] == "1214"
        assert fragment in r.json()["error"]["message"]


def test_recorder_has_cached_and_reasoning_token_columns(runtime: ServerHandle) -> None:
    import asyncio

    recorder = Recorder()

    async def chat() -> None:
        async with GLMClient(base_url=runtime.base_url, api_key=runtime.token) as c:
            completion = await c.complete("Plan the migration", model="glm-5", sim=FAST)
        number = recorder.begin("chat", model="glm-5")
        recorder.end(number, completion=completion)

    asyncio.run(chat())
    row = recorder.requests_frame().iloc[0]
    assert row["cached_tokens"] == 0
    assert row["reasoning_tokens"] == 6


# --- reasoning_content back in a tool-call loop ------------------------------------------------

REASONED_TOOL_CALL = [
    'data: {"id":"a","model":"glm-4.7","choices":[{"index":0,"delta":{"role":"assistant",'
    '"reasoning_content":"The user wants weather; call the tool."}}]}\n\n',
    'data: {"id":"a","model":"glm-4.7","choices":[{"index":0,"finish_reason":"tool_calls",'
    '"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","index":0,'
    '"type":"function","function":{"name":"get_weather","arguments":"{\\"city\\": '
    '\\"Paris\\"}"}}]}}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,'
    '"prompt_tokens_details":{"cached_tokens":8}}}\n\n',
    "data: [DONE]\n\n",
]
REASONED_ANSWER = [
    'data: {"id":"b","model":"glm-4.7","choices":[{"index":0,"delta":{"role":"assistant",'
    '"reasoning_content":"Sunny, say so."}}]}\n\n',
    'data: {"id":"b","model":"glm-4.7","choices":[{"index":0,"finish_reason":"stop",'
    '"delta":{"content":"Sunny in Paris."}}],"usage":{"prompt_tokens":30,"completion_tokens":'
    '5,"total_tokens":35}}\n\n',
    "data: [DONE]\n\n",
]


async def test_tool_call_loop_sends_reasoning_content_back(server: ByteServer) -> None:
    server.play(sse(*REASONED_TOOL_CALL), sse(*REASONED_ANSWER), sse(*REASONED_ANSWER))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    async with GLMClient(base_url=server.url, api_key="k", model="glm-4.7") as client:
        first = await client.complete(messages, tools=TOOLS)
        assert first.cached_tokens == 8
        messages.append(first.to_message())
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
        second = await client.complete(messages, tools=TOOLS)
        # A plain answer (no tool call, clear_thinking at its default): reasoning stays home.
        messages.append(second.to_message())
        messages.append({"role": "user", "content": "And tomorrow?"})
        await client.complete(messages, tools=TOOLS)
    sent = server.requests[1].json()
    assert sent["thinking"] == {"type": "enabled"}
    assistant = sent["messages"][1]
    assert assistant["reasoning_content"] == "The user wants weather; call the tool."
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    third = server.requests[2].json()["messages"]
    assert "reasoning_content" not in third[3]
    assert third[3]["content"] == "Sunny in Paris."


async def test_preserved_thinking_keeps_reasoning_on_every_turn(server: ByteServer) -> None:
    server.play(sse(*REASONED_ANSWER))
    async with GLMClient(base_url=server.url, api_key="k", model="glm-5.1") as client:
        first = await client.complete("Hi", clear_thinking=False)
        follow_up = [{"role": "user", "content": "Hi"}, first.to_message()]
        follow_up.append({"role": "user", "content": "More"})
        await client.complete(follow_up, clear_thinking=False)
    assert server.requests[0].json()["thinking"] == {"type": "enabled", "clear_thinking": False}
    assert server.requests[1].json()["messages"][1]["reasoning_content"] == "Sunny, say so."
    assert first.to_message(reasoning=False) == {"role": "assistant", "content": "Sunny in Paris."}


async def test_simulator_tool_loop_with_reasoning_round_trips(runtime: ServerHandle) -> None:
    async with GLMClient(base_url=runtime.base_url, api_key=runtime.token) as client:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "get_weather for Oslo"}]
        first = await client.complete(messages, model="glm-5", tools=TOOLS, sim=FAST)
        assert first.finish_reason == "tool_calls"
        assert first.reasoning
        message = first.to_message()
        assert message["reasoning_content"] == first.reasoning
        messages += [message, {"role": "tool", "tool_call_id": "x", "content": "cold"}]
        second = await client.complete(messages, model="glm-5", tools=TOOLS, sim=FAST)
    assert second.finish_reason == "stop"
    assert second.text


# --- /v1/models --------------------------------------------------------------------------------


def test_models_list_and_retrieve_with_the_openai_sdk(runtime: ServerHandle) -> None:
    client = openai.OpenAI(base_url=runtime.base_url, api_key=runtime.token)
    listed = {m.id: m for m in client.models.list()}
    assert set(listed) == set(CATALOG)
    for model in listed.values():
        assert model.object == "model"
        assert model.owned_by == "glm-live-sim"
        assert model.created == CATALOG[model.id].created
    one = client.models.retrieve("glm-4.7")
    assert one.id == "glm-4.7"
    assert one.created == CATALOG["glm-4.7"].created
    assert client.models.retrieve("glm-5.1-sim").id == "glm-5.1"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-99")
    assert caught.value.status_code == 404
    assert caught.value.body == {"code": "1211", "message": "model 'gpt-99' does not exist"}


def test_models_on_the_glm_path_and_for_scoped_tokens(runtime: ServerHandle) -> None:
    glm = httpx.get(runtime.url + "/api/paas/v4/models", headers=runtime.headers)
    assert glm.status_code == 200
    assert glm.json()["object"] == "list"
    assert {m["id"] for m in glm.json()["data"]} == set(CATALOG)
    missing = httpx.get(runtime.url + "/api/paas/v4/models/nope", headers=runtime.headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "1211"
    assert httpx.get(runtime.base_url + "/models").status_code == 401
    issued = httpx.post(
        runtime.url + "/auth/tokens",
        json={"name": "reader", "read": ["chat:*"], "ttl_s": 60},
        headers=runtime.headers,
    )
    assert issued.status_code == 201, issued.text
    scoped = openai.OpenAI(base_url=runtime.base_url, api_key=issued.json()["token"])
    assert "glm-5" in {m.id for m in scoped.models.list()}


def test_proxy_lists_the_upstreams_models(runtime: ServerHandle) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", runtime.token or "")
        relay = serve(backend="openai", upstream=runtime.base_url)
    with relay:
        listed = openai.OpenAI(base_url=relay.base_url, api_key=relay.token).models.list()
        # The upstream's list, as it came (the upstream is a simulator: its label shows).
        assert {m.owned_by for m in listed} == {"glm-live-sim"}


async def test_proxy_without_upstream_models_lists_the_catalog(server: ByteServer) -> None:
    server.play(error(404, {"error": {"code": "404", "message": "no such route"}}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", "upstream-key")
        relay = serve(backend="openai", upstream=server.url + "/api/paas/v4")
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(relay.base_url + "/models", headers=relay.headers)
            one = await client.get(relay.base_url + "/models/glm-5", headers=relay.headers)
    finally:
        relay.close()
    assert r.status_code == 200
    assert {m["owned_by"] for m in r.json()["data"]} == {"z-ai"}
    assert {m["id"] for m in r.json()["data"]} == set(CATALOG)
    assert one.json()["id"] == "glm-5"
    assert server.requests[0].path == "/api/paas/v4/models"
    assert server.requests[0].headers["authorization"] == "Bearer upstream-key"


# --- stream_options.include_usage ---------------------------------------------------------------


async def test_include_usage_with_the_openai_sdk(runtime: ServerHandle) -> None:
    client = openai.AsyncOpenAI(base_url=runtime.base_url, api_key=runtime.token)
    stream = await client.chat.completions.create(
        model="glm-4.7",
        messages=[{"role": "user", "content": "Plan the migration"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"sim": FAST},
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == FAST["tokens"] + FAST["reasoning_tokens"]
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 0
    assert all(chunk.usage is None for chunk in body)
    assert body[-1].choices[0].finish_reason == "stop"


def test_include_usage_on_the_raw_wire(runtime: ServerHandle) -> None:
    body = body_for("glm-5", stream_options={"include_usage": True})
    data = sse_data(runtime, "/v1/chat/completions", body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    *others, last = chunks
    assert last["choices"] == []
    assert last["usage"]["total_tokens"] == (
        last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )
    assert all("usage" in c and c["usage"] is None for c in others)
    assert others[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(isinstance(c["x_sent_ns"], int) for c in chunks)
    assert len({c["id"] for c in chunks}) == 1


def test_glm_path_keeps_usage_on_the_finishing_chunk(runtime: ServerHandle) -> None:
    body = body_for("glm-5", stream_options={"include_usage": True})
    chunks = [json.loads(d) for d in sse_data(runtime, "/api/paas/v4/chat/completions", body)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == FAST["tokens"] + FAST["reasoning_tokens"]
    assert all("usage" not in c for c in chunks[:-1])
    # /v1 without include_usage: GLM's format too (usage on the finishing chunk).
    plain = sse_data(runtime, "/v1/chat/completions", body_for("glm-5"))
    finishing = json.loads(plain[-2])
    assert finishing["choices"][0]["finish_reason"] == "stop"
    assert finishing["usage"]["completion_tokens"] == FAST["tokens"] + FAST["reasoning_tokens"]


async def test_glm_client_reads_the_usage_only_chunk(runtime: ServerHandle) -> None:
    async with GLMClient(base_url=runtime.base_url, api_key=runtime.token) as client:
        stream = client.stream(
            "Plan the migration",
            model="glm-4.7",
            stream_options={"include_usage": True},
            sim=FAST,
        )
        chunks = [c async for c in stream]
    completion = stream.completion
    assert chunks[-1].kind == "usage"
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage["completion_tokens"] == FAST["tokens"] + FAST["reasoning_tokens"]
    assert completion.cached_tokens == 0


async def test_proxy_passes_stream_options_upstream(server: ByteServer) -> None:
    server.play(sse(*REASONED_ANSWER))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", "k")
        relay = serve(backend="openai", upstream=server.url + "/v1")
    try:
        async with GLMClient(base_url=relay.base_url, api_key=relay.token) as client:
            await client.complete(
                "hi", model="glm-4.7", stream_options={"include_usage": True}, request_id="r-9"
            )
    finally:
        relay.close()
    sent = server.requests[0].json()
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["request_id"] == "r-9"
    assert sent["thinking"] == {"type": "enabled"}


# --- request_id ----------------------------------------------------------------------------------


async def test_request_id_is_echoed(runtime: ServerHandle) -> None:
    async with GLMClient(base_url=runtime.url + "/api/paas/v4", api_key=runtime.token) as c:
        given = await c.complete("hi", model="glm-5", request_id="my-req-42", sim=FAST)
        plain = await c.complete("hi", model="glm-5", sim=FAST)
    assert given.request_id == "my-req-42"
    assert str(given.id).startswith("chatcmpl-sim-")
    assert plain.request_id is None  # GLM's stream chunks carry none unless one was sent
    whole = httpx.post(
        runtime.base_url + "/chat/completions",
        json={**body_for("glm-5", request_id="whole-1"), "stream": False},
        headers=runtime.headers,
    ).json()
    assert whole["request_id"] == "whole-1"
    assert whole["id"].startswith("chatcmpl-sim-")
    made = httpx.post(
        runtime.base_url + "/chat/completions",
        json={**body_for("glm-5"), "stream": False},
        headers=runtime.headers,
    ).json()
    assert made["request_id"] == made["id"]
