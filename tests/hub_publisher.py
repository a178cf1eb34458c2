"""A client process for the hub tests: ``python -m tests.hub_publisher URL ROOM FIRST COUNT ID``
(the token in ``GLM_LIVE_TOKEN``) publishes ``FIRST`` .. ``FIRST + COUNT - 1`` to ``ROOM`` with
``Connection(client_id=ID)``, waits until the hub has acknowledged all of them, and exits. Run
several times in a row with the same ``ID``, it is a notebook restarted between cells."""

from __future__ import annotations

import asyncio
import os
import random
import sys

from glm_live.transport.hub_client import Connection
from glm_live.wire.retry import Backoff


async def main(url: str, room: str, first: int, count: int, client_id: str) -> None:
    backoff = Backoff(initial=0.02, maximum=0.2, stable_after=1.0, rng=random.Random(first))
    token = os.environ["GLM_LIVE_TOKEN"]
    async with Connection(
        url, token=token, client_id=client_id, backoff=backoff, heartbeat=0.5
    ) as hub:
        for value in range(first, first + count):
            await hub.publish(room, value)
            await asyncio.sleep(0.002)
        await hub.flush(60)
        print(f"published {count}, reconnects {hub.reconnects}", flush=True)


if __name__ == "__main__":
    url, room, first, count, client_id = sys.argv[1:6]
    asyncio.run(main(url, room, int(first), int(count), client_id))
