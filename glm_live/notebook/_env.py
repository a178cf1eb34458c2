"""Where the code is running, and showing a thing once per cell.

A cell like ``session.panel()`` (or ``session.chat(...)``) as its last line displays the view
twice if nothing stops it: once where the call displays it, once as the cell's result. The
objects that display themselves mark what they showed with :func:`mark_shown`; their
``_ipython_display_`` asks :func:`shown_in_this_cell` and stays quiet for the cell's result.
A later cell shows them again.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["display_once", "in_kernel", "mark_shown", "shown_in_this_cell"]

# Object -> the (shell, execution count) of the cell that last showed it. Weak: a shown
# widget or handle is not kept alive by having been shown.
_shown: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()


def in_kernel() -> bool:
    """Whether this is a Jupyter kernel (where widgets can be displayed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _cell() -> tuple[int, int] | None:
    """The running cell: its shell and execution count (``None`` outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    # IPython increments execution_count after a cell has run: constant within the cell.
    return id(shell), int(getattr(shell, "execution_count", 0))


def mark_shown(obj: Any) -> None:
    """Record that ``obj`` is on screen from the running cell (displayed, or put in a panel
    displayed elsewhere)."""
    cell = _cell()
    if cell is not None:
        _shown[obj] = cell


def shown_in_this_cell(obj: Any) -> bool:
    """Whether :func:`mark_shown` was called for ``obj`` in the running cell."""
    cell = _cell()
    return cell is not None and _shown.get(obj) == cell


def display_once(obj: Any, bundle: dict[str, Any] | None = None) -> bool:
    """Display ``obj`` (or its raw mime ``bundle``) unless it was shown in this cell already.

    Returns whether it displayed now. Outside IPython it does nothing and returns ``False``.
    """
    if _cell() is None or shown_in_this_cell(obj):
        return False
    from IPython.display import display

    if bundle is None and hasattr(type(obj), "_ipython_display_"):
        # A view that shows itself once per cell (a ChatView, the panel) does so here; marking
        # it first would make it think it was shown already.
        obj._ipython_display_()
        return shown_in_this_cell(obj)
    mark_shown(obj)
    if bundle is None:
        display(obj)  # type: ignore[no-untyped-call]
    else:
        display(bundle, raw=True)  # type: ignore[no-untyped-call]
    return True
