"""Floor 2, transports: thin async shells that move bytes for the wire floor's objects.

- :mod:`.sse_client`: :class:`~.sse_client.EventSource`, a resilient SSE client over httpx.
- :mod:`.hub_client`: :class:`~.hub_client.Connection`, the hub's WebSocket client.
"""
