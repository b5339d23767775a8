"""Seed-format convergence table.  (STUB: being filled in.)"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConvergenceTable:
    def to_markdown(self) -> str: raise NotImplementedError
    def to_dict(self) -> dict[str, Any]: raise NotImplementedError


def convergence_table(rows: Iterable[dict[str, Any]], by: tuple[str, ...] = ("model", "condition")) -> ConvergenceTable:
    raise NotImplementedError


def plot_convergence(table: ConvergenceTable) -> Any:
    raise NotImplementedError


def seed_table() -> ConvergenceTable:
    raise NotImplementedError
