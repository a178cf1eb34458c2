"""A string that does not show itself: API keys and tokens live in one of these."""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """Holds a secret string; ``repr`` and ``str`` show ``'***'``, never the value.

    Call :meth:`reveal` at the one place the value is needed (building a header).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        # Pickling would write the key to disk or to another process in clear text.
        msg = "a Secret cannot be pickled"
        raise TypeError(msg)
