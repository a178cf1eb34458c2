from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from glm_live.wire.retry import Backoff, parse_retry_after


def test_full_jitter_stays_under_growing_ceiling() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, multiplier=2.0, rng=random.Random(1))
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    for ceiling in ceilings:
        assert backoff.ceiling() == pytest.approx(ceiling)
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceiling
    assert backoff.failures == len(ceilings)


def test_jitter_spreads_delays() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, rng=random.Random(7))
    delays = {round(backoff.next_delay(), 6) for _ in range(50)}
    assert len(delays) > 40  # full jitter: not a fixed delay


def test_server_floor_wins_even_above_cap() -> None:
    backoff = Backoff(initial=0.1, maximum=0.5, rng=random.Random(3))
    assert backoff.next_delay(floor=3.0) == 3.0


def test_reset_only_after_stable_uptime() -> None:
    backoff = Backoff(stable_after=5.0)
    for _ in range(4):
        backoff.next_delay()
    backoff.connected_for(0.01)  # accepted and closed at once: no reset
    assert backoff.failures == 4
    backoff.connected_for(4.99)
    assert backoff.failures == 4
    backoff.connected_for(5.0)
    assert backoff.failures == 0


def test_huge_failure_counts_do_not_overflow() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, failures=10_000)
    assert backoff.ceiling() == 30.0


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"multiplier": 0.5}]
)
def test_invalid_policy(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="Backoff needs"):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    when = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    value = format_datetime(when, usegmt=True)
    assert parse_retry_after({"retry-after": value}, now=now) == pytest.approx(10.0)
