"""Floor 1, the wire: pure protocol objects. Bytes or frames in, events or frames out.

Nothing here does I/O, starts a task or reads a clock it was not handed. It imports only
the standard library and :mod:`glm_live.errors`.

- :mod:`.sse`: the server-sent-events decoder and encoder (WHATWG HTML rules).
- :mod:`.retry`: the reconnection policy (:class:`~.retry.Backoff`) and ``Retry-After``.
- :mod:`.hub`: the hub's frames, rules and both ends' state machines.
"""
