"""The simulated world's customer accounts: one set of facts per (account, seed), one pure place.

Everything that talks about an account on the simulator draws its figures from here, so that
every text of a run agrees: the ``account-review`` workflow's agents (the shared state they
publish, their one-line summaries, the prompts they send), and the simulated GLM's answers to
any prompt that names the account (:func:`find_account`). ``facts("Globex", 7)`` is the same
object everywhere and every time; another seed gives other figures, and a name that is not in
:data:`KNOWN_ACCOUNTS` gets figures drawn from its own spelling, the same way.

Figures are integers where a reader would round them (revenue in thousands of dollars, whole
percentages), and every text formats them through the properties here (``revenue`` is
``"$503k"``, ``growth`` is ``"up 12%"``), so that one figure reads the same in every text.

This is floor 1 (pure, no I/O) because both floors that use it sit above it: the agents
(:mod:`glm_live.agents.builtin`) and the simulator (:mod:`glm_live.server.sim`).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

__all__ = ["KNOWN_ACCOUNTS", "AccountFacts", "facts", "find_account"]

#: The accounts of the demo, in the order the simulator used to pick them.
KNOWN_ACCOUNTS = ("Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Tyrell")

_FIRST = ("Ada", "Bruno", "Chen", "Dana", "Elif", "Farah", "Greta", "Hugo", "Ines", "Jonas")
_LAST = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Brennan", "Haddad")


@dataclass(frozen=True)
class AccountFacts:
    """What the simulated world knows about one account (drawn by :func:`facts`).

    Attributes:
        name: The account's name as texts write it.
        seed: The simulator seed the facts were drawn with.
        revenue_k: Annual recurring revenue now, in thousands of dollars.
        revenue_last_year_k: The same a year ago.
        growth_pct: Revenue growth year on year, in whole percent (from the two above).
        seats: Seats under contract.
        active_seats: Seats active in the last 30 days.
        nps: Net promoter score.
        open_tickets: Support tickets open now.
        likelihood: Likelihood of churn at renewal, 0 to 1 (two decimals).
        impact: Impact of losing the account, 0 to 1 (two decimals).
        renewal: The contract's renewal date, ISO ``YYYY-MM-DD``.
        owner: The account manager's name.
        sponsor: The customer's executive sponsor's name.
    """

    name: str
    seed: int
    revenue_k: int
    revenue_last_year_k: int
    growth_pct: int
    seats: int
    active_seats: int
    nps: int
    open_tickets: int
    likelihood: float
    impact: float
    renewal: str
    owner: str
    sponsor: str

    @property
    def risk_score(self) -> float:
        """Churn risk score: likelihood times impact, two decimals."""
        return round(self.likelihood * self.impact, 2)

    @property
    def churn_risk(self) -> str:
        """``"low"``, ``"medium"`` or ``"high"``, from :attr:`risk_score`."""
        score = self.risk_score
        return "low" if score < 0.15 else "medium" if score < 0.35 else "high"

    @property
    def adoption_pct(self) -> int:
        """Active seats as a whole percentage of the seats under contract."""
        return round(100 * self.active_seats / self.seats)

    @property
    def revenue(self) -> str:
        """Revenue now as texts write it: ``"$503k"``."""
        return f"${self.revenue_k}k"

    @property
    def revenue_last_year(self) -> str:
        """Revenue a year ago as texts write it."""
        return f"${self.revenue_last_year_k}k"

    @property
    def growth(self) -> str:
        """Growth as prose: ``"up 12%"``, ``"down 3%"`` or ``"flat"``."""
        if self.growth_pct > 0:
            return f"up {self.growth_pct}%"
        if self.growth_pct < 0:
            return f"down {-self.growth_pct}%"
        return "flat"

    @property
    def growth_signed(self) -> str:
        """Growth for a table cell: ``"+12%"``, ``"-3%"``, ``"0%"``."""
        return f"{self.growth_pct:+d}%" if self.growth_pct else "0%"

    def metrics(self) -> dict[str, int | float | str]:
        """The figures as the ``account-review`` workflow publishes them in its state."""
        return {
            "revenue_k": self.revenue_k,
            "revenue_last_year_k": self.revenue_last_year_k,
            "growth_pct": self.growth_pct,
            "seats": self.seats,
            "active_seats": self.active_seats,
            "adoption_pct": self.adoption_pct,
            "nps": self.nps,
            "open_tickets": self.open_tickets,
            "renewal": self.renewal,
            "owner": self.owner,
            "sponsor": self.sponsor,
        }


def _canonical(account: str) -> str:
    name = " ".join(account.split())
    for known in KNOWN_ACCOUNTS:
        if known.casefold() == name.casefold():
            return known
    return name[:1].upper() + name[1:] if name else name


def facts(account: str, seed: int = 0) -> AccountFacts:
    """The facts of ``account`` under simulator ``seed``: the same for the same pair, always.

    The name is matched to :data:`KNOWN_ACCOUNTS` regardless of case (``"globex"`` is
    Globex); any other name gets facts of its own, drawn from its spelling and the seed.
    """
    name = _canonical(account)
    digest = hashlib.blake2b(f"account\0{seed}\0{name.casefold()}".encode(), digest_size=8)
    rng = random.Random(int.from_bytes(digest.digest(), "big"))
    revenue = rng.randint(120, 980)
    growth = rng.randint(-8, 24)
    last_year = round(revenue / (1 + growth / 100))
    seats = rng.randrange(50, 900, 10)
    active = round(seats * rng.uniform(0.35, 0.95))
    owner, sponsor = rng.sample(_FIRST, 2)  # two people, two first names
    return AccountFacts(
        name=name,
        seed=seed,
        revenue_k=revenue,
        revenue_last_year_k=last_year,
        # From the rounded figures, so that anyone recomputing it from the two gets the same.
        growth_pct=round(100 * (revenue - last_year) / last_year),
        seats=seats,
        active_seats=active,
        nps=rng.randint(18, 71),
        open_tickets=rng.randint(3, 40),
        likelihood=round(rng.uniform(0.1, 0.7), 2),
        impact=round(rng.uniform(0.4, 0.9), 2),
        renewal=f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        owner=f"{owner} {rng.choice(_LAST)}",
        sponsor=f"{sponsor} {rng.choice(_LAST)}",
    )


# Capitalised words that start sentences or name things in prompts without being accounts.
_NOT_NAMES = frozenset(
    """
    a an the this that our my your their its it account accounts review reviews report risk
    risks analysis analyse analyze assess write summarise summarize data usage revenue customer
    client please what how why who which when where can could would should i we you they
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_WORD = r"([A-Z][\w&'-]*)"
# The keywords in any case ("Review the Acme account"), the name capitalised.
_AFTER = re.compile(
    r"\b(?i:account|review)\s+(?i:(?:of|for|on|named|called)\s+)?(?i:the\s+)?" + _WORD
)
_BEFORE = re.compile(_WORD + r"\s+(?i:account)\b")


def find_account(text: str) -> str | None:
    """The account ``text`` is about, or ``None``.

    A name from :data:`KNOWN_ACCOUNTS` anywhere (any case) wins; otherwise a capitalised word
    right before "account" ("the Acme account") or after "account" or "review" ("review of
    Acme", "account Acme"), skipping words such as "The" or "Risk" that are not names.
    """
    for known in KNOWN_ACCOUNTS:
        if re.search(rf"\b{known}\b", text, re.IGNORECASE):
            return known
    found: list[tuple[int, str]] = []
    for pattern in (_BEFORE, _AFTER):
        for match in pattern.finditer(text):
            word = match.group(1)
            if word.casefold() not in _NOT_NAMES:
                found.append((match.start(1), word))
    return min(found)[1] if found else None
