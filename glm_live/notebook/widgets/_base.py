"""The base of every glm_live widget: anywidget assets from ``static/``, coalesced updates."""

from __future__ import annotations

import pathlib
from typing import Any

import anywidget
import traitlets

from ._coalescer import coalescer

__all__ = ["LiveWidget", "esm", "static"]

_STATIC = pathlib.Path(__file__).parent / "static"


def static(name: str) -> pathlib.Path:
    """A file of ``glm_live/widgets/static``."""
    return _STATIC / name


def esm(*names: str) -> str:
    """ES modules of ``static/`` joined into one: anywidget loads a widget's module from a
    blob URL, where relative imports cannot resolve, so shared code is prepended."""
    return "\n".join((_STATIC / name).read_text() for name in names)


class LiveWidget(anywidget.AnyWidget):
    """A widget whose updates go through the kernel's coalescer, never straight to traits.

    ``_delta`` carries appended text: ``{"seq": n, <channel>: text, ...}``.
    """

    _delta = traitlets.Dict().tag(sync=True)

    def update(self, **traits: Any) -> None:
        """Set traits at the next coalesced flush (latest value wins)."""
        coalescer().set(self, **traits)

    def apply_flush(self, traits: dict[str, Any], delta: dict[str, Any] | None) -> None:
        # One comm message per flush: hold_sync gathers every change into one update.
        with self.hold_sync():
            for name, value in traits.items():
                setattr(self, name, value)
            if delta is not None:
                self._delta = delta
