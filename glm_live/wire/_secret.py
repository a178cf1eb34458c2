"""A string that does not show itself: API keys and tokens live in one of these.

:func:`scrub` takes them out of any text that may be shown (messages, logs, outputs).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Secret", "scrub"]


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


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``.

    Secrets shorter than 4 characters are left alone: masking them would garble ordinary text.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
