"""Typed values from raw cells: counts, flags, dates, basis and unit type.

Input is what python-calamine yields for a cell (str, int, float, bool,
date, datetime, time, timedelta, None, "") with text already decoded to NFC.
Every parser returns ``(value, error_code)``; ``error_code`` is ``None`` or a
code of ``pipeline/checks/rules.csv``. Blank is never an error here: whether a
blank is allowed depends on the row (has the unit a cell?) and is decided by the
checks. A lone dash ("-", "–", "—") is how Vietnamese tables write "nothing"
in a cell, so it counts as blank everywhere.

These run on every cell of every return, so patterns are compiled once and the
common types (float, int, blank) are dispatched on ``type(v)`` before anything
slower.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "EARLIEST_DATE",
    "LATEST_DATE",
    "fold",
    "parse_basis",
    "parse_count",
    "parse_date",
    "parse_flag",
    "parse_series",
    "parse_unit_type",
    "strip_blank",
]

# Characters that render as nothing or as a plain space but survive str.strip()
# (zero-width ones) or that we want to treat as a separator inside numbers.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_SPACES = "\u00a0\u2007\u2009\u202f"
_SPACE_TO_ASCII = dict.fromkeys(map(ord, _SPACES), " ")
_DASHES = frozenset({"-", "–", "—", "−", "--", "---"})

# A party cell cannot predate the Communist Party of Vietnam (founded 3/2/1930);
# the bound turns counts typed into date-formatted cells (1900-01-25) and bare
# years read as serials (2015 -> 1905) into errors instead of silent nonsense.
EARLIEST_DATE = dt.date(1930, 2, 3)
LATEST_DATE = dt.date(2100, 12, 31)

_EPOCH_1900 = dt.date(1899, 12, 30)  # valid for serials > 60 (after Excel's fake 29/2/1900)
_EPOCH_1904 = dt.date(1904, 1, 1)


def _is_missing(v: Any) -> bool:
    """NaN / pandas NA / NaT: what a DataFrame puts in an empty cell."""
    if isinstance(v, float):
        return math.isnan(v)
    name = type(v).__name__
    return name in ("NAType", "NaTType")


def strip_blank(v: Any) -> str | None:
    """Text of ``v`` without invisible characters and surrounding (NB)spaces; None if blank.

    Non-text values are returned as their ``str()``; None and NaN give None.
    The soft hyphen (U+00AD, TCVN3's "ư") is deliberately kept.
    """
    if v is None:
        return None
    if type(v) is not str:
        if _is_missing(v):
            return None
        v = str(v)
    if not v:
        return None
    s = v.translate(_INVISIBLE).strip()
    return s or None


def _blank_text(v: str) -> str | None:
    """Stripped text, or None for blank and dash placeholders."""
    s = strip_blank(v)
    if s is None or s in _DASHES:
        return None
    return s


def fold(s: str) -> str:
    """Casefolded text without Vietnamese diacritics ("Hướng dẫn" -> "huong dan")."""
    s = unicodedata.normalize("NFD", s.casefold())
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    return s.replace("đ", "d")


# --------------------------------------------------------------------- counts

_SP = f"[ {_SPACES}]"
# Grouping by ".", "," or a space is only recognised in groups of exactly three
# digits, so "1.091" and "1,091" are 1091 while "12.5" / "12,5" are decimals.
_NUMBER = re.compile(
    rf"""
    (?P<sign>[+\-−–])?\s*
    (?:
        (?P<dot>\d{{1,3}}(?:\.\d{{3}})+)(?:,(?P<dotfrac>\d+))?
      | (?P<comma>\d{{1,3}}(?:,\d{{3}})+)(?:\.(?P<commafrac>\d+))?
      | (?P<space>\d{{1,3}}(?:{_SP}\d{{3}})+)(?:[.,](?P<spacefrac>\d+))?
      | (?P<plain>\d*)(?:[.,](?P<plainfrac>\d+))?
    )
    """,
    re.VERBOSE,
)
# "25 đv", "25 đ/v", "25 đảng viên", "25 người": the unit is noise, not an error.
_COUNT_SUFFIX = re.compile(r"\s*(?:đ\.?\s*/?\s*v\.?|đảng\s+viên|người|dv)\s*$", re.IGNORECASE)
_WHOLE_TOL = 1e-9  # Excel shows 15 significant digits: 24.999999999999996 looks like 25


# Counts are stored as 64-bit integers; a larger "count" is not a number of people.
_MAX_COUNT = 2**63 - 1


def _int_count(n: int) -> tuple[int | None, str | None]:
    return (n, None) if -_MAX_COUNT <= n <= _MAX_COUNT else (None, "count_not_number")


def _float_count(f: float) -> tuple[int | None, str | None]:
    if math.isnan(f):
        return None, None
    if math.isinf(f):
        return None, "count_not_number"
    r = round(f)
    if abs(f - r) <= _WHOLE_TOL * max(1.0, abs(f)):
        return _int_count(int(r))
    return None, "count_not_integer"


def _text_count(s: str) -> tuple[int | None, str | None]:
    s = _COUNT_SUFFIX.sub("", s)
    m = _NUMBER.fullmatch(s)
    if m is None:
        return None, "count_not_number"
    g = m.groupdict()
    if g["dot"] is not None:
        whole, frac = g["dot"].replace(".", ""), g["dotfrac"]
    elif g["comma"] is not None:
        whole, frac = g["comma"].replace(",", ""), g["commafrac"]
    elif g["space"] is not None:
        whole, frac = re.sub(_SP, "", g["space"]), g["spacefrac"]
    else:
        whole, frac = g["plain"], g["plainfrac"]
        if not whole and not frac:
            return None, "count_not_number"
    if frac and frac.strip("0"):
        return None, "count_not_integer"
    n = int(whole or "0")
    return _int_count(-n if g["sign"] is not None and g["sign"] != "+" else n)


def parse_count(v: Any) -> tuple[int | None, str | None]:
    """A count of party members: int, whole float, or text with Vietnamese grouping.

    Negative values are returned as such (refusing them is a separate rule).
    """
    t = type(v)
    if t is float:
        return _float_count(v)
    if t is int:
        return _int_count(v)
    if v is None:
        return None, None
    if t is str:
        s = _blank_text(v)
        return (None, None) if s is None else _text_count(s)
    if isinstance(v, bool):
        return None, "count_not_number"
    if _is_missing(v):
        return None, None
    if isinstance(v, numbers.Integral):
        return _int_count(int(v))
    if isinstance(v, numbers.Real):
        return _float_count(float(v))
    return None, "count_not_number"


# ---------------------------------------------------------------------- flags

_FLAG_TRUE = frozenset(
    {"x", "×", "✕", "có", "co", "✓", "✔", "☑", "1", "yes", "true", "đúng", "dung"}
)
_FLAG_FALSE = frozenset(
    {"0", "không", "khong", "ko", "no", "false", "chưa", "chua", "sai"}
)


def parse_flag(v: Any) -> tuple[bool | None, str | None]:
    """A yes/no mark: only unmistakable marks count; blank means no."""
    t = type(v)
    if v is None:
        return False, None
    if t is str:
        s = _blank_text(v)
        if s is None:
            return False, None
        s = " ".join(s.casefold().split())
        if s in _FLAG_TRUE:
            return True, None
        if s in _FLAG_FALSE:
            return False, None
        return None, "flag_invalid"
    if t is bool:
        return v, None
    if _is_missing(v):
        return False, None
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        if v == 1:
            return True, None
        if v == 0:
            return False, None
    return None, "flag_invalid"


# ---------------------------------------------------------------------- dates

_DMY = re.compile(
    r"(?:ngày\s*)?(\d{1,2})\s*[/\-.]\s*(\d{1,2})\s*[/\-.]\s*(\d{4}|\d{2})"
    r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?",
    re.IGNORECASE,
)
_YMD = re.compile(
    r"(\d{4})\s*([/\-.])\s*(\d{1,2})\s*\2\s*(\d{1,2})(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
)
# Matched against fold(text): "ngày 12 tháng 3 năm 2015", with or without diacritics.
_WORDS = re.compile(r"(?:ngay\s*)?(\d{1,2})\s*,?\s*thang\s*(\d{1,2})\s*,?\s*nam\s*(\d{4}|\d{2})\.?")
_SERIAL_TEXT = re.compile(r"\d{4,6}(?:[.,]\d+)?")


def _bounded(d: dt.date) -> tuple[dt.date | None, str | None]:
    if EARLIEST_DATE <= d <= LATEST_DATE:
        return d, None
    return None, "date_invalid"


def _serial(f: float, epoch_1904: bool) -> tuple[dt.date | None, str | None]:
    if math.isnan(f):
        return None, None
    if math.isinf(f) or f < 1 or f > 2_958_465:  # 2958465 = 31/12/9999, Excel's last day
        return None, "date_invalid"
    days = int(f)  # the fraction is the time of day
    if epoch_1904:
        d = _EPOCH_1904 + dt.timedelta(days=days)
    elif days == 60:  # Excel's 29/2/1900 never existed
        return None, "date_invalid"
    elif days < 60:
        d = _EPOCH_1900 + dt.timedelta(days=days + 1)
    else:
        d = _EPOCH_1900 + dt.timedelta(days=days)
    return _bounded(d)


def _ymd(y: int, m: int, d: int) -> tuple[dt.date | None, str | None]:
    try:
        return _bounded(dt.date(y, m, d))
    except ValueError:
        return None, "date_invalid"


def _year(text: str) -> int:
    y = int(text)
    if len(text) == 2:
        y += 2000 if y < 50 else 1900
    return y


def _text_date(s: str, epoch_1904: bool) -> tuple[dt.date | None, str | None]:
    m = _DMY.fullmatch(s)
    if m:
        return _ymd(_year(m[3]), int(m[2]), int(m[1]))
    m = _YMD.fullmatch(s)
    if m:
        return _ymd(int(m[1]), int(m[3]), int(m[4]))
    m = _WORDS.fullmatch(fold(s))
    if m:
        return _ymd(_year(m[3]), int(m[2]), int(m[1]))
    if _SERIAL_TEXT.fullmatch(s):
        # A serial pasted into a text-formatted cell; the bounds reject bare years.
        return _serial(float(s.replace(",", ".")), epoch_1904)
    return None, "date_invalid"


def parse_date(v: Any, *, epoch_1904: bool = False) -> tuple[dt.date | None, str | None]:
    """A date: date cells, Excel serials, or text read day first (never month first).

    ``epoch_1904`` applies to bare serial numbers from workbooks saved with the
    1904 date system (calamine already converts date-formatted cells).
    Dates before EARLIEST_DATE or after LATEST_DATE are invalid.
    """
    t = type(v)
    if v is None:
        return None, None
    if t is dt.date:
        return _bounded(v)
    if t is dt.datetime:
        return _bounded(v.date())
    if t is str:
        s = _blank_text(v)
        return (None, None) if s is None else _text_date(s, epoch_1904)
    if t is float or t is int:
        return _serial(float(v), epoch_1904)
    if _is_missing(v):
        return None, None
    if isinstance(v, dt.datetime):
        return _bounded(v.date())
    if isinstance(v, dt.date):
        return _bounded(v)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return _serial(float(v), epoch_1904)
    # bool, time of day, duration: not a day of the calendar.
    return None, "date_invalid"


# ---------------------------------------------------------------------- basis

# All matched against fold(text). The guidance number is the one right after
# "HD"/"Hướng dẫn" (optionally "số"), or right before "-HD"; other numbers in
# the cell (a date such as 10/10/2014) are ignored.
_BASIS_AFTER = re.compile(
    r"(?<![a-z])(?:h\.?\s*d\.?|huong\s*dan)\s*(?:so\s*)?[:.]?\s*(\d+)(?![\d])(?!\s*[/.]\s*\d)"
)
_BASIS_BEFORE = re.compile(r"(?<!\d)(\d+)\s*[-–/]?\s*hd(?![a-z])")
_BASIS_BARE = re.compile(r"(?:so\s*)?(\d+)(?:[.,]0+)?")
_BASIS_CODES = {10: "HD10", 28: "HD28"}


def parse_basis(v: Any) -> tuple[str | None, str | None]:
    """The guidance a cell was set up under: 'HD10' or 'HD28'."""
    t = type(v)
    if v is None:
        return None, None
    if t is str:
        s = _blank_text(v)
        if s is None:
            return None, None
        f = " ".join(fold(s).split())
        found = {int(n) for n in _BASIS_AFTER.findall(f)} | {int(n) for n in _BASIS_BEFORE.findall(f)}
        if not found:
            m = _BASIS_BARE.fullmatch(f)
            if m:
                found = {int(m[1])}
        if len(found) == 1:
            code = _BASIS_CODES.get(found.pop())
            if code:
                return code, None
        return None, "basis_invalid"
    if _is_missing(v):
        return None, None
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        if float(v).is_integer() and int(v) in _BASIS_CODES:
            return _BASIS_CODES[int(v)], None
    return None, "basis_invalid"


# ------------------------------------------------------------------ unit type

_UNIT_TYPES = {
    "xa": "xa",
    "phuong": "phuong",
    "p": "phuong",
    "thi tran": "thi_tran",
    "thitran": "thi_tran",
    "tt": "thi_tran",
    "t t": "thi_tran",
}
_UNIT_TYPE_PUNCT = re.compile(r"[.\-_/]+")


def parse_unit_type(v: Any) -> tuple[str | None, str | None]:
    """'xa' | 'phuong' | 'thi_tran' from the type column; unknown is a warning."""
    if v is None:
        return None, None
    if type(v) is not str:
        return (None, None) if _is_missing(v) else (None, "unit_type_unknown")
    s = _blank_text(v)
    if s is None:
        return None, None
    key = " ".join(_UNIT_TYPE_PUNCT.sub(" ", fold(s)).split())
    code = _UNIT_TYPES.get(key)
    return (code, None) if code else (None, "unit_type_unknown")


# --------------------------------------------------------------- vectorised


def parse_series(
    values: Iterable[Any], parser: Callable[..., tuple[Any, str | None]], **kwargs: Any
) -> tuple[list[Any], list[str | None]]:
    """Apply a scalar parser to a pandas Series (or any iterable): (values, errors)."""
    tolist = getattr(values, "tolist", None)
    items = tolist() if tolist is not None else values
    out: list[Any] = []
    errs: list[str | None] = []
    for v in items:
        value, err = parser(v, **kwargs)
        out.append(value)
        errs.append(err)
    return out, errs
