"""``glm-live``: the command line.

``glm-live serve`` runs the embedded runtime in the foreground, prints its URL and (when it
made one) its token, as Jupyter does, and stops cleanly on Ctrl-C. It writes the runtime file
``runtime-<port>.json`` (url, token, pid; readable by its owner only) for
``glm_live.connect(url)`` to find the token, and removes it when it stops.
``glm-live bench URL --concurrency 1,8,64 --requests 200 --out r.parquet``
benchmarks an endpoint and writes the results (``--report run.html``: an HTML report too). It
first times one request (not counted) and prints how long the run should take and how to make
it shorter; then progress goes to stderr, as a bar redrawn in place on a terminal and as a
plain line every few seconds otherwise (a file,
a pipe, a CI log): see :mod:`glm_live.measure.bench.console`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the runtime: simulated GLM-4.6 by default, or a proxy",
        description=(
            "Run the glm_live runtime. The default backend is a simulated GLM-4.6 "
            "(model glm-4.6-sim): not a real model, labelled as such, and needing no key."
        ),
    )
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8765; 0: any)")
    serve.add_argument("--backend", choices=("sim", "glm", "openai"), default=None)
    serve.add_argument("--upstream", help="upstream base URL for the glm/openai backends")
    serve.add_argument("--seed", type=int, help="simulator seed")
    serve.add_argument(
        "--token",
        help="the admin token clients must send (default: GLM_LIVE_TOKEN, else one is made "
        "and printed)",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="switch authentication off: anyone who can reach the port (any local user) is "
        "the admin; loopback addresses only",
    )
    serve.add_argument("--config", help="a TOML config file (top-level keys and a [sim] table)")
    serve.add_argument("--ssl-certfile", help="serve TLS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="...and this private key (PEM)")
    serve.add_argument(
        "--redis",
        help="keep the hub's rooms in Redis (redis://[:password@]host:port/db) so that several "
        "runtimes share them (default: GLM_LIVE_REDIS, else in memory)",
    )
    serve.add_argument("--redis-prefix", help="prefix of the hub's Redis keys (glm_live)")
    serve.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="let web pages at ORIGIN (scheme://host[:port], e.g. https://app.example) call "
        "the runtime from a browser (CORS) and open its hub; repeat for several (default: none; "
        "'*' is refused)",
    )
    serve.add_argument(
        "--sse-keepalive",
        type=float,
        metavar="SECONDS",
        help="send an SSE ': keep-alive' comment on a stream silent for this long (default 15; "
        "0: never)",
    )
    serve.add_argument("--ttft-ms", type=float, help="simulated time to first token (ms)")
    serve.add_argument("--itl-ms", type=float, help="simulated gap between tokens (ms)")
    serve.add_argument("--tokens", type=int, help="simulated answer length in tokens")
    serve.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug")
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .protocols.runtime import remove_runtime_file, write_runtime_file
    from .server.app import Runtime
    from .server.config import ConfigError
    from .server.hub.store import HubStoreError
    from .server.runner import StartupSignal, bind_socket, build_config, uvicorn_config

    sim = {
        key: value
        for key, value in (
            ("ttft_ms", args.ttft_ms),
            ("itl_ms", args.itl_ms),
            ("tokens", args.tokens),
        )
        if value is not None
    }
    try:
        config = build_config(
            args.config,
            host=args.host,
            port=args.port,
            backend=args.backend,
            upstream=args.upstream,
            seed=args.seed,
            token=args.token,
            auth=False if args.no_auth else None,
            sim=sim,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
            redis=args.redis,
            redis_prefix=args.redis_prefix,
            cors_origins=tuple(args.cors_origins) if args.cors_origins else None,
            sse_keepalive_s=args.sse_keepalive,
        )
        runtime = Runtime(config)
        if config.redis is not None:
            from .server.hub.redis import check_redis

            asyncio.run(check_redis(config.redis))
    except (ConfigError, HubStoreError) as exc:
        print(f"glm-live serve: {exc}", file=sys.stderr)
        return 2
    # A long-running server: move everything imported so far out of the collector's way, and
    # collect young objects less often. Full collections over a large heap otherwise stall
    # the event loop for tens of milliseconds, which shows up as send lag.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    try:
        sock = bind_socket(config.host, config.port)
    except OSError as exc:
        print(
            f"glm-live serve: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr
        )
        return 1
    bound = sock.getsockname()
    scheme = "https" if config.ssl_certfile else "http"
    host = "127.0.0.1" if bound[0] in ("0.0.0.0", "::") else bound[0]
    runtime.self_url = url = f"{scheme}://{host}:{bound[1]}"
    token = runtime.config.token if runtime.config.auth else None
    # A token given (--token, GLM_LIVE_TOKEN) is known to whoever gave it: only a token made
    # here is printed, on stdout and never through logging (log files outlive terminals).
    made = config.auth and config.token is None
    written: list[Path] = []

    def announce() -> None:  # once the app started: the hub is up, requests are served
        what = (
            "simulated GLM-4.6 (glm-4.6-sim, not a real model)"
            if config.backend == "sim"
            else f"proxy to {config.backend} upstream"
        )
        auth = ", token required" if token else ", authentication OFF"
        print(f"glm_live runtime: {what}{auth}", flush=True)
        print(f"listening on {scheme}://{bound[0]}:{bound[1]}  (Ctrl-C to stop)", flush=True)
        try:
            written.append(write_runtime_file(url, token, bound[1]))
        except OSError as exc:
            print(f"glm-live serve: cannot write the runtime file: {exc}", file=sys.stderr)
        if made:
            print(f"token: {token}", flush=True)
        if token:
            where = f" (in {written[0]})" if written else ""
            print(
                "send 'Authorization: Bearer <token>'; glm_live.connect(url) finds the token"
                + where,
                flush=True,
            )

    startup = StartupSignal(runtime, on_started=announce)
    server = uvicorn.Server(uvicorn_config(runtime, args.log_level, app=startup))
    # uvicorn re-raises the signal that stopped it after its graceful shutdown: Ctrl-C comes
    # back as KeyboardInterrupt, and SIGTERM as _Terminated (by default it would end the
    # process before the runtime file is removed). Both are a clean stop.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with contextlib.suppress(KeyboardInterrupt, _Terminated), sock:
            server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        for path in written:
            remove_runtime_file(path)
    print("glm_live runtime stopped", flush=True)
    return 0 if startup.started else 1


class _Terminated(Exception):
    """SIGTERM arrived (after uvicorn's own shutdown, which re-raises it)."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def _bench_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark a streaming chat-completions endpoint",
        description="Benchmark an OpenAI-compatible endpoint (or a glm_live runtime's URL): "
        "a sweep over concurrency (closed loop) or rate (open loop).",
    )
    bench.add_argument("url", help="runtime root URL or OpenAI-compatible base URL")
    bench.add_argument(
        "--concurrency",
        help="comma-separated, e.g. 1,8,64 (default 1); with --trace, a cap on requests in flight",
    )
    bench.add_argument("--rate", help="comma-separated requests/s (open loop) instead")
    bench.add_argument(
        "--trace",
        help="replay a Mooncake trace (JSONL: timestamp, input_length, output_length, "
        "hash_ids) at its timestamps; 'example' for the shipped one",
    )
    bench.add_argument(
        "--trace-speed",
        default="1",
        help="comma-separated replay speeds, e.g. 1,2,4 (2: twice as fast as recorded)",
    )
    bench.add_argument(
        "--shared-prefix-tokens", type=int, default=0, help="one system prompt of N tokens for all"
    )
    bench.add_argument(
        "--unique-prefix-tokens",
        type=int,
        default=0,
        help="a system prompt of N tokens unique to each request and run (cache busting)",
    )
    bench.add_argument(
        "--tokenizer",
        help="count tokens with this tokenizer.json or 'tiktoken:<encoding>' (default: words)",
    )
    bench.add_argument(
        "--slo",
        help="service-level objective, e.g. ttft_ms=500,itl_ms=50,percentile=99: prints each "
        "level's goodput and verdict",
    )
    bench.add_argument(
        "--search",
        choices=("concurrency", "rate"),
        help="find the highest concurrency or rate meeting --slo (doubling from --low, then "
        "bisecting) instead of running fixed levels",
    )
    bench.add_argument("--low", type=float, default=1, help="--search: the first level tried")
    bench.add_argument("--high", type=float, default=256, help="--search: the highest level")
    bench.add_argument(
        "--metrics-url",
        help="scrape this Prometheus endpoint during each run ('target': the benchmarked "
        "server's /metrics); the samples go into --out and --report",
    )
    bench.add_argument("--arrivals", default="poisson", choices=("poisson", "gamma", "constant"))
    bench.add_argument("--requests", type=int, default=100, help="requests per run")
    bench.add_argument("--warmup", type=int, default=0, help="requests excluded first")
    bench.add_argument("--model", default="glm-4.6")
    bench.add_argument(
        "--token",
        help="a glm_live runtime's token (default: GLM_LIVE_TOKEN, else the runtime file "
        "glm-live serve wrote for that URL)",
    )
    bench.add_argument(
        "--api-key-env",
        default=None,
        help="environment variable holding the endpoint's key (never a flag: keys in shell "
        "history leak); default: a runtime's token if one is found, else ZAI_API_KEY",
    )
    bench.add_argument("--prompts", help="a file of prompts (lines, or JSONL with prompt)")
    bench.add_argument("--prompt-tokens", type=int, help="generate prompts of about N words")
    bench.add_argument("--max-tokens", type=int)
    bench.add_argument("--sim", help="simulator knobs as JSON, e.g. '{\"tokens\": 64}'")
    bench.add_argument("--out", help="results file: .parquet, .json or .csv")
    bench.add_argument(
        "--report",
        help="write one self-contained HTML report (figures, definitions, intervals, "
        "calibration, config, environment; several levels are compared) to this file",
    )
    bench.add_argument(
        "--cluster",
        help="shard the load over dask workers: 'local' (2 worker processes), a number of "
        "local worker processes, or a scheduler address (tcp://host:8786); needs glm_live[dask]",
    )
    bench.add_argument(
        "--cluster-timeout", type=float, default=30.0, help="seconds to reach the cluster"
    )
    bench.add_argument(
        "--no-estimate",
        action="store_true",
        help="skip the one request sent first (not counted) to estimate how long the run takes",
    )


def _bench(args: argparse.Namespace) -> int:
    import json

    from .measure.bench import BenchResult, run
    from .measure.bench.cluster import ClusterError
    from .measure.bench.console import ProgressPrinter

    plan = _bench_plan(args)
    if isinstance(plan, str):
        print(f"glm-live bench: {plan}", file=sys.stderr)
        return 2
    by, levels, slo = plan
    params: dict[str, Any] = {}
    if args.sim:
        try:
            params["sim"] = json.loads(args.sim)
        except ValueError as exc:
            print(f"glm-live bench: --sim is not JSON: {exc}", file=sys.stderr)
            return 2
    if args.max_tokens:
        params["max_tokens"] = args.max_tokens
    key = _bench_key(args)
    common: dict[str, Any] = dict(
        model=args.model,
        api_key=key,
        prompts=args.prompts,
        prompt_tokens=args.prompt_tokens,
        **params,
    )
    workload: dict[str, Any] = dict(
        shared_prefix_tokens=args.shared_prefix_tokens,
        unique_prefix_tokens=args.unique_prefix_tokens,
        tokenizer=args.tokenizer,
    )
    if args.metrics_url:
        workload["metrics_url"] = True if args.metrics_url == "target" else args.metrics_url

    cluster: Any = None
    if args.cluster:
        spec = args.cluster.strip()
        cluster = True if spec == "local" else int(spec) if spec.isdigit() else spec

    results: list[BenchResult] = []

    def level_options(level: float) -> dict[str, Any]:
        if by == "trace_speed":
            cap = int(args.concurrency) if args.concurrency else None
            return dict(trace=_trace_path(args.trace), trace_speed=level, concurrency=cap)
        if by == "rate":
            return dict(rate=level, concurrency=None)
        return dict(concurrency=int(level))

    async def levels_in_turn(shared: Any) -> None:
        for level in levels:
            label = f"{by.replace('_', ' ')} {level:g}"
            printer = ProgressPrinter(sys.stderr, label=label)
            options: dict[str, Any] = dict(
                requests=args.requests,
                warmup=args.warmup,
                progress=printer,
                arrivals=args.arrivals,
                cluster=shared,
                cluster_timeout=args.cluster_timeout,
                **common,
                **workload,
                **level_options(level),
            )
            if printer.terminal:  # plain lines name the level themselves
                print(f"{label}:", file=sys.stderr)
            try:
                result = await run(args.url, **options)
            finally:
                printer.close()
            results.append(result)
            _report(result, label)
            if slo is not None:
                result.config["slo"] = slo.as_dict()  # the report's goodput section
                print(f"  SLO: {result.goodput(slo)}")

    async def capacity() -> None:
        from .measure.bench.search import search

        assert slo is not None
        cap: dict[str, Any] = {}  # over a rate, --concurrency caps requests in flight
        if by == "rate" and args.concurrency:
            cap["concurrency"] = int(args.concurrency)
        found = await search(
            args.url,
            slo=slo,
            over=by,
            low=args.low,
            high=args.high,
            requests=args.requests,
            warmup=args.warmup,
            arrivals=args.arrivals,
            cluster=cluster,
            cluster_timeout=args.cluster_timeout,
            log=print,
            **common,
            **workload,
            **cap,
        )
        results.extend(level.result for level in found.levels)
        levels[:] = [level.value for level in found.levels]
        print(found.describe())

    async def main() -> None:
        if not args.no_estimate and not args.search:
            pilot = await run(args.url, concurrency=1, requests=1, **common)
            _estimate(args, by, levels, pilot)
        if args.search:
            await capacity()
            return
        if cluster is None:
            await levels_in_turn(None)
            return
        from .measure.bench.cluster import connect  # one cluster for every level

        async with connect(cluster, timeout=args.cluster_timeout) as connection:
            await levels_in_turn(connection)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    except (ClusterError, ImportError, ValueError, TypeError, OSError) as exc:
        print(f"\nglm-live bench: {exc}", file=sys.stderr)
        return 2
    if args.out and results:
        combined = BenchResult.combine(results, by=by, values=levels[: len(results)])
        written = combined.save(args.out)
        print("wrote " + ", ".join(str(p) for p in written))
    if args.report and results:
        from .measure.bench.report import write_report

        labels = [f"{by.replace('_', ' ')} {level:g}" for level in levels[: len(results)]]
        print(f"wrote {write_report(results, args.report, labels=labels)}")
    return 0 if results else 1


def _bench_plan(args: argparse.Namespace) -> tuple[str, list[float], Any] | str:
    """What ``glm-live bench`` runs: the level swept (``concurrency``, ``rate`` or
    ``trace_speed``), its values, and the SLO (or ``None``); or why the options cannot go
    together."""
    from .measure.bench.slo import SLO

    if args.rate and args.trace:
        return "--trace sends at the trace's timestamps: it cannot take a --rate too"
    if args.search and args.trace:
        return "--search varies the concurrency or the rate, not a trace's speed"
    if args.search and (args.rate or (args.search == "concurrency" and args.concurrency)):
        return f"--search {args.search} chooses the levels itself: give --low and --high"
    if args.search and not args.slo:
        return "--search needs an --slo to meet, e.g. --slo ttft_ms=500"
    slo = None
    if args.slo:
        try:
            pairs = [part.split("=", 1) for part in args.slo.split(",") if part.strip()]
            slo = SLO.of({name.strip(): float(value) for name, value in pairs})
        except ValueError as exc:
            why = exc if "=" in args.slo else "expected name=value pairs"
            return f"--slo {args.slo!r}: {why} (e.g. ttft_ms=500,itl_ms=50,percentile=99)"
    if args.trace:
        if args.concurrency and "," in args.concurrency:
            return "with --trace, --concurrency is one cap on requests in flight"
        by, text, name = "trace_speed", args.trace_speed, "--trace-speed"
    elif args.search:
        return args.search, [], slo
    elif args.rate:
        by, text, name = "rate", args.rate, "--rate"
    else:
        by, text, name = "concurrency", args.concurrency or "1", "--concurrency"
    try:
        levels = [float(v) for v in text.split(",")]
    except ValueError:
        return f"{name} takes comma-separated numbers, not {text!r}"
    if any(level <= 0 for level in levels):
        return f"{name} takes numbers above 0, not {text!r}"
    return by, levels, slo


def _trace_path(trace: str) -> str:
    """``--trace``: a path, or ``example`` for the shipped trace."""
    if trace == "example":
        from .measure.bench.workloads import EXAMPLE_TRACE

        return str(EXAMPLE_TRACE)
    return trace


def _estimate(args: argparse.Namespace, by: str, levels: Sequence[float], pilot: Any) -> None:
    """Print, on stderr, how long the run should take, from one request sent first (not part
    of the results), and how to make it shorter.

    One measured request, rather than the simulator's settings: a client cannot see the knobs
    a runtime was started with (``glm-live serve --tokens``, a config file), and a real
    endpoint has none. It also shows at once that the URL and the token work.
    """
    from .measure.bench.console import estimate_s, format_duration

    row = pilot.requests.iloc[0] if len(pilot.requests) else None
    if row is None or row["status"] != "ok":
        why = f"{row['error_type']}: {row['error']}" if row is not None else "no answer"
        print(
            f"estimate: unknown; the first request failed ({why}). Check the URL and the "
            "token (--token, or GLM_LIVE_TOKEN); the run goes ahead and counts the errors.",
            file=sys.stderr,
        )
        return
    per_request = float(row["e2e_ms"]) / 1000
    simulated = str(row.get("model") or "").endswith("-sim")
    if by == "trace_speed":  # the trace's span at each speed, and the last answer
        from .measure.bench.workloads import read_trace

        trace = read_trace(_trace_path(args.trace))
        span, count = trace.offsets()[-1], len(trace)
        each = [span / level + per_request for level in levels]
    else:
        count = args.warmup + args.requests
        each = [
            estimate_s(
                per_request,
                requests=args.requests,
                warmup=args.warmup,
                concurrency=None if by == "rate" else int(level),
                rate=level if by == "rate" else None,
            )
            for level in levels
        ]
    name = by.replace("_", " ")
    split = ", ".join(
        f"{name} {level:g}: {format_duration(s)}" for level, s in zip(levels, each, strict=True)
    )
    what = " (simulated GLM-4.6)" if simulated else ""
    print(
        f"estimate: one request took {per_request:.1f} s{what}, so about "
        f"{format_duration(sum(each))} for {count} requests at each of "
        f"{len(levels)} {name} level{'s' if len(levels) > 1 else ''} ({split}); longer if the "
        "endpoint slows down under load.",
        file=sys.stderr,
    )
    if by == "trace_speed":
        print("shorter: a higher --trace-speed.", file=sys.stderr)
        return
    hints = ["fewer --requests"]
    if by == "concurrency":
        hints.append("a higher --concurrency")
    if simulated:
        hints.append("""shorter simulated answers (--sim '{"tokens": 32, "ttft_ms": 150}')""")
    print("shorter: " + ", ".join(hints[:-1]) + " or " + hints[-1] + ".", file=sys.stderr)


def _bench_key(args: argparse.Namespace) -> str | None:
    """The bearer key: ``--token``; the variable ``--api-key-env`` names; a glm_live
    runtime's token (``GLM_LIVE_TOKEN`` or its runtime file); else ``ZAI_API_KEY``."""
    import os

    from .protocols.runtime import find_token

    if args.token:
        return str(args.token)
    if args.api_key_env:
        return os.environ.get(args.api_key_env) or None
    return find_token(args.url) or os.environ.get("ZAI_API_KEY") or None


def _report(result: Any, label: str) -> None:
    """One level's headline figures, on stdout."""
    summary = result.summary(ci=False)
    rate = result.throughput()
    calibration = result.calibration
    line = (
        f"{label}: TTFT p50 {summary.loc['ttft_ms', 'p50']:.1f} p99 "
        f"{summary.loc['ttft_ms', 'p99']:.1f} ms · TPOT p50 "
        f"{summary.loc['tpot_ms', 'p50']:.2f} ms · E2E p99 "
        f"{summary.loc['e2e_ms', 'p99']:.0f} ms · {rate['output_tokens_per_s']:.0f} tok/s"
        if "ttft_ms" in summary.index and summary.loc["ttft_ms", "count"]
        else f"{label}: no successful requests"
    )
    print(line)
    if calibration.get("timing_error_p99_ms") is not None:
        print(
            f"  harness timing error p99 {calibration['timing_error_p99_ms']:.2f} ms, "
            f"event-loop lag p99 {calibration['loop_lag_p99_ms']:.2f} ms"
        )
    if calibration.get("clock"):
        print(f"  {calibration['clock']['agreement']}")
    if calibration.get("warning"):
        print(f"  warning: {calibration['warning']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glm-live`` command."""
    parser = argparse.ArgumentParser(prog="glm-live", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    _bench_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "bench":
        return _bench(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover - argparse checks
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
