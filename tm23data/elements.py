"""The 27 TM23 metals: one table (``data/elements.csv``) that drives loader, CLI, generation and evaluator.

Melting temperatures are the experimental values used by the paper (its ref. 45) and by public TM23 tools;
the three AIMD temperatures are derived from them (0.25, 0.75, 1.25 x T_melt), never stored twice.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .errors import UsageError, did_you_mean

#: Regime name -> fraction of the melting temperature at which the AIMD ran (paper, Methods).
REGIME_FRACTIONS: dict[str, float] = {"cold": 0.25, "warm": 0.75, "melt": 1.25}
REGIMES: tuple[str, ...] = tuple(REGIME_FRACTIONS)


@dataclass(frozen=True)
class Element:
    """One row of the TM23 table. Temperatures in K."""

    symbol: str
    Z: int
    group: int
    period: int
    structure: str
    mp_id: str
    melting_K: float
    note: str = ""

    def temperature(self, regime: str) -> float:
        """AIMD temperature (K) of ``regime`` ('cold', 'warm' or 'melt')."""
        if regime not in REGIME_FRACTIONS:
            raise UsageError(f"unknown regime {regime!r}; TM23 regimes are {', '.join(REGIMES)}")
        return REGIME_FRACTIONS[regime] * self.melting_K

    @property
    def temperatures(self) -> dict[str, float]:
        return {regime: self.temperature(regime) for regime in REGIMES}


class UnknownElementError(UsageError, KeyError):
    """Raised for a symbol that is not one of the 27 TM23 metals."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@lru_cache(maxsize=1)
def _table() -> dict[str, Element]:
    with resources.files("tm23data").joinpath("data/elements.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {
        row["symbol"]: Element(
            symbol=row["symbol"],
            Z=int(row["Z"]),
            group=int(row["group"]),
            period=int(row["period"]),
            structure=row["structure"],
            mp_id=row["mp_id"],
            melting_K=float(row["melting_K"]),
            note=row["note"] or "",
        )
        for row in rows
    }


def all_elements() -> list[Element]:
    """The 27 metals in periodic-table order (period, then group)."""
    return sorted(_table().values(), key=lambda e: (e.period, e.group))


def symbols() -> list[str]:
    """The 27 symbols in alphabetical order, as the archive lists them."""
    return sorted(_table())


def get(symbol: str) -> Element:
    """Look up a TM23 metal by its exact symbol; a wrong name gets an error that suggests the right one."""
    table = _table()
    if isinstance(symbol, str) and symbol in table:
        return table[symbol]
    raise UnknownElementError(_unknown_message(symbol))


def resolve(symbols_: str | list[str] | tuple[str, ...]) -> list[str]:
    """Normalise one symbol or a list of symbols into a validated, de-duplicated list (order kept)."""
    items = [symbols_] if isinstance(symbols_, str) else list(symbols_)
    if not items:
        raise UsageError("no element given; choose from: " + ", ".join(symbols()))
    out: list[str] = []
    for item in items:
        if get(item).symbol not in out:
            out.append(item)
    return out


def _unknown_message(symbol: object) -> str:
    from ase.data import atomic_numbers

    table = _table()
    text = str(symbol)
    same_letters = [name for name in table if name.lower() == text.lower()]
    if same_letters:
        hint = f" Symbols are case-sensitive: did you mean {same_letters[0]!r}?"
    elif text in atomic_numbers:
        hint = f" {text} is an element, but not one of the 27 d-block metals in TM23."
    else:
        hint = did_you_mean(text, table, n=3, cutoff=0.5)
    return f"{symbol!r} is not a TM23 element.{hint} Valid symbols: {', '.join(symbols())}."
