"""Token and cost ledgers: what requests used, from the usage the server sent, and what it
cost when prices are configured.

One rule, in :func:`cost`, for every ledger (a :class:`~glm_live.Conversation`'s per
message, a :class:`~glm_live.Session`'s per request):

- ``prompt_tokens`` that were served from the provider's cache (``cached_tokens``) are
  priced at :attr:`Price.cached_input` (at :attr:`Price.input` when that is not given);
- the other prompt tokens at :attr:`Price.input`;
- ``completion_tokens`` at :attr:`Price.output`. Reasoning tokens are part of them (GLM and
  OpenAI both count ``completion_tokens_details.reasoning_tokens`` inside
  ``completion_tokens``), so they are billed once, as output.

No price is ever guessed: a model without a configured price has no cost (the simulator's
``glm-4.6-sim`` is priced as ``glm-4.6`` when that is configured, and only then): ``NaN`` in a
frame, ``None`` from :func:`cost`. Neither has a request whose usage the server never
sent (a cancelled stream, a failure).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LEDGER_COLUMNS",
    "SIM_SUFFIX",
    "Price",
    "Prices",
    "cost",
    "ledger_frame",
    "price_for",
    "prices_of",
    "usage_row",
]


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices, per million tokens, in ``currency``.

    Args:
        input: Per million prompt tokens.
        output: Per million completion tokens (reasoning included).
        cached_input: Per million prompt tokens served from the cache (``input`` if ``None``).
        currency: A label for the cost column (``USD`` by default); nothing converts it.
    """

    input: float
    output: float
    cached_input: float | None = None
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            if value is None and name == "cached_input":
                continue
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                msg = (
                    f"Price.{name} must be a number of {self.currency} per million tokens, "
                    f"0 or more; got {value!r}"
                )
                raise ValueError(msg)


#: Prices by model name: :class:`Price` objects, or mappings with its fields
#: (``{"glm-4.6": {"input": 0.6, "output": 2.2, "cached_input": 0.11}}``).
Prices = Mapping[str, "Price | Mapping[str, Any]"]

#: What the embedded simulator appends to the name of the model it answers as.
SIM_SUFFIX = "-sim"

#: The columns of a ledger frame, in order.
LEDGER_COLUMNS = (
    "model",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "total_tokens",
    "cost",
    "currency",
)


def prices_of(prices: Prices | None) -> dict[str, Price]:
    """``prices`` as :class:`Price` objects by model.

    Raises:
        ValueError: A price is neither a :class:`Price` nor a mapping of its fields, or has a
            field it does not know, or a negative value.
    """
    found: dict[str, Price] = {}
    for model, price in (prices or {}).items():
        if isinstance(price, Price):
            found[str(model)] = price
            continue
        if not isinstance(price, Mapping):
            msg = (
                f"the price of {model!r} must be a glm_live.Price or a mapping like "
                f"{{'input': 0.6, 'output': 2.2}} (per million tokens); got {price!r}"
            )
            raise ValueError(msg)
        unknown = set(price) - {"input", "output", "cached_input", "currency"}
        if unknown:
            msg = (
                f"the price of {model!r} has unknown fields {sorted(unknown)}: use input, "
                "output, cached_input (per million tokens) and currency"
            )
            raise ValueError(msg)
        try:
            found[str(model)] = Price(**price)
        except TypeError as exc:
            msg = f"the price of {model!r} needs input and output (per million tokens): {exc}"
            raise ValueError(msg) from None
    return found


def price_for(prices: Mapping[str, Price], model: str | None) -> Price | None:
    """``model``'s price: by its name, or, for the embedded simulator's ``<model>-sim``, by
    the name of the model it simulates (so a demo shows what the real one would cost)."""
    if not model:
        return None
    found = prices.get(model)
    if found is None and model.endswith(SIM_SUFFIX):
        found = prices.get(model[: -len(SIM_SUFFIX)])
    return found


def usage_row(usage: Mapping[str, Any] | None, model: str | None = None) -> dict[str, Any]:
    """The ledger's token columns from a server's ``usage`` (``None`` where it said nothing)."""
    usage = usage or {}
    completion = usage.get("completion_tokens_details") or {}
    prompt = usage.get("prompt_tokens_details") or {}
    total = usage.get("total_tokens")
    if total is None and "prompt_tokens" in usage and "completion_tokens" in usage:
        total = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "model": model,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "reasoning_tokens": completion.get("reasoning_tokens"),
        "cached_tokens": prompt.get("cached_tokens"),
        "total_tokens": total,
    }


def cost(row: Mapping[str, Any], price: Price | None) -> float | None:
    """What a ledger row (:func:`usage_row`) cost at ``price``, or ``None`` without a price or
    without the usage."""
    prompt, completion = _count(row.get("prompt_tokens")), _count(row.get("completion_tokens"))
    if price is None or prompt is None or completion is None:
        return None
    cached = _count(row.get("cached_tokens")) or 0
    cached_price = price.input if price.cached_input is None else price.cached_input
    return (
        (prompt - cached) * price.input + cached * cached_price + completion * price.output
    ) / 1e6


def ledger_frame(
    rows: Iterable[Mapping[str, Any]],
    prices: Mapping[str, Price],
    leading: tuple[str, ...] = (),
    index: str | None = None,
) -> pd.DataFrame:
    """A ledger: ``rows`` (each :func:`usage_row`'s columns, plus the ``leading`` ones) with
    ``cost`` and ``currency`` from ``prices`` by each row's model. Token columns are nullable
    integers: ``<NA>`` where the server sent no usage. With no rows, the columns are there."""
    import pandas as pd

    out = []
    for row in rows:
        price = price_for(prices, row.get("model"))
        value = cost(row, price)
        out.append(
            {
                **row,
                "cost": float("nan") if value is None else value,
                "currency": price.currency if price is not None else None,
            }
        )
    frame = pd.DataFrame(out).reindex(columns=[*leading, *LEDGER_COLUMNS])
    for column in LEDGER_COLUMNS[1:6]:
        frame[column] = frame[column].astype("Int64")
    frame["cost"] = frame["cost"].astype("float64")
    for column in ("model", "currency", "status", "label"):
        if column in frame:
            frame[column] = frame[column].astype("string")
    if index is not None and index in frame:
        frame = frame.set_index(index)
    return frame


def _count(value: Any) -> int | None:
    """A token count, or ``None`` for a missing one (``None``, ``NaN``, pandas' ``NA``)."""
    if value is None:
        return None
    try:
        return None if math.isnan(value) else int(value)
    except TypeError:  # pandas' NA
        return None
