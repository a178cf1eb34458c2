"""``glm-live``: the command line.

``glm-live serve`` runs the embedded runtime in the foreground, prints its URL, and stops
cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Sequence
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
    serve.add_argument("--token", help="require this bearer token (default: GLM_LIVE_TOKEN)")
    serve.add_argument("--config", help="a TOML config file (top-level keys and a [sim] table)")
    serve.add_argument("--ssl-certfile", help="serve TLS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="...and this private key (PEM)")
    serve.add_argument("--ttft-ms", type=float, help="simulated time to first token (ms)")
    serve.add_argument("--itl-ms", type=float, help="simulated gap between tokens (ms)")
    serve.add_argument("--tokens", type=int, help="simulated answer length in tokens")
    serve.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug")
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .server.app import Runtime
    from .server.config import ConfigError
    from .server.runner import build_config, uvicorn_config

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
            sim=sim,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
        )
        runtime = Runtime(config)
    except ConfigError as exc:
        print(f"glm-live serve: {exc}", file=sys.stderr)
        return 2
    # A long-running server: move everything imported so far out of the collector's way, and
    # collect young objects less often. Full collections over a large heap otherwise stall
    # the event loop for tens of milliseconds, which shows up as send lag.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    server = uvicorn.Server(uvicorn_config(runtime, args.log_level))
    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        if server.started:
            bound = next(s for srv in server.servers for s in srv.sockets).getsockname()
            what = (
                "simulated GLM-4.6 (glm-4.6-sim, not a real model)"
                if config.backend == "sim"
                else f"proxy to {config.backend} upstream"
            )
            auth = ", token required" if config.token else ""
            print(f"glm_live runtime: {what}{auth}", flush=True)
            scheme = "https" if config.ssl_certfile else "http"
            host = "127.0.0.1" if bound[0] in ("0.0.0.0", "::") else bound[0]
            runtime.self_url = f"{scheme}://{host}:{bound[1]}"
            print(f"listening on {scheme}://{bound[0]}:{bound[1]}  (Ctrl-C to stop)", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    # uvicorn re-raises Ctrl-C after its graceful shutdown; that is a clean stop.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    print("glm_live runtime stopped", flush=True)
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glm-live`` command."""
    parser = argparse.ArgumentParser(prog="glm-live", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover - argparse checks
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
