"""Content checks on a parsed return: one small function per rule, one registry.

File-level guards and layout detection live in ``pipeline.ingest`` and already
leave their issues on ``ParsedReturn.issues``; this module checks what the
return *says*: its values, its units against the register, its district, its
dates, its declared totals and its change since the previous period.

Each rule takes a :class:`Context` and yields :class:`Issue` objects built with
``make_issue`` (wording and severity come from ``rules.csv``). Rules find the
offending rows with vectorised pandas masks and only loop over those rows.
See ``docs/rules.md`` for the severity policy.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from pipeline.checks.catalogue import Issue, make_issue, rules
from pipeline.ingest.model import COUNT_FIELDS, FIELDS, ParsedReturn

Suggest = Callable[[str, str | None], list[str]]

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


def period_label(period: str) -> str:
    year, month = period.split("-")
    return f"tháng {int(month)}/{year}"


def fmt_date(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return pd.Timestamp(value).strftime("%d/%m/%Y")


def fmt_value(value: Any) -> str:
    """A cell value as a clerk would recognise it in a message."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
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


def _filled(series: pd.Series) -> pd.Series:
    """Mask of cells holding something other than blank text."""
    if series.dtype.kind in "biufcmM":
        return series.notna().astype(bool)
    # Object columns mix None, text, numbers and dates; pandas string methods
    # cost ~1 ms per call on them, a plain pass over ~15 cells costs microseconds.
    values = [not (v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip())) for v in series.to_numpy(dtype=object)]
    return pd.Series(values, index=series.index, dtype=bool)


@dataclass
class Context:
    """Everything a rule may look at, with the lookups computed once."""

    parsed: ParsedReturn
    rows: pd.DataFrame
    units: pd.DataFrame  # register units indexed by unit_code
    districts: pd.DataFrame  # register districts indexed by district_code
    period: str
    previous: pd.DataFrame | None
    suggest: Suggest | None
    unit_label: pd.Series  # per row: register name with type, else the name as written
    _filled_cache: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def period_end(self) -> date:
        return period_end(self.period)

    def col(self, field: str) -> pd.Series:
        if field in self.rows.columns:
            return self.rows[field]
        return pd.Series([None] * len(self.rows), index=self.rows.index, dtype=object)

    def filled(self, column: str) -> pd.Series:
        """Cached ``_filled`` of a column: several rules ask about the same ones."""
        if column not in self._filled_cache:
            self._filled_cache[column] = _filled(self.col(column))
        return self._filled_cache[column]

    def has_column(self, field: str) -> bool:
        return field in self.parsed.columns

    def ref(self, field: str, excel_row: Any) -> str | None:
        letter = self.parsed.columns.get(field)
        if letter is None or excel_row is None or pd.isna(excel_row):
            return None
        return f"{letter}{int(excel_row)}"

    def first_ref(self, fields: Iterable[str], excel_row: Any) -> str | None:
        for f in fields:
            if (cell := self.ref(f, excel_row)) is not None:
                return cell
        return None

    def district_name(self, code: str | None) -> str:
        if code is None or code not in self.districts.index:
            return "tỉnh" if code is None else str(code)
        return str(self.districts.at[code, "district_name"])

    def issue(self, rule_code: str, cell: str | None = None, /, **params: Any) -> Issue:
        return make_issue(
            rule_code,
            sheet=self.parsed.sheet,
            cell=cell,
            file=self.parsed.file_name,
            period=self.period,
            period_label=period_label(self.period),
            **params,
        )

    def offending(self, mask: pd.Series) -> Iterator[tuple[Any, dict]]:
        """(row index, row as dict) for the few rows a mask selects."""
        mask = mask.to_numpy(dtype=bool, na_value=False)
        if not mask.any():
            return  # the usual case: skip building frames for nothing
        subset = self.rows.loc[mask]
        yield from zip(subset.index, subset.to_dict("records"))


def unit_display(units: pd.DataFrame, code: str) -> str:
    name = str(units.at[code, "unit_name"])
    prefix = UNIT_TYPE_LABELS.get(units.at[code, "unit_type"], "")
    return f"{prefix} {name}".strip()


# --------------------------------------------------------------------------- registry

RuleFn = Callable[[Context], Iterable[Issue]]
RULES: list[tuple[tuple[str, ...], RuleFn]] = []


def rule(*codes: str) -> Callable[[RuleFn], RuleFn]:
    """Register a rule with the catalogue codes it may emit."""

    def register(fn: RuleFn) -> RuleFn:
        RULES.append((codes, fn))
        return fn

    return register


# --------------------------------------------------------------------------- values


@rule("count_not_number", "count_not_integer", "flag_invalid", "date_invalid", "basis_invalid", "unit_type_unknown")
def value_errors(ctx: Context) -> Iterator[Issue]:
    """Cells the value parser could not read (codes set on ``<field>_error``)."""
    catalogue = rules()
    error_cols = [f"{f}_error" for f in FIELDS if f"{f}_error" in ctx.rows.columns]
    if not ctx.rows[error_cols].notna().to_numpy().any():
        return
    for field in FIELDS:
        for i, row in ctx.offending(ctx.filled(f"{field}_error")):
            code = str(row[f"{field}_error"])
            ctx_code = code if code in catalogue else FALLBACK_VALUE_CODE
            yield ctx.issue(
                ctx_code,
                ctx.ref(field, row["excel_row"]),
                value=fmt_value(row.get(f"{field}_raw")),
                unit=ctx.unit_label[i],
                detail=code,
            )


@rule("count_negative")
def count_negative(ctx: Context) -> Iterator[Issue]:
    for field in COUNT_FIELDS:
        values = pd.to_numeric(ctx.col(field), errors="coerce")
        for i, row in ctx.offending((values < 0).fillna(False)):
            yield ctx.issue("count_negative", ctx.ref(field, row["excel_row"]), value=fmt_value(row[field]), unit=ctx.unit_label[i])


@rule("count_missing")
def count_missing(ctx: Context) -> Iterator[Issue]:
    if not ctx.has_column("total_members"):
        return  # reported once as missing_column
    mask = ctx.col("total_members").isna() & ~ctx.filled("total_members_error")
    for i, row in ctx.offending(mask):
        yield ctx.issue("count_missing", ctx.ref("total_members", row["excel_row"]), unit=ctx.unit_label[i])


# --------------------------------------------------------------------------- units


@rule("unit_unknown")
def unit_unknown(ctx: Context) -> Iterator[Issue]:
    """Rows matching no register unit, or a unit of another district than the return's."""
    matched = ctx.col("matched_unit_code")
    mask = matched.isna()
    district = ctx.parsed.district_code
    if district is not None:
        unit_district = matched.map(ctx.units["district_code"])
        mask = mask | (matched.notna() & unit_district.ne(district).fillna(True))
    district_name = ctx.district_name(district)
    for _, row in ctx.offending(mask):
        written = fmt_value(row.get("unit_name_raw")) or fmt_value(row.get("unit_name")) or fmt_value(row.get("unit_code_raw"))
        suggestion = ""
        if ctx.suggest is not None and written:
            names = [n for n in ctx.suggest(written, district) if n][:MAX_SUGGESTIONS]
            if names:
                suggestion = f" Có phải: {', '.join(names)}?"
        yield ctx.issue(
            "unit_unknown",
            ctx.first_ref(("unit_name", "unit_code"), row["excel_row"]),
            unit=written or "(để trống)",
            district=district_name,
            suggestion=suggestion,
        )


@rule("unit_duplicate")
def unit_duplicate(ctx: Context) -> Iterator[Issue]:
    matched = ctx.col("matched_unit_code")
    dup = matched.notna() & matched.duplicated(keep=False)
    if not dup.any():
        return
    for code, group in ctx.rows.loc[dup].groupby("matched_unit_code", sort=False):
        excel_rows = [int(r) for r in group["excel_row"]]
        yield ctx.issue(
            "unit_duplicate",
            ctx.first_ref(("unit_name", "unit_code"), excel_rows[1]),
            unit=unit_display(ctx.units, code) if code in ctx.units.index else code,
            unit_code=code,
            rows=", ".join(str(r) for r in excel_rows),
        )


@rule("unit_missing")
def unit_missing(ctx: Context) -> Iterator[Issue]:
    district = ctx.parsed.district_code
    if district is None:
        return
    expected = ctx.units.index[ctx.units["district_code"] == district]
    present = set(ctx.col("matched_unit_code").dropna())
    for code in expected:
        if code not in present:
            yield ctx.issue("unit_missing", None, unit=unit_display(ctx.units, code), unit_code=code, district=ctx.district_name(district))


@rule("unit_code_missing", "unit_codes_missing")
def unit_code_missing(ctx: Context) -> Iterator[Issue]:
    if not ctx.has_column("unit_code"):
        return  # an optional column: no note per row when the return has none
    matched = ctx.col("matched_unit_code")
    mask = matched.notna() & ~ctx.filled("unit_code_raw") & ~ctx.filled("unit_code")
    if mask.sum() > 1 and mask.sum() == matched.notna().sum():
        # A column left blank throughout is one remark, not one per unit.
        first = ctx.rows.loc[mask, "excel_row"].iloc[0]
        yield ctx.issue("unit_codes_missing", ctx.ref("unit_code", first), count=int(mask.sum()), column=ctx.parsed.columns["unit_code"])
        return
    for i, row in ctx.offending(mask):
        yield ctx.issue("unit_code_missing", ctx.ref("unit_code", row["excel_row"]), unit=ctx.unit_label[i], unit_code=row["matched_unit_code"])


@rule("unit_code_name_mismatch")
def unit_code_name_mismatch(ctx: Context) -> Iterator[Issue]:
    mask = _true(ctx.col("code_conflict"))
    for _, row in ctx.offending(mask):
        code = row["matched_unit_code"]
        code_unit = unit_display(ctx.units, code) if code in ctx.units.index else ""
        yield ctx.issue(
            "unit_code_name_mismatch",
            ctx.first_ref(("unit_code", "unit_name"), row["excel_row"]),
            written_code=fmt_value(row.get("unit_code")) or fmt_value(row.get("unit_code_raw")) or code,
            code_unit=code_unit,
            unit=fmt_value(row.get("unit_name_raw")) or fmt_value(row.get("unit_name")),
        )


@rule("unit_type_mismatch")
def unit_type_mismatch(ctx: Context) -> Iterator[Issue]:
    written = ctx.col("unit_type")
    matched = ctx.col("matched_unit_code")
    expected = matched.map(ctx.units["unit_type"])
    mask = (written.notna() & expected.notna() & written.ne(expected)).fillna(False)
    if "gso_unit_type" in ctx.units.columns:
        # The register may count a GSO town as a commune (for the published
        # denominators); writing GSO's own class is not wrong.
        mask &= written.ne(matched.map(ctx.units["gso_unit_type"])).fillna(True)
    for i, row in ctx.offending(mask):
        yield ctx.issue(
            "unit_type_mismatch",
            ctx.ref("unit_type", row["excel_row"]),
            value=fmt_value(row.get("unit_type_raw")) or UNIT_TYPE_LABELS.get(row["unit_type"], ""),
            unit=ctx.unit_label[i],
            expected=UNIT_TYPE_LABELS.get(expected[i], str(expected[i])).lower(),
        )


# --------------------------------------------------------------------------- district and period


@rule("district_unknown")
def district_unknown(ctx: Context) -> Iterator[Issue]:
    if ctx.parsed.district_code is None:
        yield ctx.issue("district_unknown")


@rule("district_title_mismatch")
def district_title_mismatch(ctx: Context) -> Iterator[Issue]:
    content, title = ctx.parsed.district_code, ctx.parsed.title_district_code
    if content is not None and title is not None and content != title:
        yield ctx.issue("district_title_mismatch", district=ctx.district_name(content), title_district=ctx.district_name(title))


@rule("district_mixed")
def district_mixed(ctx: Context) -> Iterator[Issue]:
    counts = {code: n for code, n in (ctx.parsed.district_counts or {}).items() if n and n > 0}
    if len(counts) >= 2:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        detail = "; ".join(f"{ctx.district_name(code)}: {n} đơn vị" for code, n in ordered)
        yield ctx.issue("district_mixed", detail=detail)


@rule("district_filename_mismatch")
def district_filename_mismatch(ctx: Context) -> Iterator[Issue]:
    content, from_name = ctx.parsed.district_code, ctx.parsed.filename_district_code
    if content is not None and from_name is not None and content != from_name:
        yield ctx.issue("district_filename_mismatch", district=ctx.district_name(content), file_district=ctx.district_name(from_name))


@rule("period_mismatch")
def period_mismatch(ctx: Context) -> Iterator[Issue]:
    as_of = ctx.parsed.as_of
    if as_of is None or pd.isna(as_of):
        return
    stamp = pd.Timestamp(as_of)
    end = ctx.period_end
    if (stamp.year, stamp.month) != (end.year, end.month):
        yield ctx.issue("period_mismatch", as_of=fmt_date(stamp))


# --------------------------------------------------------------------------- the agency cell


def _cell_missing(field: str, code: str) -> RuleFn:
    def check(ctx: Context) -> Iterator[Issue]:
        if not ctx.has_column(field):
            return  # reported once as missing_column
        mask = _true(ctx.col("has_cell")) & ctx.col(field).isna() & ~ctx.filled(f"{field}_error")
        for i, row in ctx.offending(mask):
            yield ctx.issue(code, ctx.ref(field, row["excel_row"]), unit=ctx.unit_label[i])

    check.__name__ = code
    return check


cell_missing_date = rule("cell_missing_date")(_cell_missing("established_on", "cell_missing_date"))
cell_missing_basis = rule("cell_missing_basis")(_cell_missing("basis", "cell_missing_basis"))
cell_missing_members = rule("cell_missing_members")(_cell_missing("cell_members", "cell_missing_members"))


@rule("cell_members_exceed_total")
def cell_members_exceed_total(ctx: Context) -> Iterator[Issue]:
    cell = pd.to_numeric(ctx.col("cell_members"), errors="coerce")
    total = pd.to_numeric(ctx.col("total_members"), errors="coerce")
    # A negative total is already an error of its own; comparing with it only adds noise.
    for i, row in ctx.offending(((cell > total) & (total >= 0)).fillna(False)):
        yield ctx.issue(
            "cell_members_exceed_total",
            ctx.ref("cell_members", row["excel_row"]),
            unit=ctx.unit_label[i],
            cell_members=fmt_value(row["cell_members"]),
            total_members=fmt_value(row["total_members"]),
        )


@rule("cell_data_without_cell")
def cell_data_without_cell(ctx: Context) -> Iterator[Issue]:
    filled = {
        "established_on": ctx.filled("established_on") | ctx.filled("established_on_raw"),
        "basis": ctx.filled("basis") | ctx.filled("basis_raw"),
        # A zero is what a unit without a cell should write.
        "cell_members": pd.to_numeric(ctx.col("cell_members"), errors="coerce").fillna(0).ne(0),
    }
    any_filled = pd.concat(filled, axis=1).any(axis=1)
    for i, row in ctx.offending(_false(ctx.col("has_cell")) & any_filled):
        fields = [f for f, m in filled.items() if m[i]]
        yield ctx.issue(
            "cell_data_without_cell",
            ctx.first_ref(fields, row["excel_row"]),
            unit=ctx.unit_label[i],
            what=", ".join(CELL_DETAIL_LABELS[f] for f in fields),
        )


@rule("cell_not_eligible")
def cell_not_eligible(ctx: Context) -> Iterator[Issue]:
    mask = _true(ctx.col("has_cell")) & _false(ctx.col("eligible"))
    for i, row in ctx.offending(mask):
        yield ctx.issue("cell_not_eligible", ctx.first_ref(("eligible", "has_cell"), row["excel_row"]), unit=ctx.unit_label[i])


def _dates(ctx: Context) -> pd.Series:
    return pd.to_datetime(ctx.col("established_on"), errors="coerce")


@rule("date_in_future")
def date_in_future(ctx: Context) -> Iterator[Issue]:
    end = ctx.period_end
    mask = (_dates(ctx) > pd.Timestamp(end)).fillna(False)
    for i, row in ctx.offending(mask):
        yield ctx.issue(
            "date_in_future",
            ctx.ref("established_on", row["excel_row"]),
            value=fmt_date(row["established_on"]),
            as_of=fmt_date(end),
            unit=ctx.unit_label[i],
        )


@rule("hd28_before_issue")
def hd28_before_issue(ctx: Context) -> Iterator[Issue]:
    mask = ctx.col("basis").eq("HD28").fillna(False) & (_dates(ctx) < pd.Timestamp(HD28_ISSUED)).fillna(False)
    for i, row in ctx.offending(mask):
        yield ctx.issue("hd28_before_issue", ctx.ref("established_on", row["excel_row"]), value=fmt_date(row["established_on"]), unit=ctx.unit_label[i])


# --------------------------------------------------------------------------- totals


def computed_totals(rows: pd.DataFrame) -> dict[str, int]:
    """What the totals row should say: sums of counts, numbers of ticked flags."""
    out: dict[str, int] = {}
    for field in TOTAL_LABELS:
        if field not in rows.columns:
            continue
        if field in COUNT_FIELDS:
            out[field] = int(pd.to_numeric(rows[field], errors="coerce").fillna(0).sum())
        else:
            out[field] = int(_true(rows[field]).sum())
    return out


@rule("totals_mismatch")
def totals_mismatch(ctx: Context) -> Iterator[Issue]:
    if ctx.parsed.totals_row is None:
        return
    computed = computed_totals(ctx.rows)
    for field, label in TOTAL_LABELS.items():
        declared = pd.to_numeric(pd.Series([ctx.parsed.totals.get(field)], dtype=object), errors="coerce").iloc[0]
        if pd.isna(declared) or field not in computed:
            continue
        # Rows the parser could not read already refuse the return; a sum over them would only repeat it.
        if ctx.filled(f"{field}_error").any():
            continue
        if float(declared) != computed[field]:
            yield ctx.issue(
                "totals_mismatch",
                ctx.ref(field, ctx.parsed.totals_row),
                declared=fmt_value(float(declared)),
                computed=computed[field],
                column=label,
            )


@rule("totals_missing")
def totals_missing(ctx: Context) -> Iterator[Issue]:
    if ctx.parsed.totals_row is None and len(ctx.rows):
        yield ctx.issue("totals_missing")


# --------------------------------------------------------------------------- history


def _previous_by_unit(ctx: Context) -> pd.DataFrame | None:
    prev = ctx.previous
    if prev is None or prev.empty or "unit_code" not in prev.columns:
        return None
    return prev.drop_duplicates("unit_code", keep="last").set_index("unit_code")


@rule("cell_disappeared")
def cell_disappeared(ctx: Context) -> Iterator[Issue]:
    prev = _previous_by_unit(ctx)
    if prev is None or "has_cell" not in prev.columns:
        return
    matched = ctx.col("matched_unit_code")
    had = _true(matched.map(prev["has_cell"]))
    mask = had & _false(ctx.col("has_cell")) & ~ctx.filled("note")
    for i, row in ctx.offending(mask):
        yield ctx.issue(
            "cell_disappeared",
            ctx.ref("has_cell", row["excel_row"]),
            unit=ctx.unit_label[i],
            previous_period=_period_of(prev, row["matched_unit_code"]),
        )


@rule("members_jump")
def members_jump(ctx: Context) -> Iterator[Issue]:
    prev = _previous_by_unit(ctx)
    if prev is None or "total_members" not in prev.columns:
        return
    before = pd.to_numeric(ctx.col("matched_unit_code").map(prev["total_members"]), errors="coerce")
    now = pd.to_numeric(ctx.col("total_members"), errors="coerce")
    # A note is where the clerk explains a real change; once explained, stop asking.
    mask = (before > 0) & ((now - before).abs() > MEMBERS_JUMP_RATIO * before) & ~ctx.filled("note")
    for i, row in ctx.offending(mask.fillna(False)):
        yield ctx.issue(
            "members_jump",
            ctx.ref("total_members", row["excel_row"]),
            unit=ctx.unit_label[i],
            previous_period=_period_of(prev, row["matched_unit_code"]),
            previous=fmt_value(before[i]),
            value=fmt_value(row["total_members"]),
        )


def _period_of(prev: pd.DataFrame, code: str) -> str:
    if "period" not in prev.columns:
        return ""
    value = prev.at[code, "period"]
    return period_label(str(value)) if isinstance(value, str) and "-" in value else fmt_value(value)


# --------------------------------------------------------------------------- entry point


def _cell_order(issue: Issue) -> tuple:
    """File-level issues first, then in sheet order (row, then column)."""
    if not issue.cell:
        return (0, 0, 0, "")
    letters = "".join(ch for ch in issue.cell if ch.isalpha())
    digits = "".join(ch for ch in issue.cell if ch.isdigit())
    return (1, int(digits or 0), len(letters), letters)


def build_context(
    parsed: ParsedReturn,
    *,
    units: pd.DataFrame,
    districts: pd.DataFrame,
    period: str,
    previous: pd.DataFrame | None = None,
    suggest: Suggest | None = None,
) -> Context:
    rows = parsed.rows.reset_index(drop=True)
    reg_units = units.assign(unit_code=units["unit_code"].astype(str)).drop_duplicates("unit_code").set_index("unit_code", drop=False)
    reg_districts = districts.assign(district_code=districts["district_code"].astype(str)).set_index("district_code", drop=False)
    matched = rows["matched_unit_code"] if "matched_unit_code" in rows.columns else pd.Series([None] * len(rows), dtype=object)
    label = matched.map(lambda c: unit_display(reg_units, c) if isinstance(c, str) and c in reg_units.index else None)
    written = rows["unit_name_raw"] if "unit_name_raw" in rows.columns else rows.get("unit_name", pd.Series([None] * len(rows)))
    label = label.where(label.notna(), written.map(fmt_value)).astype(object)
    return Context(parsed, rows, reg_units, reg_districts, period, previous, suggest, label)


def check_return(
    parsed: ParsedReturn,
    *,
    units: pd.DataFrame,
    districts: pd.DataFrame,
    period: str,
    previous: pd.DataFrame | None = None,
    suggest: Suggest | None = None,
) -> list[Issue]:
    """All content issues of one parsed return, in sheet order, without repeats.

    ``units``/``districts`` are the register's tables; ``previous`` holds the
    district's accepted rows of the previous period (unit_code, has_cell,
    total_members, period); ``suggest(name, district_code)`` returns register
    names close to an unknown one. The caller adds ``parsed.issues`` (file and
    layout issues) itself.
    """
    if parsed.rows is None or len(parsed.rows) == 0:
        return []  # layout already said why (no_header, no_units)
    ctx = build_context(parsed, units=units, districts=districts, period=period, previous=previous, suggest=suggest)
    seen: set[tuple] = set()
    out: list[Issue] = []
    for _, fn in RULES:
        for issue in fn(ctx):
            # The value parser may already have flagged what a rule re-derives (a negative count).
            key = (issue.code, issue.cell) if issue.cell else (issue.code, issue.message)
            if key not in seen:
                seen.add(key)
                out.append(issue)
    return sorted(out, key=_cell_order)


def has_errors(issues: Iterable[Issue]) -> bool:
    return any(i.severity == "error" for i in issues)
