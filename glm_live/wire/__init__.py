"""Floor 1, the wire: pure protocol objects. Bytes or frames in, events or frames out.

Nothing here does I/O or starts a task, and times are handed in (the one default is
``parse_retry_after``'s ``now``, the wall clock when left out). It imports only the standard
library and :mod:`glm_live.errors` (``make lint`` checks that no I/O library comes in).

- :mod:`.sse`: the server-sent-events decoder and encoder (WHATWG HTML rules).
- :mod:`.retry`: the reconnection policy (:class:`~.retry.Backoff`) and ``Retry-After``.
- :mod:`.chat`: chat-completion chunks, :class:`~.chat.Completion`, the one timing schema
  (:class:`~.chat.Timings`) and the GLM error codes.
- :mod:`.hub`: the hub's frames, rules and both ends' state machines.
- :mod:`.accounts`: the simulated world's customer accounts, one set of facts per account and
  seed, shared by the demo workflow and the simulator.
"""
