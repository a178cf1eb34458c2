"""Backoff policy for reconnecting and retrying: pure arithmetic, no I/O, no clock of its own.

The policy is exponential backoff with *full jitter* (the delay is drawn uniformly between zero
and the exponential ceiling), which spreads a crowd of clients that lost the same server instead
of having them return in lockstep. Two rules the anchors get wrong are built in:

- **Reset only after stable uptime.** The failure count goes back to zero only when a connection
  has stayed up for ``stable_after`` seconds. A server that accepts and closes at once therefore
  meets growing delays, not a tight reconnect loop (websockets resets on every open).
- **The server's word is a floor.** An SSE ``retry:`` field or a ``Retry-After`` header says how
  long the server wants us to wait; the jittered delay is never shorter than that.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Backoff", "parse_retry_after"]


@dataclass
class Backoff:
    """Exponential backoff with full jitter, a cap, and reset after stable uptime.

    Args:
        initial: Ceiling of the first delay, in seconds.
        maximum: Cap on any delay, in seconds (a server floor above it still wins).
        multiplier: Growth of the ceiling per consecutive failure.
        stable_after: Seconds a connection must stay up before the failure count resets.
        max_floor: The longest a server may make us wait, in seconds: a larger ``retry`` or
            ``Retry-After`` is cut to it, so that no wait is unbounded.
        rng: Source of randomness (a seeded ``random.Random`` makes delays reproducible).

    Attributes:
        failures: Consecutive failures since the last stable connection.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    stable_after: float = 5.0
    max_floor: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    failures: int = 0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            msg = (
                "Backoff needs 0 < initial <= maximum and multiplier >= 1, got "
                f"initial={self.initial}, maximum={self.maximum}, multiplier={self.multiplier}"
            )
            raise ValueError(msg)

    def ceiling(self, failures: int | None = None) -> float:
        """The largest delay the next draw can give after ``failures`` failures."""
        n = self.failures if failures is None else failures
        # Bound the exponent so huge failure counts cannot overflow a float.
        return min(self.maximum, self.initial * self.multiplier ** min(n, 64))

    def next_delay(self, floor: float | None = None) -> float:
        """Count one failure and return how long to wait before the next attempt.

        Args:
            floor: The least the server asked for (SSE ``retry``, ``Retry-After``), in seconds.
        """
        delay = self.rng.uniform(0.0, self.ceiling())
        self.failures += 1
        if floor is not None and floor > delay:
            delay = min(floor, self.max_floor)
        return delay

    def connected_for(self, seconds: float) -> None:
        """Report how long the connection that just ended stayed up; resets when stable."""
        if seconds >= self.stable_after:
            self.failures = 0

    def reset(self) -> None:
        """Forget all failures."""
        self.failures = 0


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when neither header is present or parseable; never a negative number.
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        millis = _number(value)
        if millis is not None:
            return max(0.0, millis / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None
