"""Manual review round trip and judge/human agreement.  (STUB: being filled in.)"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def export_for_review(rows: Iterable[dict[str, Any]], path: Path) -> Path: raise NotImplementedError
def import_reviews(path: Path) -> dict[str, str]: raise NotImplementedError
def apply_reviews(rows: Iterable[dict[str, Any]], reviews: dict[str, str]) -> list[dict[str, Any]]: raise NotImplementedError
def agreement(rows: Iterable[dict[str, Any]]) -> Any: raise NotImplementedError
