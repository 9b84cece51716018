"""Content checks on parsed returns: one small function per rule, one registry.

File-level guards and layout detection live in ``pipeline.ingest`` and already
leave their issues on ``ParsedReturn.issues``; this module checks what a
return *says*: its values, its units against the register, its district, its
dates, its declared totals and its change since the previous period.

A period's returns are checked together: their unit rows are stacked into one
frame (each row knows its file) and every rule runs once over that frame. With
~15 rows per return, per-return pandas work would cost far more than the
checks themselves; stacked, a period of 17 returns costs about what one did.

Each rule takes a :class:`Context` and yields ``(file position, Issue)``
pairs built with ``ctx.issue``/``ctx.file_issue`` (wording and severity come
from ``rules.csv``). Row rules find the offending rows with vectorised masks
over the stacked rows and only loop over those rows; rules about a whole
return loop over the returns in plain Python. See ``docs/rules.md`` for the
severity policy.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from pipeline.checks.catalogue import Issue, make_issue, rules
from pipeline.ingest.model import COUNT_FIELDS, FIELDS, ParsedReturn

Suggest = Callable[[str, str | None], list[str]]
Found = tuple[int, Issue]  # (position of the return in Context.returns, issue)

HD28_ISSUED = date(2014, 10, 10)
# A total may move this much (share of the previous total) before we ask why.
MEMBERS_JUMP_RATIO = 0.5
MAX_SUGGESTIONS = 3

UNIT_TYPE_LABELS = {"xa": "Xã", "phuong": "Phường", "thi_tran": "Thị trấn"}
# How a totals-row column is named in a message ({column}).
TOTAL_LABELS = {
    "total_members": "tổng số đảng viên",
    "eligible": "số đơn vị đủ điều kiện thành lập",
    "has_cell": "số đơn vị đã thành lập chi bộ cơ quan",
    "cell_members": "số đảng viên chi bộ cơ quan",
}
# What a unit without a cell should not have filled in ({what}).
CELL_DETAIL_LABELS = {
    "established_on": "ngày thành lập",
    "basis": "căn cứ thành lập",
    "cell_members": "số đảng viên chi bộ cơ quan",
}
# A value-parser code not in the catalogue still refuses the value, generically.
FALLBACK_VALUE_CODE = "value_invalid"


# --------------------------------------------------------------------------- helpers


def period_end(period: str) -> date:
    """Last day of the month a ``YYYY-MM`` period is "as of"."""
    year, month = (int(p) for p in period.split("-"))
    return date(year, month, calendar.monthrange(year, month)[1])


@lru_cache(maxsize=4096)
def period_label(period: str) -> str:
    year, month = period.split("-")
    return f"tháng {int(month)}/{year}"


def _blank(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def fmt_date(value: Any) -> str:
    if _blank(value):
        return ""
    return pd.Timestamp(value).strftime("%d/%m/%Y")


def fmt_value(value: Any) -> str:
    """A cell value as a clerk would recognise it in a message."""
    if _blank(value):
        return ""
    if isinstance(value, (date, pd.Timestamp)):
        return fmt_date(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _true(series: pd.Series) -> pd.Series:
    """Mask of cells that are true; NA (unreadable flag) counts as neither."""
    return series.astype("boolean").fillna(False).astype(bool)


def _false(series: pd.Series) -> pd.Series:
    return (~series.astype("boolean")).fillna(False).astype(bool)


def _filled(series: pd.Series) -> np.ndarray:
    """Mask of cells holding something other than blank text."""
    if series.dtype.kind in "biufcmM":
        return series.notna().to_numpy(dtype=bool)
    # Object columns mix None, text, numbers and dates; pandas string methods
    # cost ~1 ms per call on them, while most cells are blank (error columns
    # nearly always): only the non-missing text needs a look.
    values = series.to_numpy(dtype=object)
    filled = ~pd.isna(values)
    for i in np.flatnonzero(filled):
        v = values[i]
        if isinstance(v, str) and not v.strip():
            filled[i] = False
    return filled


def _number(value: Any) -> float:
    """A declared total as a number (NaN when blank or not a number), like ``pd.to_numeric``."""
    if value is None:
        return float("nan")
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    # Text and other oddities are rare: let pandas decide exactly as it always did.
    number = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").iloc[0]
    return float("nan") if pd.isna(number) else float(number)


@dataclass
class Context:
    """The stacked unit rows of a period's returns, with the lookups computed once.

    ``rows`` holds every unit row of ``returns`` (RangeIndex) plus ``_file``,
    the row's position in ``returns``. Per-return attributes (district, Excel
    column letters, which columns the return has) are broadcast to rows by
    ``district``, ``letters`` and ``has_column``. Column accessors return numpy
    arrays, cached: several rules ask about the same columns.
    """

    returns: list[ParsedReturn]
    rows: pd.DataFrame
    units: pd.DataFrame  # register units indexed by unit_code
    districts: pd.DataFrame  # register districts indexed by district_code
    period: str
    previous: pd.DataFrame | None
    suggest: Suggest | None
    file: np.ndarray  # per row: position of its return in ``returns``
    # Per return, its period, when returns of several periods are checked at once
    # (the history checks of a whole build); None: every return is of ``period``.
    periods: list[str] | None = None
    _cache: dict[tuple, Any] = field(default_factory=dict)

    # ----------------------------------------------------------- per return

    @property
    def period_end(self) -> date:
        return period_end(self.period)

    def period_end_of(self, k: int) -> date:
        """The period end of return ``k`` (its own period when returns of several are checked at once)."""
        return period_end(self.periods[k]) if self.periods is not None else self.period_end

    def rows_by_period_end(self) -> list[tuple[date, np.ndarray]]:
        """(period end, mask of the rows of returns of that period), one pair per period present."""
        if self.periods is None:
            return [(self.period_end, np.ones(len(self.rows), dtype=bool))]
        row_periods = np.asarray(self.periods, dtype=object)[self.file]
        return [(period_end(p), row_periods == p) for p in dict.fromkeys(self.periods)]

    @property
    def n_files(self) -> int:
        return len(self.returns)

    def _cached(self, key: tuple, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def per_file(self, mask: np.ndarray) -> np.ndarray:
        """How many rows of each return a mask selects."""
        return np.bincount(self.file, weights=mask, minlength=self.n_files).astype(int)

    def district(self) -> np.ndarray:
        """Per row: the district its return was decided to be from (None if unknown)."""
        return self._cached(("district",), lambda: np.array([p.district_code for p in self.returns], dtype=object)[self.file])

    def letters(self, field: str) -> np.ndarray:
        """Per row: the Excel column letter of ``field`` in its return, or None."""
        return self._cached(("letters", field), lambda: np.array([p.columns.get(field) for p in self.returns], dtype=object)[self.file])

    def has_column(self, field: str) -> np.ndarray:
        """Per row: whether its return has a column for ``field``."""
        return self._cached(("has", field), lambda: np.array([field in p.columns for p in self.returns], dtype=bool)[self.file])

    def district_name(self, code: str | None) -> str:
        if code is None or code not in self.districts.index:
            return "tỉnh" if code is None else str(code)
        return str(self.districts.at[code, "district_name"])

    def unit_display(self, code: str) -> str:
        shown = self._cache.get(("display", code))
        if shown is None:
            # Plain dict lookups: DataFrame.at costs more than the rest of an issue.
            name = str(self.register_map("unit_name")[code])
            prefix = UNIT_TYPE_LABELS.get(self.register_map("unit_type")[code], "")
            shown = self._cache[("display", code)] = f"{prefix} {name}".strip()
        return shown

    def register_map(self, column: str) -> dict:
        """unit_code -> a register column, for plain dict lookups per row."""
        return self._cached(("register", column), lambda: dict(zip(self.units.index, self.units[column].to_numpy(dtype=object))))

    # ----------------------------------------------------------- columns

    def col(self, name: str) -> pd.Series:
        if name in self.rows.columns:
            return self.rows[name]
        return pd.Series([None] * len(self.rows), index=self.rows.index, dtype=object)

    def values(self, name: str) -> np.ndarray:
        """The column as Python objects (None/NaN/NA where blank or absent)."""
        return self._cached(("values", name), lambda: self.col(name).to_numpy(dtype=object))

    def filled(self, name: str) -> np.ndarray:
        return self._cached(("filled", name), lambda: _filled(self.col(name)))

    def isna(self, name: str) -> np.ndarray:
        return self._cached(("isna", name), lambda: self.col(name).isna().to_numpy(dtype=bool))

    def number(self, name: str) -> np.ndarray:
        """The column as floats, NaN where not a number."""
        return self._cached(
            ("number", name), lambda: pd.to_numeric(self.col(name), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        )

    def true(self, name: str) -> np.ndarray:
        return self._cached(("true", name), lambda: _true(self.col(name)).to_numpy())

    def false(self, name: str) -> np.ndarray:
        return self._cached(("false", name), lambda: _false(self.col(name)).to_numpy())

    def dates(self, name: str) -> pd.Series:
        return self._cached(("dates", name), lambda: self._dates(name))

    def dates_beyond(self, name: str, bound: date, *, after: bool) -> np.ndarray:
        """Mask of dates after (or before) ``bound``; unreadable or blank dates are neither."""
        values = self.values(name)
        if all(type(v) is date or v is None or _blank(v) for v in values):
            # What the parser gives: plain dates compare as they are, far cheaper than to_datetime.
            return np.array([type(v) is date and (v > bound if after else v < bound) for v in values], dtype=bool)
        dates = self.dates(name)
        mask = dates > pd.Timestamp(bound) if after else dates < pd.Timestamp(bound)
        return mask.fillna(False).to_numpy(dtype=bool)

    def _dates(self, name: str) -> pd.Series:
        column = self.col(name)
        if any(isinstance(v, str) for v in self.values(name)):
            # Text dates are parsed with a format pandas infers from the first one:
            # infer it per return, as one return alone would.
            parts = [pd.to_datetime(column[self.file == k], errors="coerce") for k in range(self.n_files)]
            return pd.concat(parts).sort_index()
        return pd.to_datetime(column, errors="coerce")

    # ----------------------------------------------------------- rows and cells

    def hits(self, mask: np.ndarray | pd.Series) -> np.ndarray:
        """Positions of the (usually no) rows a mask selects."""
        return np.flatnonzero(np.asarray(mask, dtype=bool))

    def ref(self, field: str, i: int) -> str | None:
        return _ref(self.letters(field)[i], self.values("excel_row")[i])

    def first_ref(self, fields: Iterable[str], i: int) -> str | None:
        for f in fields:
            if (cell := self.ref(f, i)) is not None:
                return cell
        return None

    def label(self, i: int) -> str:
        """A row's unit as messages name it: register name with type, else the name as written."""
        code = self.values("matched_unit_code")[i]
        if isinstance(code, str) and code in self.register_map("unit_name"):
            return self.unit_display(code)
        own_return = self.returns[self.file[i]]
        own = own_return.column_names() if own_return.row_count() is not None else self.rows.columns
        written = "unit_name_raw" if "unit_name_raw" in own else "unit_name" if "unit_name" in own else None
        return fmt_value(self.values(written)[i]) if written else ""

    # ----------------------------------------------------------- issues

    def file_issue(self, k: int, rule_code: str, cell: str | None = None, /, **params: Any) -> Found:
        parsed = self.returns[k]
        period = self.periods[k] if self.periods is not None else self.period
        issue = make_issue(
            rule_code,
            sheet=parsed.sheet,
            cell=cell,
            file=parsed.file_name,
            period=period,
            period_label=period_label(period),
            **params,
        )
        return k, issue

    def issue(self, i: int, rule_code: str, cell: str | None = None, /, **params: Any) -> Found:
        """An issue about row ``i`` (of whichever return it belongs to)."""
        return self.file_issue(int(self.file[i]), rule_code, cell, **params)


def _ref(letter: str | None, excel_row: Any) -> str | None:
    if letter is None or excel_row is None or pd.isna(excel_row):
        return None
    return f"{letter}{int(excel_row)}"


# --------------------------------------------------------------------------- registry

RuleFn = Callable[[Context], Iterable[Found]]
RULES: list[tuple[tuple[str, ...], RuleFn]] = []


def rule(*codes: str) -> Callable[[RuleFn], RuleFn]:
    """Register a rule with the catalogue codes it may emit."""

    def register(fn: RuleFn) -> RuleFn:
        RULES.append((codes, fn))
        return fn

    return register


# --------------------------------------------------------------------------- values


@rule("count_not_number", "count_not_integer", "flag_invalid", "date_invalid", "basis_invalid", "unit_type_unknown")
def value_errors(ctx: Context) -> Iterator[Found]:
    """Cells the value parser could not read (codes set on ``<field>_error``)."""
    catalogue = rules()
    for field in FIELDS:
        error = f"{field}_error"
        if error not in ctx.rows.columns:
            continue
        for i in ctx.hits(ctx.filled(error)):
            code = str(ctx.values(error)[i])
            yield ctx.issue(
                i,
                code if code in catalogue else FALLBACK_VALUE_CODE,
                ctx.ref(field, i),
                value=fmt_value(ctx.values(f"{field}_raw")[i]),
                unit=ctx.label(i),
                detail=code,
            )


@rule("count_negative")
def count_negative(ctx: Context) -> Iterator[Found]:
    for field in COUNT_FIELDS:
        for i in ctx.hits(ctx.number(field) < 0):
            yield ctx.issue(i, "count_negative", ctx.ref(field, i), value=fmt_value(ctx.values(field)[i]), unit=ctx.label(i))


@rule("count_missing")
def count_missing(ctx: Context) -> Iterator[Found]:
    # Without the column at all, it is reported once as missing_column.
    mask = ctx.has_column("total_members") & ctx.isna("total_members") & ~ctx.filled("total_members_error")
    for i in ctx.hits(mask):
        yield ctx.issue(i, "count_missing", ctx.ref("total_members", i), unit=ctx.label(i))


# --------------------------------------------------------------------------- units


@rule("unit_unknown")
def unit_unknown(ctx: Context) -> Iterator[Found]:
    """Rows matching no register unit, or a unit of another district than the return's."""
    matched, district = ctx.values("matched_unit_code"), ctx.district()
    unit_district = ctx.register_map("district_code")
    mask = ctx.isna("matched_unit_code").copy()
    for i in np.flatnonzero(~mask):
        d = district[i]
        if d is not None and unit_district.get(matched[i]) != d:
            mask[i] = True
    for i in ctx.hits(mask):
        d = district[i]
        written = (
            fmt_value(ctx.values("unit_name_raw")[i]) or fmt_value(ctx.values("unit_name")[i]) or fmt_value(ctx.values("unit_code_raw")[i])
        )
        suggestion = ""
        if ctx.suggest is not None and written:
            names = [n for n in ctx.suggest(written, d) if n][:MAX_SUGGESTIONS]
            if names:
                suggestion = f" Có phải: {', '.join(names)}?"
        yield ctx.issue(
            i,
            "unit_unknown",
            ctx.first_ref(("unit_name", "unit_code"), i),
            unit=written or "(để trống)",
            district=ctx.district_name(d),
            suggestion=suggestion,
        )


@rule("unit_duplicate")
def unit_duplicate(ctx: Context) -> Iterator[Found]:
    # Rows by (return, unit), in order of first appearance; a unit is listed twice within one return only.
    groups: dict[tuple[int, str], list[int]] = {}
    for i in np.flatnonzero(~ctx.isna("matched_unit_code")):
        groups.setdefault((int(ctx.file[i]), ctx.values("matched_unit_code")[i]), []).append(int(i))
    for (k, code), members in groups.items():
        if len(members) < 2:
            continue
        excel_rows = [int(ctx.values("excel_row")[i]) for i in members]
        yield ctx.issue(
            members[0],
            "unit_duplicate",
            ctx.first_ref(("unit_name", "unit_code"), members[1]),
            unit=ctx.unit_display(code) if code in ctx.units.index else code,
            unit_code=code,
            rows=", ".join(str(r) for r in excel_rows),
        )


@rule("unit_missing")
def unit_missing(ctx: Context) -> Iterator[Found]:
    if not any(p.district_code is not None for p in ctx.returns):
        return
    expected: dict[Any, list[str]] = {}
    for code, d in ctx.register_map("district_code").items():
        expected.setdefault(d, []).append(code)
    present: list[set] = [set() for _ in ctx.returns]
    for k, code in zip(ctx.file, ctx.values("matched_unit_code")):
        if not _blank(code):
            present[k].add(code)
    for k, p in enumerate(ctx.returns):
        if p.district_code is None:
            continue
        for code in expected.get(p.district_code, []):
            if code not in present[k]:
                yield ctx.file_issue(
                    k, "unit_missing", None, unit=ctx.unit_display(code), unit_code=code, district=ctx.district_name(p.district_code)
                )


@rule("unit_code_missing", "unit_codes_missing")
def unit_code_missing(ctx: Context) -> Iterator[Found]:
    matched = ~ctx.isna("matched_unit_code")
    # An optional column: no note per row when the return has none.
    mask = ctx.has_column("unit_code") & matched & ~ctx.filled("unit_code_raw") & ~ctx.filled("unit_code")
    if not mask.any():
        return
    blank, of_matched = ctx.per_file(mask), ctx.per_file(matched)
    # A column left blank throughout is one remark, not one per unit.
    whole = (blank > 1) & (blank == of_matched)
    for k in np.flatnonzero(whole):
        first = ctx.hits(mask & (ctx.file == k))[0]
        yield ctx.issue(first, "unit_codes_missing", ctx.ref("unit_code", first), count=int(blank[k]), column=ctx.returns[k].columns["unit_code"])
    for i in ctx.hits(mask & ~whole[ctx.file]):
        yield ctx.issue(i, "unit_code_missing", ctx.ref("unit_code", i), unit=ctx.label(i), unit_code=ctx.values("matched_unit_code")[i])


@rule("unit_code_name_mismatch")
def unit_code_name_mismatch(ctx: Context) -> Iterator[Found]:
    for i in ctx.hits(ctx.true("code_conflict")):
        code = ctx.values("matched_unit_code")[i]
        code_unit = ctx.unit_display(code) if code in ctx.units.index else ""
        yield ctx.issue(
            i,
            "unit_code_name_mismatch",
            ctx.first_ref(("unit_code", "unit_name"), i),
            written_code=fmt_value(ctx.values("unit_code")[i]) or fmt_value(ctx.values("unit_code_raw")[i]) or code,
            code_unit=code_unit,
            unit=fmt_value(ctx.values("unit_name_raw")[i]) or fmt_value(ctx.values("unit_name")[i]),
        )


@rule("unit_type_mismatch")
def unit_type_mismatch(ctx: Context) -> Iterator[Found]:
    written, matched = ctx.values("unit_type"), ctx.values("matched_unit_code")
    register_type = ctx.register_map("unit_type")
    # The register may count a GSO town as a commune (for the published
    # denominators); writing GSO's own class is not wrong.
    gso_type = ctx.register_map("gso_unit_type") if "gso_unit_type" in ctx.units.columns else {}
    for i in np.flatnonzero(~ctx.isna("unit_type") & ~ctx.isna("matched_unit_code")):
        expected = register_type.get(matched[i])
        if _blank(expected) or written[i] == expected or written[i] == gso_type.get(matched[i]):
            continue
        yield ctx.issue(
            i,
            "unit_type_mismatch",
            ctx.ref("unit_type", i),
            value=fmt_value(ctx.values("unit_type_raw")[i]) or UNIT_TYPE_LABELS.get(written[i], ""),
            unit=ctx.label(i),
            expected=UNIT_TYPE_LABELS.get(expected, str(expected)).lower(),
        )


# --------------------------------------------------------------------------- district and period


@rule("district_unknown")
def district_unknown(ctx: Context) -> Iterator[Found]:
    for k, p in enumerate(ctx.returns):
        if p.district_code is None:
            yield ctx.file_issue(k, "district_unknown")


@rule("district_title_mismatch")
def district_title_mismatch(ctx: Context) -> Iterator[Found]:
    for k, p in enumerate(ctx.returns):
        content, title = p.district_code, p.title_district_code
        if content is not None and title is not None and content != title:
            yield ctx.file_issue(
                k, "district_title_mismatch", district=ctx.district_name(content), title_district=ctx.district_name(title)
            )


@rule("district_mixed")
def district_mixed(ctx: Context) -> Iterator[Found]:
    for k, p in enumerate(ctx.returns):
        counts = {code: n for code, n in (p.district_counts or {}).items() if n and n > 0}
        if len(counts) >= 2:
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            detail = "; ".join(f"{ctx.district_name(code)}: {n} đơn vị" for code, n in ordered)
            yield ctx.file_issue(k, "district_mixed", detail=detail)


@rule("district_filename_mismatch")
def district_filename_mismatch(ctx: Context) -> Iterator[Found]:
    for k, p in enumerate(ctx.returns):
        content, from_name = p.district_code, p.filename_district_code
        if content is not None and from_name is not None and content != from_name:
            yield ctx.file_issue(
                k, "district_filename_mismatch", district=ctx.district_name(content), file_district=ctx.district_name(from_name)
            )


@rule("period_mismatch")
def period_mismatch(ctx: Context) -> Iterator[Found]:
    for k, p in enumerate(ctx.returns):
        if _blank(p.as_of):
            continue
        end = ctx.period_end_of(k)
        stamp = pd.Timestamp(p.as_of)
        if (stamp.year, stamp.month) != (end.year, end.month):
            yield ctx.file_issue(k, "period_mismatch", as_of=fmt_date(stamp))


# --------------------------------------------------------------------------- the agency cell


def _cell_missing(field: str, code: str) -> RuleFn:
    def check(ctx: Context) -> Iterator[Found]:
        # Without the column at all, it is reported once as missing_column.
        mask = ctx.has_column(field) & ctx.true("has_cell") & ctx.isna(field) & ~ctx.filled(f"{field}_error")
        for i in ctx.hits(mask):
            yield ctx.issue(i, code, ctx.ref(field, i), unit=ctx.label(i))

    check.__name__ = code
    return check


cell_missing_date = rule("cell_missing_date")(_cell_missing("established_on", "cell_missing_date"))
cell_missing_basis = rule("cell_missing_basis")(_cell_missing("basis", "cell_missing_basis"))
cell_missing_members = rule("cell_missing_members")(_cell_missing("cell_members", "cell_missing_members"))


@rule("cell_members_exceed_total")
def cell_members_exceed_total(ctx: Context) -> Iterator[Found]:
    cell, total = ctx.number("cell_members"), ctx.number("total_members")
    # A negative total is already an error of its own; comparing with it only adds noise.
    for i in ctx.hits((cell > total) & (total >= 0)):
        yield ctx.issue(
            i,
            "cell_members_exceed_total",
            ctx.ref("cell_members", i),
            unit=ctx.label(i),
            cell_members=fmt_value(ctx.values("cell_members")[i]),
            total_members=fmt_value(ctx.values("total_members")[i]),
        )


@rule("cell_data_without_cell")
def cell_data_without_cell(ctx: Context) -> Iterator[Found]:
    filled = {
        "established_on": ctx.filled("established_on") | ctx.filled("established_on_raw"),
        "basis": ctx.filled("basis") | ctx.filled("basis_raw"),
        # A zero is what a unit without a cell should write.
        "cell_members": np.nan_to_num(ctx.number("cell_members")) != 0,
    }
    any_filled = filled["established_on"] | filled["basis"] | filled["cell_members"]
    for i in ctx.hits(ctx.false("has_cell") & any_filled):
        fields = [f for f, m in filled.items() if m[i]]
        yield ctx.issue(
            i,
            "cell_data_without_cell",
            ctx.first_ref(fields, i),
            unit=ctx.label(i),
            what=", ".join(CELL_DETAIL_LABELS[f] for f in fields),
        )


@rule("cell_not_eligible")
def cell_not_eligible(ctx: Context) -> Iterator[Found]:
    for i in ctx.hits(ctx.true("has_cell") & ctx.false("eligible")):
        yield ctx.issue(i, "cell_not_eligible", ctx.first_ref(("eligible", "has_cell"), i), unit=ctx.label(i))


@rule("date_in_future")
def date_in_future(ctx: Context) -> Iterator[Found]:
    for end, of_period in ctx.rows_by_period_end():
        for i in ctx.hits(ctx.dates_beyond("established_on", end, after=True) & of_period):
            yield ctx.issue(
                i,
                "date_in_future",
                ctx.ref("established_on", i),
                value=fmt_date(ctx.values("established_on")[i]),
                as_of=fmt_date(end),
                unit=ctx.label(i),
            )


@rule("hd28_before_issue")
def hd28_before_issue(ctx: Context) -> Iterator[Found]:
    hd28 = np.array([isinstance(v, str) and v == "HD28" for v in ctx.values("basis")], dtype=bool)
    if not hd28.any():
        return
    mask = hd28 & ctx.dates_beyond("established_on", HD28_ISSUED, after=False)
    for i in ctx.hits(mask):
        yield ctx.issue(i, "hd28_before_issue", ctx.ref("established_on", i), value=fmt_date(ctx.values("established_on")[i]), unit=ctx.label(i))


# --------------------------------------------------------------------------- totals


@rule("totals_mismatch")
def totals_mismatch(ctx: Context) -> Iterator[Found]:
    with_totals = [k for k, p in enumerate(ctx.returns) if p.totals_row is not None]
    if not with_totals:
        return
    computed, unreadable = {}, {}
    for field in TOTAL_LABELS:
        values = np.nan_to_num(ctx.number(field)) if field in COUNT_FIELDS else ctx.true(field)
        computed[field] = np.bincount(ctx.file, weights=values, minlength=ctx.n_files)
        # Rows the parser could not read already refuse the return; a sum over them would only repeat it.
        unreadable[field] = ctx.per_file(ctx.filled(f"{field}_error")) > 0
    for k in with_totals:
        p = ctx.returns[k]
        for field, label in TOTAL_LABELS.items():
            declared = _number(p.totals.get(field))
            if declared != declared or field not in p.column_names() or unreadable[field][k]:
                continue
            total = int(computed[field][k])
            if declared != total:
                yield ctx.file_issue(
                    k,
                    "totals_mismatch",
                    _ref(p.columns.get(field), p.totals_row),
                    declared=fmt_value(declared),
                    computed=total,
                    column=label,
                )


@rule("totals_missing")
def totals_missing(ctx: Context) -> Iterator[Found]:
    for k, p in enumerate(ctx.returns):
        if p.totals_row is None:
            yield ctx.file_issue(k, "totals_missing")


# --------------------------------------------------------------------------- history


@dataclass
class _Previous:
    """Per row, what the previous period said about the row's unit (``had_cell`` False, others None when nothing)."""

    had_cell: np.ndarray
    total_members: pd.Series
    period: list[Any]
    with_period: bool


def _previous(ctx: Context) -> _Previous | None:
    return ctx._cached(("previous",), lambda: _match_previous(ctx))


def _match_previous(ctx: Context) -> _Previous | None:
    prev = ctx.previous
    if prev is None or prev.empty or "unit_code" not in prev.columns:
        return None
    # With a district column, a return is compared only with its own district's
    # rows (each district's last accepted period); without one, the caller
    # already chose the rows.
    codes = prev["unit_code"].to_numpy(dtype=object)
    by_district = "district_code" in prev.columns
    matched, district = ctx.values("matched_unit_code"), ctx.district()
    if by_district and "for_period" in prev.columns and ctx.periods is not None:
        # Several periods at once: each row is compared with the rows named for its own period.
        keys = zip(prev["for_period"].to_numpy(dtype=object), prev["district_code"].to_numpy(dtype=object), codes)
        where = {key: n for n, key in enumerate(keys)}  # the last row of a unit wins
        row_period = np.asarray(ctx.periods, dtype=object)[ctx.file]
        at = [None if _blank(code) else where.get((p, d, code)) for p, d, code in zip(row_period, district, matched)]
    else:
        keys = zip(prev["district_code"].to_numpy(dtype=object), codes) if by_district else codes
        where = {key: n for n, key in enumerate(keys)}  # the last row of a unit wins
        at = [None if _blank(code) else where.get((d, code) if by_district else code) for d, code in zip(district, matched)]

    def take(source: np.ndarray, missing: Any = None) -> list:
        return [missing if n is None else source[n] for n in at]

    def column(name: str) -> np.ndarray:
        return prev[name].to_numpy(dtype=object) if name in prev.columns else np.full(len(prev), None, dtype=object)

    had = _true(prev["has_cell"]).to_numpy() if "has_cell" in prev.columns else np.zeros(len(prev), dtype=bool)
    return _Previous(
        np.array(take(had, False), dtype=bool),
        pd.Series(take(column("total_members")), dtype=object),
        take(column("period")),
        "period" in prev.columns,
    )


def _period_of(prev: _Previous, i: int) -> str:
    if not prev.with_period:
        return ""
    value = prev.period[i]
    return period_label(str(value)) if isinstance(value, str) and "-" in value else fmt_value(value)


@rule("cell_disappeared")
def cell_disappeared(ctx: Context) -> Iterator[Found]:
    prev = _previous(ctx)
    if prev is None or "has_cell" not in ctx.previous.columns:
        return
    mask = prev.had_cell & ctx.false("has_cell") & ~ctx.filled("note")
    for i in ctx.hits(mask):
        yield ctx.issue(i, "cell_disappeared", ctx.ref("has_cell", i), unit=ctx.label(i), previous_period=_period_of(prev, i))


@rule("members_jump")
def members_jump(ctx: Context) -> Iterator[Found]:
    prev = _previous(ctx)
    if prev is None or "total_members" not in ctx.previous.columns:
        return
    before = pd.to_numeric(prev.total_members, errors="coerce")
    before_f = before.to_numpy(dtype=float, na_value=np.nan)
    before_values = before.to_numpy(dtype=object)  # indexed per hit: Series.iloc costs ~10 µs a call
    now = ctx.number("total_members")
    # A note is where the clerk explains a real change; once explained, stop asking.
    with np.errstate(invalid="ignore"):
        mask = (before_f > 0) & (np.abs(now - before_f) > MEMBERS_JUMP_RATIO * before_f) & ~ctx.filled("note")
    for i in ctx.hits(mask):
        yield ctx.issue(
            i,
            "members_jump",
            ctx.ref("total_members", i),
            unit=ctx.label(i),
            previous_period=_period_of(prev, i),
            previous=fmt_value(before_values[i]),
            value=fmt_value(ctx.values("total_members")[i]),
        )


# --------------------------------------------------------------------------- entry points


def _cell_order(issue: Issue) -> tuple:
    """File-level issues first, then in sheet order (row, then column)."""
    return _cell_key(issue.cell) if issue.cell else (0, 0, 0, "")


@lru_cache(maxsize=65536)
def _cell_key(cell: str) -> tuple:
    # Cached: a build sorts thousands of issues over the same few hundred cells.
    letters = "".join(ch for ch in cell if ch.isalpha())
    digits = "".join(ch for ch in cell if ch.isdigit())
    return (1, int(digits or 0), len(letters), letters)


def build_context(
    returns: list[ParsedReturn],
    *,
    units: pd.DataFrame,
    districts: pd.DataFrame,
    period: str,
    previous: pd.DataFrame | None = None,
    suggest: Suggest | None = None,
) -> Context:
    """Stack the rows of ``returns`` (each with at least one row) for one pass of the rules."""
    frames = [p.rows for p in returns]
    rows = frames[0].reset_index(drop=True) if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    file = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    rows["_file"] = file
    reg_units, reg_districts = _indexed_register(units, districts)
    return Context(returns, rows, reg_units, reg_districts, period, previous, suggest, file)


_INDEXED: list[tuple] = []  # (units, districts, indexed units, indexed districts) of the register last used


def _indexed_register(units: pd.DataFrame, districts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The register's tables indexed by code, built once per register rather than once per period."""
    if _INDEXED and _INDEXED[0][0] is units and _INDEXED[0][1] is districts:
        return _INDEXED[0][2], _INDEXED[0][3]
    reg_units = units.assign(unit_code=units["unit_code"].astype(str)).drop_duplicates("unit_code").set_index("unit_code", drop=False)
    reg_districts = districts.assign(district_code=districts["district_code"].astype(str)).set_index("district_code", drop=False)
    _INDEXED[:] = [(units, districts, reg_units, reg_districts)]
    return reg_units, reg_districts


def check_returns(
    parsed_list: list[ParsedReturn],
    *,
    units: pd.DataFrame,
    districts: pd.DataFrame,
    period: str,
    previous: pd.DataFrame | None = None,
    suggest: Suggest | None = None,
    stages: str = "all",
) -> list[list[Issue]]:
    """The content issues of each return of a period (one list per input, same order).

    Each list is in sheet order, without repeats, and the same as checking
    that return alone. ``units``/``districts`` are the register's tables;
    ``previous`` holds the previous period's accepted rows (unit_code,
    has_cell, total_members, period and, for more than one district,
    district_code: a return is then compared only with its own district's
    rows); ``suggest(name, district_code)`` returns register names close to an
    unknown one. The caller adds ``parsed.issues`` (file and layout issues).

    ``stages``: "all"; "history" (only the rules comparing with ``previous``);
    or "content" (all others). "content" then "history", each list merged in
    sheet order, gives exactly "all": the history rules come last.
    """
    out: list[list[Issue]] = [[] for _ in parsed_list]
    # A return without rows has no content to judge: layout already said why (no_header, no_units).
    positions = [n for n, p in enumerate(parsed_list) if p.row_count()]
    if not positions:
        return out
    ctx = build_context(
        [parsed_list[n] for n in positions], units=units, districts=districts, period=period, previous=previous, suggest=suggest
    )
    for k, issues in enumerate(_run_rules(ctx, stages)):
        out[positions[k]] = issues
    return out


def check_stacked(
    returns: list[ParsedReturn],
    rows: pd.DataFrame,
    *,
    units: pd.DataFrame,
    districts: pd.DataFrame,
    period: str | None = None,
    periods: list[str] | None = None,
    previous: pd.DataFrame | None = None,
    suggest: Suggest | None = None,
    stages: str = "all",
) -> list[list[Issue]]:
    """``check_returns`` of returns whose unit rows the caller already stacked (one list per return).

    ``rows``: every return's rows, ``_file`` giving each row's position in
    ``returns`` (every return has rows; ``returns[k].rows`` may be None), so a
    caller that needs the stacked rows for more than the checks stacks them once.
    ``periods`` (one per return) checks returns of many periods at once, for
    the history checks of a whole build: ``previous`` then holds, per period,
    the rows it is compared with, tagged ``for_period`` (see
    ``pipeline.warehouse.load.PriorRows.rows_for``). Each list equals what
    ``check_returns`` gives that return in its own period.
    """
    if not returns:
        return []
    rows = rows.reset_index(drop=True)
    reg_units, reg_districts = _indexed_register(units, districts)
    first = period if period is not None else periods[0]
    ctx = Context(returns, rows, reg_units, reg_districts, first, previous, suggest, rows["_file"].to_numpy(), periods)
    return _run_rules(ctx, stages)


# The columns of a return's rows the history rules read: all a build keeps for them.
HISTORY_ROW_COLUMNS = ("excel_row", "matched_unit_code", "unit_name", "unit_name_raw", "has_cell", "total_members", "note")


def _run_rules(ctx: Context, stages: str) -> list[list[Issue]]:
    """Each return's issues from the rules of ``stages``: in sheet order, without repeats."""
    found: list[list[Issue]] = [[] for _ in range(ctx.n_files)]
    for codes, fn in _rules_for(stages):
        for k, issue in fn(ctx):
            found[k].append(issue)
    out = []
    for issues in found:
        seen: set[tuple] = set()
        kept = []
        for issue in issues:
            # The value parser may already have flagged what a rule re-derives (a negative count).
            key = (issue.code, issue.cell) if issue.cell else (issue.code, issue.message)
            if key not in seen:
                seen.add(key)
                kept.append(issue)
        out.append(sorted(kept, key=_cell_order))
    return out


def _is_history(codes: tuple[str, ...]) -> bool:
    return all(rules()[c].stage == "history" for c in codes)


def _rules_for(stages: str) -> list[tuple[tuple[str, ...], RuleFn]]:
    if stages == "all":
        return RULES
    if stages not in ("content", "history"):
        raise ValueError(f"stages must be all, content or history, not {stages!r}")
    return [(codes, fn) for codes, fn in RULES if _is_history(codes) == (stages == "history")]


def merge_in_sheet_order(*lists: list[Issue]) -> list[Issue]:
    """Issue lists of separate ``stages`` of one return, as one list in sheet order."""
    return sorted((i for issues in lists for i in issues), key=_cell_order)


def check_return(
    parsed: ParsedReturn,
    *,
    units: pd.DataFrame,
    districts: pd.DataFrame,
    period: str,
    previous: pd.DataFrame | None = None,
    suggest: Suggest | None = None,
) -> list[Issue]:
    """All content issues of one parsed return: :func:`check_returns` of just this one."""
    return check_returns([parsed], units=units, districts=districts, period=period, previous=previous, suggest=suggest)[0]


def has_errors(issues: Iterable[Issue]) -> bool:
    return any(i.severity == "error" for i in issues)
