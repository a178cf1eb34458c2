"""Where the code is running."""

from __future__ import annotations

__all__ = ["in_kernel"]


def in_kernel() -> bool:
    """Whether this is a Jupyter kernel (where widgets can be displayed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
