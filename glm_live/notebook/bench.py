"""``glm_live.bench``: the benchmark harness of :mod:`glm_live.measure.bench`, shown live.

In a kernel, :func:`run` puts a :class:`~glm_live.notebook.widgets.BenchProgress` under the
cell with the progress and the running percentiles; :func:`run_sync` blocks on the
background loop, for scripts and for cells that should wait.

Each takes a URL or a :class:`~glm_live.notebook.session.Session`: given a session, the run
goes to its runtime with its token (``bench.run(session, concurrency=8)``), so a notebook
never handles the token. Given a URL, pass ``api_key=`` when the endpoint needs one.
``metrics_url=True`` scrapes that runtime's own ``/metrics`` (with the same token) into
``result.telemetry`` while the run goes; it is off unless asked for.

The widget is redrawn from the progress callback, four times a second, on the same event
loop as the requests; the harness's calibration (``result.calibration``: its timing error
and event-loop lag) says whether that, or anything else, got in the way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..measure.bench import (
    EXAMPLE_TRACE,
    PERCENTILES,
    Benchmark,
    BenchResult,
    ClusterError,
    Sessions,
    Shard,
    TokenCounter,
    Trace,
    bootstrap_ci,
    chat_url,
    compare,
    describe,
    dialects,
    load_foreign,
    load_guidellm,
    load_vllm,
    permutation_test,
    plots,
    prompts_from,
    read_trace,
    render_report,
    to_guidellm,
    to_vllm,
    write_report,
)
from ..measure.bench import runner as _runner
from ..measure.bench.load import Progress
from ..measure.bench.search import Saturation, SearchResult
from ..measure.bench.search import search as _search
from ..measure.bench.slo import SLO, Goodput, goodput_frame
from ._env import in_kernel
from .aio import background_loop
from .session import Session

__all__ = [
    "EXAMPLE_TRACE",
    "PERCENTILES",
    "SLO",
    "BenchResult",
    "Benchmark",
    "ClusterError",
    "Goodput",
    "Saturation",
    "SearchResult",
    "Sessions",
    "Shard",
    "TokenCounter",
    "Trace",
    "bootstrap_ci",
    "chat_url",
    "compare",
    "describe",
    "dialects",
    "goodput_frame",
    "load_foreign",
    "load_guidellm",
    "load_vllm",
    "permutation_test",
    "plots",
    "prompts_from",
    "read_trace",
    "render_report",
    "run",
    "run_sync",
    "search",
    "search_sync",
    "sweep",
    "to_guidellm",
    "to_vllm",
    "write_report",
]


def _target(url: str | Session, options: dict[str, Any]) -> str:
    """The URL to benchmark; a session's token goes into ``options`` as the API key."""
    if not isinstance(url, Session):
        return url
    header = url.auth_headers.get("Authorization", "")
    if header.startswith("Bearer ") and options.get("api_key") is None:
        options["api_key"] = header.removeprefix("Bearer ")
    return url.url


async def run(url: str | Session, *, display: bool | None = None, **options: Any) -> BenchResult:
    """Benchmark ``url``, a URL or a session's runtime (see
    :class:`~glm_live.measure.bench.Benchmark` for the options; unknown ones go into the
    request body, e.g. ``sim={...}`` or ``max_tokens``).

    In a notebook a :class:`~glm_live.notebook.widgets.BenchProgress` shows the progress and
    the running percentiles (``display=False`` opts out); the result keeps it as ``.view``.
    With ``cluster=...`` the load is sharded over ``dask.distributed`` workers; the progress
    then moves as each worker's shard comes back.

    .. versionchanged:: issue 15
        ``url`` may be a :class:`~glm_live.notebook.session.Session`.
    """
    url = _target(url, options)
    if not (in_kernel() if display is None else display):
        return await _runner.run(url, **options)
    from IPython.display import display as show

    from .widgets import BenchProgress

    if options.get("rate") is not None:
        level = f", rate {options['rate']:g}/s"
    else:
        level = f", concurrency {options.get('concurrency', 1)}"
    view = BenchProgress(title=f"benchmark {chat_url(url)}{level}")
    chained = options.pop("progress", None)

    def progress(snapshot: dict[str, Any]) -> None:
        view.report(snapshot)
        if chained is not None:
            chained(snapshot)

    show(view)  # type: ignore[no-untyped-call]
    result = await _runner.run(url, progress=progress, **options)
    view.update(status="cancelled" if result.config.get("cancelled") else "done")
    result.view = view
    return result


def run_sync(url: str | Session, **options: Any) -> BenchResult:
    """:func:`run`, blocking (scripts; or a notebook cell that should wait)."""
    return background_loop().run(run(url, **options))


async def sweep(
    url: str | Session,
    *,
    concurrency: Sequence[int] | None = None,
    rate: Sequence[float] | None = None,
    **options: Any,
) -> list[BenchResult]:
    """One :func:`run` per concurrency (or per rate), in order, each shown live.

    With ``cluster=...`` the cluster is started (or connected to) once, for all the runs.
    ``url`` may be a session, as for :func:`run`.
    """
    url = _target(url, options)
    return await _runner.sweep(url, concurrency=concurrency, rate=rate, each=run, **options)


async def search(
    url: str | Session, *, slo: Any, display: bool | None = None, **options: Any
) -> SearchResult:
    """Find the highest load that meets ``slo``
    (:func:`glm_live.measure.bench.search.search`: the options, the algorithm, the early
    stop), each level shown live.

    In a notebook each level gets its :class:`~glm_live.notebook.widgets.BenchProgress`
    (kept as ``level.result.view``), under a line saying what the search knows so far; in a
    script, each level's progress and that line are written to stderr. ``display=False``:
    neither. ``url`` may be a session, as for :func:`run`.
    """
    url = _target(url, options)
    show = in_kernel() if display is None else display
    if show:
        from IPython.display import Markdown
        from IPython.display import display as put

        from .widgets import BenchProgress

        title = f"capacity search for {SLO.of(slo)}: starting"
        first = Markdown(title)  # type: ignore[no-untyped-call]
        handle = put(first, display_id=True)  # type: ignore[no-untyped-call]

        def log(line: str) -> None:
            if handle is not None:
                handle.update(Markdown(line))  # type: ignore[no-untyped-call]

        def widget(label: str) -> tuple[Progress, Callable[[BenchResult], None]]:
            view = BenchProgress(title=f"search {chat_url(url)}, {label}")
            put(view)  # type: ignore[no-untyped-call]

            def finish(result: BenchResult) -> None:
                view.update(status="cancelled" if result.config.get("cancelled") else "done")
                result.view = view

            return view.report, finish

        return await _search(url, slo=slo, view=widget, log=log, **options)
    if display is False:
        return await _search(url, slo=slo, **options)
    from ..measure.bench.console import ProgressPrinter

    def printed(label: str) -> tuple[Progress, Callable[[BenchResult], None]]:
        printer = ProgressPrinter(sys.stderr, label=label)
        return printer, lambda _: printer.close()

    def line(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    return await _search(url, slo=slo, view=printed, log=line, **options)


def search_sync(url: str | Session, *, slo: Any, **options: Any) -> SearchResult:
    """:func:`search`, blocking (scripts; or a notebook cell that should wait)."""
    return background_loop().run(search(url, slo=slo, **options))
