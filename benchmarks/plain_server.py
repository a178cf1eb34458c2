"""The baseline for benchmarks/sim_throughput.py: a plain Starlette ``StreamingResponse`` generator
server, as one would write it, sending the same chunk shape (with ``x_sent_ns``) every ITL.

Run: ``uvicorn bench.plain_server:app`` (the bench starts it in its own process).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def chat(request: Request) -> StreamingResponse:
    body = await request.json()
    sim = body.get("sim", {})
    tokens = int(sim.get("tokens", 64))
    ttft = float(sim.get("ttft_ms", 20)) / 1000
    itl = float(sim.get("itl_ms", 20)) / 1000

    async def chunks() -> AsyncIterator[str]:
        await asyncio.sleep(ttft)
        for i in range(tokens):
            chunk = {
                "id": "chatcmpl-plain",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "glm-4.6-plain",
                "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}],
                "x_sent_ns": time.time_ns(),
            }
            yield f"data: {json.dumps(chunk)}\n\n"
            if i < tokens - 1:
                await asyncio.sleep(itl)
        yield "data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
