"""Numbers and dates the way the Board writes them: ``1.091``, ``51,8``, ``30/6/2016``.

Percentages are rounded half-up to one decimal (the Board's rule, and what
``round()`` with its banker's rounding and binary floats does not do).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal
from numbers import Real


def _is_missing(x) -> bool:
    return x is None or (isinstance(x, Real) and math.isnan(float(x)))


def round_half_up(x: float, digits: int = 1) -> float:
    """Round half away from zero on the decimal written form: 0.05 -> 0.1, 44.085 -> 44.1 (digits=1)."""
    # str() gives the shortest repr, so 2.675 rounds as the 2.675 people see.
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(str(x)).quantize(quantum, rounding=ROUND_HALF_UP))


def pct(numerator, denominator, digits: int = 1) -> float | None:
    """Percentage rounded half-up; None when the denominator is 0 or missing."""
    if _is_missing(numerator) or _is_missing(denominator) or float(denominator) == 0:
        return None
    value = Decimal(str(numerator)) * 100 / Decimal(str(denominator))
    return float(value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def fmt_int(n) -> str:
    """``1091 -> "1.091"``; missing -> empty string."""
    if _is_missing(n):
        return ""
    return f"{int(round(float(n))):,}".replace(",", ".")


def fmt_pct(x, digits: int = 1, *, drop_zero: bool = False) -> str:
    """``51.8 -> "51,8"``, ``100.0 -> "100,0"`` or ``"100"`` with ``drop_zero``
    (the Board writes "đạt 100%", "đạt 75%"). No ``%`` sign; missing -> ``""``."""
    if _is_missing(x):
        return ""
    value = round_half_up(float(x), digits)
    if drop_zero and value == int(value):
        return fmt_int(value)
    whole, _, frac = f"{value:,.{digits}f}".partition(".")
    whole = whole.replace(",", ".")
    return f"{whole},{frac}" if frac else whole


def period_end(period: str) -> dt.date:
    """Last day of a ``YYYY-MM`` period."""
    year, month = (int(p) for p in period.split("-"))
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def fmt_date(d: dt.date) -> str:
    """``30/6/2016``: day and month without leading zeros, as the Board writes them."""
    return f"{d.day}/{d.month}/{d.year}"


def fmt_date_long(d: dt.date) -> str:
    """``ngày 5 tháng 7 năm 2016`` for the place/date line of a document."""
    return f"ngày {d.day} tháng {d.month} năm {d.year}"
