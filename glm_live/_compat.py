"""Old module paths (before the floors had folders) keep working, as aliases.

``import glm_live.sse`` or ``from glm_live.widgets import StreamView`` gives the module at its
new home: the very same module object, so ``glm_live.sse is glm_live.wire.sse``. Aliases
are resolved lazily, on first import, so ``import glm_live`` stays as light as it was.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

__all__ = ["MOVED", "install"]

#: Old module path -> where it lives now. Not ``glm_live.bench.compare``: that name is the
#: compare() function, and importing a module by it would make the import system set the
#: attribute to the module (as it does for every submodule it loads), replacing the function.
MOVED: dict[str, str] = {
    "glm_live.sse": "glm_live.wire.sse",
    "glm_live.retry": "glm_live.wire.retry",
    "glm_live.stream": "glm_live.transport.sse_client",
    "glm_live.ws": "glm_live.transport.hub_client",
    "glm_live.glm": "glm_live.protocols.glm",
    "glm_live.agui": "glm_live.protocols.agui",
    "glm_live.workflows": "glm_live.agents.builtin",
    "glm_live.metrics": "glm_live.measure.recorder",
    "glm_live.bench": "glm_live.notebook.bench",
    "glm_live.bench.runner": "glm_live.measure.bench.runner",
    "glm_live.bench.cluster": "glm_live.measure.bench.cluster",
    "glm_live.bench.results": "glm_live.measure.bench.results",
    "glm_live.bench.stats": "glm_live.measure.bench.stats",
    "glm_live.bench.plots": "glm_live.measure.bench.plots",
    "glm_live.aio": "glm_live.notebook.aio",
    "glm_live.session": "glm_live.notebook.session",
    "glm_live.widgets": "glm_live.notebook.widgets",
    "glm_live.widgets.recording": "glm_live.testing.comm_recorder",
    "glm_live.chaos": "glm_live.testing.chaos",
    "glm_live.server.redis_hub": "glm_live.server.hub.redis",
    "glm_live.server.pacer": "glm_live.server.sim.pacer",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module at its new home."""

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None or new == fullname:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def __init__(self) -> None:
        self._own_specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        self._own_specs[module.__name__] = module.__spec__
        if not hasattr(module, "__path__") and any(
            old.startswith(spec.name + ".") for old in MOVED
        ):
            # The old name was a package (glm_live.bench) and its submodules have aliases of
            # their own: the import system looks for a submodule only under a parent that
            # has a __path__. An empty one finds nothing on disk; this finder finds them.
            module.__path__ = []
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was executed at its new home.

        The import system has just set ``module.__spec__`` to the alias's spec; the module's
        own comes back, or its relative imports would resolve against the old package.
        """
        module.__spec__ = self._own_specs.pop(module.__name__)


def install() -> None:
    """Put the alias finder on :data:`sys.meta_path` (once)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
