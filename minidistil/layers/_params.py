"""Small helpers for layers that take a parameter dict ``p`` keyed by local names."""
from __future__ import annotations

from typing import Iterable, Mapping


def require_params(p: Mapping, keys: Iterable[str], where: str) -> None:
    """Every name in ``keys`` must be in ``p``; one error lists all that are missing."""
    if not isinstance(p, Mapping):
        raise TypeError(f"{where}: p must be a dict of parameters, got {type(p).__name__}")
    missing = [k for k in keys if k not in p]
    if missing:
        raise ValueError(f"{where}: parameter dict p is missing {missing}")

