"""Server telemetry on the run's timeline: the target's Prometheus ``/metrics``, scraped while
a benchmark runs.

A :class:`Scraper` fetches the exposition text on a thread of its own, every ``interval``
seconds, and keeps it with the ``perf_counter_ns`` stamps of the request and of the answer
(the clock of every request and event stamp of the run). It parses nothing while the run goes:
the thread's only work then is a small HTTP exchange, whose socket waits release the GIL, so
the measured requests' event loop is left alone (the cost is measured by the loop-lag
calibration; see ``tests/test_telemetry.py``). After the run, :meth:`Scraper.frame` parses
every scrape with ``prometheus_client.parser.text_string_to_metric_families`` into one long
frame: a row per sample.

A scrape that fails (refused, timed out, a non-200 answer, text that does not parse) is
counted and its error kept (:meth:`Scraper.info`); it never fails the run. The bearer token is
kept by the scraper alone: it is in no repr, no config, no frame and no file.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "Scraper", "metrics_url_for", "public_url", "telemetry_frame"]

#: The telemetry frame's columns: the scrape's number, when the server answered it (midway
#: between request and answer, ``perf_counter_ns``, as ``requests.sent_ns``), the wall clock
#: then, the sample's name (``glm_live_requests_total``), its family and type, its labels as
#: sorted JSON, and its value. ``t`` (seconds after the run's start) is added by the result.
COLUMNS = ("scrape", "time_ns", "wall", "metric", "family", "type", "labels", "value")


def public_url(url: str) -> str:
    """``url`` without credentials (``user:password@``), for configs and error messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def metrics_url_for(url: str) -> str:
    """The ``/metrics`` URL at the root of ``url``'s server (``metrics_url=True``)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))


class Scraper:
    """Scrapes a Prometheus endpoint on a thread, from :meth:`start` to :meth:`stop`.

    Args:
        url: The ``/metrics`` URL (``http`` or ``https``).
        interval: Seconds from one scrape's start to the next's.
        token: Sent as ``Authorization: Bearer <token>`` (the runtime's ``/metrics`` wants
            its admin token); never shown.
        timeout: Seconds one scrape may take.
        verify: For ``https``: check the certificate (``False``: do not).
    """

    def __init__(
        self,
        url: str,
        *,
        interval: float = 0.5,
        token: str | None = None,
        timeout: float = 2.0,
        verify: bool = True,
    ) -> None:
        if interval <= 0:
            msg = f"metrics_interval must be positive, got {interval!r}"
            raise ValueError(msg)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            msg = f"metrics_url must be http:// or https://, got {public_url(url)!r}"
            raise ValueError(msg)
        self.url = public_url(url)
        self.interval = interval
        self.timeout = timeout
        self._parts = parts
        self._headers = {"Accept": "text/plain"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._token = token
        self._verify = verify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: http.client.HTTPConnection | None = None
        #: ``(requested_ns, answered_ns, wall_ns, text)`` per successful scrape.
        self.scrapes: list[tuple[int, int, int, str]] = []
        self.durations_ms: list[float] = []
        self.errors = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return (
            f"<Scraper {self.url} every {self.interval:g} s: {len(self.scrapes)} scrapes, "
            f"{self.errors} errors>"
        )

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Scrape now, then every ``interval`` seconds, until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="glm-live-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Scrape once more (the run's end state), stop the thread and wait for it: blocks for
        at most about one scrape's ``timeout`` (call it off the event loop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.scrape()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.scrape()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def scrape(self) -> None:
        """One scrape, kept or counted as an error (never raised)."""
        requested = time.perf_counter_ns()
        try:
            text = self._fetch()
        except Exception as exc:  # a scrape must never fail the run
            self._error(exc)
            return
        answered = time.perf_counter_ns()
        self.scrapes.append((requested, answered, time.time_ns(), text))
        self.durations_ms.append((answered - requested) / 1e6)

    def _error(self, exc: BaseException) -> None:
        self.errors += 1
        message = f"{type(exc).__name__}: {exc}"[:300]
        if self._token:
            message = message.replace(self._token, "<token>")
        self.last_error = message
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _fetch(self) -> str:
        parts = self._parts
        if self._connection is None:
            if parts.scheme == "https":
                context = ssl.create_default_context()
                if not self._verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._connection = http.client.HTTPSConnection(
                    parts.hostname or "127.0.0.1",
                    parts.port,
                    timeout=self.timeout,
                    context=context,
                )
            else:
                self._connection = http.client.HTTPConnection(
                    parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout
                )
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self._connection.request("GET", path, headers=self._headers)
        response = self._connection.getresponse()
        body = response.read()
        if response.status != 200:
            msg = f"HTTP {response.status} from {self.url}"
            raise ConnectionError(msg)
        return body.decode("utf-8", "replace")

    # -- after the run ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """``metrics_url``, ``scrapes``, ``scrape_errors``, ``scrape_last_error`` and how long
        scrapes took (``scrape_ms_p50``, ``scrape_ms_max``)."""
        durations = sorted(self.durations_ms)
        return {
            "metrics_url": self.url,
            "scrapes": len(self.scrapes),
            "scrape_errors": self.errors,
            "scrape_last_error": self.last_error,
            "scrape_ms_p50": durations[len(durations) // 2] if durations else None,
            "scrape_ms_max": durations[-1] if durations else None,
        }

    def frame(self) -> pd.DataFrame:
        """Every sample of every scrape, one row each (:data:`COLUMNS`); a scrape whose text
        does not parse is counted as an error and left out."""
        from prometheus_client.parser import text_string_to_metric_families

        rows: list[tuple[Any, ...]] = []
        for number, (requested, answered, wall, text) in enumerate(self.scrapes):
            at = (requested + answered) // 2
            wall_at = wall - (answered - at)
            try:
                samples = [
                    (family.name, family.type, sample)
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples
                ]
            except Exception as exc:  # prometheus_client raises ValueError, or worse
                self._error(exc)
                continue
            for name, kind, sample in samples:
                rows.append(
                    (
                        number,
                        at,
                        wall_at,
                        sample.name,
                        name,
                        kind,
                        json.dumps(sample.labels, sort_keys=True),
                        float(sample.value),
                    )
                )
        return telemetry_frame(rows)


def telemetry_frame(rows: list[tuple[Any, ...]] | None = None) -> pd.DataFrame:
    """The telemetry frame (:data:`COLUMNS`) of ``rows``; empty without."""
    import pandas as pd

    frame = pd.DataFrame(rows or [], columns=list(COLUMNS))
    frame["scrape"] = frame["scrape"].astype("int64")
    frame["time_ns"] = frame["time_ns"].astype("int64")
    frame["wall"] = pd.to_datetime(frame["wall"].astype("int64"), unit="ns", utc=True)
    for column in ("metric", "family", "type", "labels"):
        frame[column] = frame[column].astype("string")
    frame["value"] = frame["value"].astype("float64")
    return frame
