"""The embedded runtime: a simulated GLM-4.6, a proxy to real endpoints, health and metrics.

Start it with :func:`serve` (in-process, on a background thread) or ``glm-live serve``.
"""

from __future__ import annotations

from .app import CHAT_PATHS, Runtime, create_app
from .config import FAULTS, ConfigError, Dist, RuntimeConfig, SimConfig, load_config
from .runner import InsecureBindError, ServerHandle, serve

__all__ = [
    "CHAT_PATHS",
    "FAULTS",
    "ConfigError",
    "Dist",
    "InsecureBindError",
    "Runtime",
    "RuntimeConfig",
    "ServerHandle",
    "SimConfig",
    "create_app",
    "load_config",
    "serve",
]
