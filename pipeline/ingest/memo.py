"""Answers a parse worker has already worked out, kept for the values that come back.

A district sends the same unit names, title lines and cell values ("x",
"HD10", small counts) every period, and a worker reads many periods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def recall(memo: dict, size: int, compute: Callable[..., T], *args: Any) -> T:
    """``compute(*args)``, answered from ``memo`` when the same arguments came before.

    The key holds each argument's type too: 1, 1.0 and True are equal dict keys
    but not the same cell. At ``size`` entries the memo starts over rather than
    grow with odd values; unhashable arguments are computed, not remembered.
    The answers must be immutable: every caller gets the same object.
    """
    key = (*args, *map(type, args))
    try:
        return memo[key]
    except KeyError:
        pass
    except TypeError:
        return compute(*args)
    if len(memo) >= size:
        memo.clear()
    found = memo[key] = compute(*args)
    return found
