"""Runtime and simulator settings: defaults, a TOML config file, and per-request overrides.

Security: authentication is always on unless switched off. ``token`` is the runtime's admin
token; left unset, the runtime makes one when it is built (:class:`~glm_live.server.Runtime`).
``auth = false`` (``glm-live serve --no-auth``) switches authentication off, on a loopback
address only, and never together with a token.

Browsers: ``cors_origins = ["https://app.example"]`` lists the web origins whose pages may call
the runtime (CORS; the hub's WebSocket ``Origin`` check uses the same list, see
:mod:`.origins`); ``allowed_origins`` is an older name for it, still accepted and merged in.
``*`` is refused. ``sse_keepalive_s`` (default 15) is how long a stream (chat, agent run) may
stay silent before the runtime sends an SSE comment (``: keep-alive``) so that proxies and
browsers do not time it out; 0 switches keep-alives off.

A ``[hub]`` table sets the hub's limits (``history``, ``max_message_bytes``, ``rate``,
``burst``, ``send_queue``, ``dedupe``).

A latency is a :class:`Dist`, written as a number (a constant, in milliseconds) or a table::

    [sim]
    ttft_ms = { dist = "lognormal", median = 350, sigma = 0.35 }
    itl_ms = { dist = "gamma", mean = 22, shape = 8 }
    tokens = 256
    capacity = 32          # concurrent streams before the simulated backend slows down

Every ``[sim]`` key can also be overridden per request in the body's ``"sim"`` object, except
``prefix_cache_tokens`` (the size of the runtime's one prefix cache; a request can bypass the
cache with ``"prefix_cache": false``).
"""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .hub.store import HubLimits
from .origins import OriginError, is_loopback, parse_origin

__all__ = [
    "FAULTS",
    "ConfigError",
    "Dist",
    "InsecureBindError",
    "RuntimeConfig",
    "SimConfig",
    "is_loopback",
    "load_config",
]

#: The faults the simulator can inject, by name.
FAULTS = ("rate_limit", "balance", "auth", "server_error", "drop", "network_error", "stall")


class ConfigError(ValueError):
    """A setting has the wrong type or value; the message names it."""


class InsecureBindError(ConfigError):
    """Asked to listen beyond loopback with authentication off."""


@dataclass(frozen=True)
class Dist:
    """A distribution of milliseconds: ``constant``, ``uniform``, ``normal``, ``lognormal``,
    ``exponential`` or ``gamma``. Samples are never negative."""

    kind: str = "constant"
    a: float = 0.0  # constant: value; uniform: low; normal: mean; lognormal: median;
    b: float = 0.0  # exponential/gamma: mean. uniform: high; normal: sd; lognormal: sigma;
    # gamma: shape.

    _PARAMS = {  # noqa: RUF012 - a class-level table, not a field
        "constant": ("value", None),
        "uniform": ("low", "high"),
        "normal": ("mean", "sd"),
        "lognormal": ("median", "sigma"),
        "exponential": ("mean", None),
        "gamma": ("mean", "shape"),
    }

    @classmethod
    def parse(cls, value: Any, name: str) -> Dist:
        """Read a number or a ``{"dist": ..., <params>}`` table; raise :class:`ConfigError`."""
        if isinstance(value, Dist):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | Mapping):
            msg = f"{name} must be a number of milliseconds or a distribution table, got {value!r}"
            raise ConfigError(msg)
        if not isinstance(value, Mapping):
            return cls("constant", _non_negative(value, name))
        kind = value.get("dist", "constant")
        if kind not in cls._PARAMS:
            msg = f"{name}.dist must be one of {', '.join(cls._PARAMS)}, got {kind!r}"
            raise ConfigError(msg)
        first, second = cls._PARAMS[kind]
        params = [first] + ([second] if second else [])
        unknown = set(value) - {"dist", *params}
        if unknown:
            msg = f"{name}: unknown keys {sorted(unknown)} for dist {kind!r} (takes {params})"
            raise ConfigError(msg)
        missing = [p for p in params if p not in value]
        if missing:
            msg = f"{name}: dist {kind!r} needs {', '.join(missing)}"
            raise ConfigError(msg)
        a = _non_negative(value[first], f"{name}.{first}")
        b = _non_negative(value[second], f"{name}.{second}") if second else 0.0
        if kind == "uniform" and b < a:
            msg = f"{name}: uniform needs low <= high"
            raise ConfigError(msg)
        if kind == "gamma" and b <= 0:
            msg = f"{name}: gamma needs shape > 0"
            raise ConfigError(msg)
        return cls(kind, a, b)

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"

    def sample(self, rng: random.Random) -> float:
        """One draw, in milliseconds."""
        kind, a, b = self.kind, self.a, self.b
        if kind == "constant":
            value = a
        elif kind == "uniform":
            value = rng.uniform(a, b)
        elif kind == "normal":
            value = rng.gauss(a, b)
        elif kind == "lognormal":
            value = a * math.exp(rng.gauss(0.0, b)) if a > 0 else 0.0
        elif kind == "exponential":
            value = rng.expovariate(1.0 / a) if a > 0 else 0.0
        else:  # gamma, parametrised by mean and shape
            value = rng.gammavariate(b, a / b) if a > 0 else 0.0
        return max(0.0, value)

    def describe(self) -> str:
        if self.kind == "constant":
            return f"{self.a:g} ms"
        first, second = self._PARAMS[self.kind]
        extra = f", {second}={self.b:g}" if second else ""
        return f"{self.kind}({first}={self.a:g}{extra}) ms"


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{name} must be a finite number, got {value!r}"
        raise ConfigError(msg)
    if value < 0:
        msg = f"{name} must not be negative, got {value!r}"
        raise ConfigError(msg)
    return float(value)


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be a whole number, got {value!r}"
        raise ConfigError(msg)
    if value < minimum:
        msg = f"{name} must be at least {minimum}, got {value}"
        raise ConfigError(msg)
    return value


@dataclass(frozen=True)
class SimConfig:
    """How the simulated GLM-4.6 behaves. Every field but ``prefix_cache_tokens`` can be
    overridden per request.

    Attributes:
        ttft_ms: Time to first token (before any slowdown).
        itl_ms: Gap between tokens, drawn per token.
        tokens: Answer length in tokens, exactly; the answer still ends at the end of a
            sentence, list item, table row or code block (``max_tokens`` cuts it anywhere,
            with ``finish_reason: length``).
        reasoning_tokens: Reasoning length when thinking is enabled.
        tokens_per_chunk: Tokens carried by each streamed chunk.
        capacity: Concurrent streams the simulated backend serves at full speed; above it,
            time to first token and gaps grow in proportion (0 disables the slowdown).
        seed: Seed of the text and latency draws (with the prompt).
        fault: One of :data:`FAULTS` to inject, or ``None``.
        fault_after: Tokens sent before a ``drop``, ``network_error`` or ``stall``.
        retry_after: Seconds in ``Retry-After`` for the ``rate_limit`` fault.
        stall_s: The longest a ``stall`` holds the connection open.
        prefill_ms_per_1k_tokens: Prefill time per 1,000 prompt tokens not served from the
            prefix cache, added to the time to first token (before any slowdown). 0 by
            default, so that ``ttft_ms`` stays the time to first token whatever the prompt;
            set it (e.g. 20, a GPU's order of magnitude) to see cached prefixes answered sooner.
        prefix_cache: Whether this request reads and fills the prefix cache
            (:mod:`.sim.prefix`); ``False`` bypasses it (``cached_tokens`` 0, full prefill).
        prefix_cache_tokens: The prefix cache's size in tokens, shared by all requests (0
            disables it). A runtime setting (``[sim]`` table, ``serve(sim=...)``): a request's
            ``sim`` may not change it.
    """

    ttft_ms: Dist = field(default_factory=lambda: Dist("lognormal", 350.0, 0.35))
    itl_ms: Dist = field(default_factory=lambda: Dist("lognormal", 22.0, 0.25))
    tokens: int = 256
    reasoning_tokens: int = 64
    tokens_per_chunk: int = 1
    capacity: int = 32
    seed: int = 0
    fault: str | None = None
    fault_after: int | None = None
    retry_after: float = 1.0
    stall_s: float = 600.0
    prefill_ms_per_1k_tokens: float = 0.0
    prefix_cache: bool = True
    prefix_cache_tokens: int = 1_000_000

    def with_overrides(
        self, overrides: Mapping[str, Any], where: str = "sim", *, per_request: bool = False
    ) -> SimConfig:
        """A copy with ``overrides`` applied; :class:`ConfigError` names a bad key or value.

        ``per_request``: the overrides come from a request's ``sim`` object, which may not
        resize the runtime's prefix cache (``prefix_cache_tokens``).
        """
        if not isinstance(overrides, Mapping):
            msg = f"{where} must be an object, got {type(overrides).__name__}"
            raise ConfigError(msg)
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            msg = f"{where}: unknown keys {unknown}; known: {sorted(known)}"
            raise ConfigError(msg)
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            name = f"{where}.{key}"
            if key in ("ttft_ms", "itl_ms"):
                changes[key] = Dist.parse(value, name)
            elif key in ("tokens", "tokens_per_chunk"):
                changes[key] = _int(value, name, 1)
            elif key in ("reasoning_tokens", "capacity", "seed"):
                changes[key] = _int(value, name, 0)
            elif key == "fault_after":
                changes[key] = None if value is None else _int(value, name, 0)
            elif key in ("retry_after", "stall_s", "prefill_ms_per_1k_tokens"):
                changes[key] = _non_negative(value, name)
            elif key == "prefix_cache":
                if not isinstance(value, bool):
                    msg = f"{name} must be true or false, got {value!r}"
                    raise ConfigError(msg)
                changes[key] = value
            elif key == "prefix_cache_tokens":
                changes[key] = _int(value, name, 0)
                if per_request and changes[key] != self.prefix_cache_tokens:
                    msg = (
                        f"{name} sizes the runtime's prefix cache and is set when the runtime "
                        "starts ([sim] table, serve(sim=...)); to bypass it for one request "
                        'send "prefix_cache": false'
                    )
                    raise ConfigError(msg)
            elif key == "fault":
                if value is not None and value not in FAULTS:
                    msg = f"{name} must be one of {', '.join(FAULTS)} (or null), got {value!r}"
                    raise ConfigError(msg)
                changes[key] = value
        return replace(self, **changes)


@dataclass(frozen=True)
class RuntimeConfig:
    """How the runtime serves: address, backend, security, limits, simulator defaults."""

    host: str = "127.0.0.1"
    port: int = 8765
    backend: str = "sim"
    upstream: str | None = None
    # Clients must authenticate (False: everyone is the admin; loopback only). The admin
    # token: None makes the runtime generate one. Never in the repr.
    auth: bool = True
    token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 4 * 1024 * 1024
    # Browser origins whose pages may call the runtime (CORS) and open the hub; validated and
    # normalised (scheme://host[:port]). allowed_origins: the older name, merged in here.
    cors_origins: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # Seconds a stream may stay silent before an SSE keep-alive comment (0 or None: never).
    sse_keepalive_s: float | None = 15.0
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    hub: HubLimits = field(default_factory=HubLimits)
    # Keep the hub's rooms in Redis (redis://[:password@]host:port/db) so that several
    # runtimes share them; may hold a password, so it stays out of the repr.
    redis: str | None = field(default=None, repr=False)
    redis_prefix: str = "glm_live"
    # Under uvicorn's httptools protocol the simulator writes its streams' chunks straight to
    # the connection, and the hub its WebSocket frames (glm_live/server/_uvicorn_fast.py);
    # False keeps them on plain ASGI send, as under any other server (tests run both;
    # benchmarks may compare them).
    uvicorn_fast_path: bool = True
    # permessage-deflate on the hub's WebSockets. Off by default: hub frames are small JSON,
    # and compressing each costs more CPU than it saves bytes on loopback and LAN links (a
    # third of the hub's send path), plus a compressor's state (hundreds of KiB) per
    # connection. Turn it on for large messages over slow links.
    ws_compression: bool = False
    # Threads kept for AG-UI resumes (a run that asked a person, answered by a later run):
    # at most this many (least recently used go first), each forgotten after this long.
    threads_max: int = 1000
    threads_ttl_s: float = 24 * 3600.0
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        # Frozen: the normalised values are set once, here.
        object.__setattr__(self, "cors_origins", _origins(self.cors_origins, self.allowed_origins))
        keepalive = self.sse_keepalive_s
        if keepalive is not None:
            object.__setattr__(
                self, "sse_keepalive_s", _non_negative(keepalive, "sse_keepalive_s") or None
            )
        if not isinstance(self.threads_max, int) or self.threads_max < 1:
            msg = f"threads_max must be a positive integer, got {self.threads_max!r}"
            raise ConfigError(msg)
        if not isinstance(self.threads_ttl_s, int | float) or self.threads_ttl_s <= 0:
            msg = f"threads_ttl_s must be a positive number of seconds, got {self.threads_ttl_s!r}"
            raise ConfigError(msg)
        if not isinstance(self.ws_compression, bool):
            msg = f"ws_compression must be true or false, got {self.ws_compression!r}"
            raise ConfigError(msg)
        if not isinstance(self.uvicorn_fast_path, bool):
            msg = f"uvicorn_fast_path must be true or false, got {self.uvicorn_fast_path!r}"
            raise ConfigError(msg)
        if self.backend not in ("sim", "glm", "openai"):
            msg = f"backend must be sim, glm or openai, got {self.backend!r}"
            raise ConfigError(msg)
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            msg = "TLS needs both ssl_certfile and ssl_keyfile"
            raise ConfigError(msg)
        if not isinstance(self.auth, bool):
            msg = f"auth must be true or false, got {self.auth!r}"
            raise ConfigError(msg)
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            msg = "token must be a non-empty string (or unset: the runtime makes one)"
            raise ConfigError(msg)
        if not self.auth and self.token:
            msg = (
                "a token was given with authentication off (--no-auth / auth=False): "
                "drop one of them (to use the token, leave authentication on)"
            )
            raise ConfigError(msg)
        if not self.auth and not is_loopback(self.host):
            msg = (
                f"refusing to listen on {self.host} with authentication off: anyone who can "
                "reach it could use the runtime (and its upstream key). Leave authentication "
                "on (drop --no-auth), or bind to 127.0.0.1."
            )
            raise InsecureBindError(msg)
        if self.backend == "openai" and not self.upstream:
            msg = "the openai backend needs an upstream base URL (--upstream URL)"
            raise ConfigError(msg)


def _origins(*lists: object) -> tuple[str, ...]:
    """The origins of ``cors_origins`` and its alias ``allowed_origins``, validated,
    normalised, without duplicates, in the order given."""
    result: list[str] = []
    for entries in lists:
        if isinstance(entries, str):
            entries = (entries,)
        if not isinstance(entries, list | tuple | set | frozenset):
            msg = (
                f"cors_origins must be a list of origins like https://app.example, got {entries!r}"
            )
            raise ConfigError(msg)
        for entry in entries:
            try:
                origin = parse_origin(entry)
            except OriginError as exc:
                msg = f"cors_origins: {exc}"
                raise ConfigError(msg) from exc
            if origin not in result:
                result.append(origin)
    return tuple(result)


def load_config(path: str | Path, **overrides: Any) -> RuntimeConfig:
    """Read a TOML file: top-level runtime keys, and a ``[sim]`` table of simulator defaults.

    ``overrides`` (e.g. from the command line) win over the file; ``None`` values are ignored.
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"cannot read config file {path}: {exc}"
        raise ConfigError(msg) from exc
    return config_from_mapping(data, **overrides)


def config_from_mapping(data: Mapping[str, Any], **overrides: Any) -> RuntimeConfig:
    """Build a :class:`RuntimeConfig` from plain data (a parsed config file)."""
    data = dict(data)
    sim_table = data.pop("sim", {})
    hub_table = data.pop("hub", {})
    sim_overrides = overrides.pop("sim", None) or {}
    known = {f.name for f in fields(RuntimeConfig)} - {"sim"}
    unknown = sorted(set(data) - known)
    if unknown:
        msg = f"config: unknown keys {unknown}; known: {sorted(known)}, [sim] and [hub] tables"
        raise ConfigError(msg)
    hub_known = {f.name for f in fields(HubLimits)}
    if not isinstance(hub_table, Mapping) or set(hub_table) - hub_known:
        msg = f"config: [hub] takes {sorted(hub_known)}, got {hub_table!r}"
        raise ConfigError(msg)
    if hub_table:
        values_hub = HubLimits(**hub_table)
        overrides.setdefault("hub", values_hub)
    values = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("cors_origins", "allowed_origins"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    sim = SimConfig().with_overrides(sim_table, "[sim]").with_overrides(sim_overrides)
    return RuntimeConfig(**values, sim=sim)
