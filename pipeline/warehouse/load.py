"""Load the register and a period's returns into the warehouse (idempotent per period)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import duckdb
import pandas as pd

from pipeline.archive import FileVersion
from pipeline.checks.catalogue import Issue, make_issue
from pipeline.checks.rules import check_returns, merge_in_sheet_order
from pipeline.ingest.match import UnitMatcher
from pipeline.ingest.model import ParsedReturn
from pipeline.register import Register
from pipeline.submissions import Decision, Outcome, decide, district_statuses
from pipeline.warehouse.build import sql

_STAGING_COLUMNS = [
    "period", "sha256", "sheet", "excel_row", "unit_code", "unit_name_written", "unit_type_written",
    "total_members", "eligible", "has_cell", "established_on", "basis", "cell_members", "note",
]  # fmt: skip


@dataclass
class PeriodResult:
    period: str
    decisions: dict[tuple[str, str], Decision]
    issues: dict[str, list[Issue]]  # by sha256
    district_status: dict[str, str]
    counts: dict[str, int] = field(default_factory=dict)
    unit_rows: pd.DataFrame | None = None  # what core.unit_returns gets for the period


def load_register(con: duckdb.DuckDBPyConnection, register: Register) -> None:
    """Replace core.units and core.districts with the register in force."""
    units = register.units[["unit_code", "unit_name", "unit_type", "gso_unit_type", "district_code", "note"]]
    districts = register.districts[
        ["district_code", "district_name", "short_name", "district_kind", "committee_title", "units_expected"]
    ]
    con.execute("delete from core.units")
    con.execute("delete from core.districts")
    con.register("register_units", units)
    con.register("register_districts", districts)
    con.execute("insert into core.units by name select * from register_units")
    con.execute("insert into core.districts by name select * from register_districts")
    con.unregister("register_units")
    con.unregister("register_districts")


_HISTORY_COLUMNS = ["period", "district_code", "unit_code", "has_cell", "total_members"]


def _history_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the history checks read, in one set of dtypes whether they came from DuckDB or a return."""
    out = frame[_HISTORY_COLUMNS].copy()
    for c in ("period", "district_code", "unit_code"):
        if out[c].dtype != object:
            out[c] = out[c].astype(object)
    if out["has_cell"].dtype != "boolean":
        out["has_cell"] = out["has_cell"].astype("boolean")
    if out["total_members"].dtype != "Int64":
        out["total_members"] = pd.array(pd.to_numeric(out["total_members"], errors="coerce"), dtype="Int64")
    return out.reset_index(drop=True)


class History:
    """Per district, its core.unit_returns rows of its latest period so far, walking periods in order.

    ``previous()`` before ``advance(period)`` is what the history checks compare
    ``period`` with: per district, not province-wide, so a district that missed
    the last period is compared with the last return it did have accepted. The
    warehouse's rows are read once; a period rebuilt in this build advances with
    the rows it is about to get, so no period has to be written before the next
    one is checked.
    """

    def __init__(self, stored: pd.DataFrame) -> None:
        stored = _history_rows(stored)
        self._stored = {p: g for p, g in stored.groupby("period", sort=False)}
        self._latest: dict[str, pd.DataFrame] = {}

    @classmethod
    def from_warehouse(cls, con: duckdb.DuckDBPyConnection) -> "History":
        return cls(con.execute(f"select {', '.join(_HISTORY_COLUMNS)} from core.unit_returns").df())

    def previous(self) -> pd.DataFrame:
        if not self._latest:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in _HISTORY_COLUMNS})
        frames = [self._latest[d] for d in sorted(self._latest)]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def advance(self, period: str, rows: pd.DataFrame | None = None) -> None:
        """Move past ``period``: its rows are ``rows`` when rebuilt now, else what the warehouse holds."""
        rows = self._stored.get(period) if rows is None else _history_rows(rows)
        if rows is None or rows.empty:
            return
        for district, group in rows.groupby("district_code", sort=False):
            self._latest[district] = group


def rows_digest(previous: pd.DataFrame) -> str:
    """A digest of ``History.previous()``: the history checks' whole input, for the build fingerprint."""
    ordered = _history_rows(previous).sort_values(["unit_code", "period"], kind="stable")
    # pandas' row hashes are fixed-key and the dtypes fixed above, so equal rows digest equally in any run.
    hashes = pd.util.hash_pandas_object(ordered[["period", "unit_code", "has_cell", "total_members"]], index=False)
    return hashlib.sha256(hashes.to_numpy().tobytes()).hexdigest()


def _checked_shas(versions: list[FileVersion]) -> list[str]:
    return list(dict.fromkeys(v.sha256 for v in versions if not v.ignored))


def check_content(
    period: str, versions: list[FileVersion], parsed: dict[str, ParsedReturn], register: Register, matcher: UnitMatcher
) -> dict[str, list[Issue]]:
    """Each distinct submitted content's file, layout and content issues (all but the history checks).

    Needs nothing from other periods, so periods can be checked in any order or
    at once; ``finish_period`` adds the history checks.
    """
    shas = _checked_shas(versions)
    returns = [parsed[sha] for sha in shas]
    content = check_returns(
        returns, units=register.units, districts=register.districts, period=period, suggest=matcher.suggest, stages="content"
    )
    return {sha: list(p.issues) + found for sha, p, found in zip(shas, returns, content)}


def check_history(
    period: str, versions: list[FileVersion], parsed: dict[str, ParsedReturn], register: Register, previous: pd.DataFrame
) -> dict[str, list[Issue]]:
    """The history checks of each distinct content: against each district's last accepted rows (``History``)."""
    shas = _checked_shas(versions)
    found = check_returns(
        [parsed[sha] for sha in shas], units=register.units, districts=register.districts, period=period,
        previous=previous, stages="history",
    )  # fmt: skip
    return dict(zip(shas, found))


@dataclass
class PreparedContent:
    """What can be worked out for a period without the periods before it (see ``prepare_content``)."""

    period: str
    issues: dict[str, list[Issue]]  # by sha256: file, layout and content issues
    staging: pd.DataFrame


def prepare_content(
    period: str, versions: list[FileVersion], parsed: dict[str, ParsedReturn], register: Register, matcher: UnitMatcher
) -> PreparedContent:
    """The part of a period's preparation that does not depend on other periods."""
    return PreparedContent(
        period, check_content(period, versions, parsed, register, matcher),
        _staging_rows(period, parsed, {v.sha256 for v in versions if not v.ignored}),
    )  # fmt: skip


@dataclass
class PendingRows:
    """Rows of the periods built so far in this build, written to the audit and staging
    tables once at the end (a statement per table, not per table and period)."""

    periods: list[str] = field(default_factory=list)
    tables: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    builds: list[dict] = field(default_factory=list)

    def add(self, period: str, frames: dict[str, pd.DataFrame]) -> None:
        self.periods.append(period)
        for table, frame in frames.items():
            self.tables.setdefault(table, []).append(frame)


def prepare_period(
    period: str,
    versions: list[FileVersion],
    parsed: dict[str, ParsedReturn],
    register: Register,
    matcher: UnitMatcher,
    previous: pd.DataFrame,
    pending: PendingRows,
    content: PreparedContent | None = None,
) -> PeriodResult:
    """Check every version of a period and decide what is in effect; its rows go to ``pending``.

    ``previous`` is ``History.previous()``; ``content`` is ``prepare_content``
    of the period when it was worked out already (in parallel). Nothing is
    written here: ``write_pending`` replaces every prepared period's slices at
    once. ``PeriodResult.unit_rows`` are the rows core.unit_returns will hold
    for the period (for ``History.advance``).
    """
    content = content or prepare_content(period, versions, parsed, register, matcher)
    staging = content.staging
    history = check_history(period, versions, parsed, register, previous)
    issues: dict[str, list[Issue]] = {}
    outcomes: dict[str, Outcome] = {}
    for sha, found in content.issues.items():
        p = parsed[sha]
        own = len(p.issues)  # file and layout issues first, as the parser found them
        issues[sha] = found[:own] + merge_in_sheet_order(found[own:], history.get(sha, []))
        outcomes[sha] = Outcome(
            district_code=p.district_code,
            errors=sum(i.severity == "error" for i in issues[sha]),
            warnings=sum(i.severity == "warning" for i in issues[sha]),
        )
    decisions = decide(versions, outcomes)
    _note_kept_in_effect(versions, decisions, issues)

    # Frames from column lists: a frame from a list of dicts costs a millisecond or two per
    # table and period, more than the rest of this function.
    keyed = [decisions[(v.path, v.sha256)] for v in versions]
    files = pd.DataFrame(
        {
            "period": [period] * len(versions),
            "file_name": [v.file_name for v in versions],
            "path": [v.path for v in versions],
            "sha256": [v.sha256 for v in versions],
            "size_bytes": [v.size_bytes for v in versions],
            "modified_at": pd.to_datetime([v.modified_at for v in versions], utc=True, format="ISO8601"),
            "first_seen_at": pd.to_datetime([v.first_seen_at for v in versions], utc=True, format="ISO8601"),
            "district_code": [d.district_code for d in keyed],
            "status": [d.status for d in keyed],
            "archived_path": [v.archived_path for v in versions],
            "sheet": [parsed[v.sha256].sheet if v.sha256 in parsed else None for v in versions],
            "errors": [outcomes[v.sha256].errors if v.sha256 in outcomes else 0 for v in versions],
            "warnings": [outcomes[v.sha256].warnings if v.sha256 in outcomes else 0 for v in versions],
        }
    )

    # Issues are reported once per submission (not again for duplicate copies).
    issue_columns = ["period", "file_name", "district_code", "sheet", "cell", "severity", "code", "message", "action", "path", "sha256"]
    issue_lists: dict[str, list] = {c: [] for c in issue_columns}
    for v, d in zip(versions, keyed):
        if d.status in ("duplicate", "ignored"):
            continue
        found = issues.get(v.sha256, [])
        n = len(found)
        if not n:
            continue
        for column, value in (("period", period), ("file_name", v.file_name), ("district_code", d.district_code),
                              ("path", v.path), ("sha256", v.sha256)):  # fmt: skip
            issue_lists[column] += [value] * n
        for column in ("sheet", "cell", "severity", "code", "message", "action"):
            issue_lists[column] += [getattr(i, column) for i in found]
    issue_frame = pd.DataFrame(issue_lists, columns=issue_columns)

    in_effect = {d.district_code: (path, sha) for (path, sha), d in decisions.items() if d.in_effect}
    by_path = {(v.path, v.sha256): v for v in versions}
    statuses = district_statuses(decisions, list(register.districts["district_code"]))
    codes = list(statuses)
    district_rows = pd.DataFrame(
        {
            "period": [period] * len(codes),
            "district_code": codes,
            "status": [statuses[c] for c in codes],
            "sha256": [in_effect[c][1] if c in in_effect else None for c in codes],
            "source_file": [by_path[in_effect[c]].file_name if c in in_effect else None for c in codes],
            "source_path": [in_effect[c][0] if c in in_effect else None for c in codes],
        }
    )

    pending.add(
        period,
        {"audit.files": files, "audit.issues": issue_frame, "staging.return_rows": staging, "core.district_returns": district_rows},
    )
    # What load_periods.sql will put in core.unit_returns: the in-effect rows of register units.
    in_effect_shas = {sha for _, sha in in_effect.values()}
    unit_rows = staging[staging["sha256"].isin(in_effect_shas)].drop(columns=["district_code"], errors="ignore")
    unit_rows = unit_rows.assign(district_code=unit_rows["unit_code"].map(register.unit_districts))
    unit_rows = unit_rows[unit_rows["district_code"].notna()]

    counts = {s: sum(d.status == s for d in decisions.values()) for s in {d.status for d in decisions.values()}}
    return PeriodResult(period, decisions, issues, statuses, counts, unit_rows=unit_rows)


def _note_kept_in_effect(
    versions: list[FileVersion], decisions: dict[tuple[str, str], Decision], issues: dict[str, list[Issue]]
) -> None:
    """Tell a district whose new file was refused that its earlier accepted return still counts."""
    by_key = {(v.path, v.sha256): v for v in versions}
    in_effect = {d.district_code: by_key[key].file_name for key, d in decisions.items() if d.in_effect}
    for (path, sha), d in decisions.items():
        if d.status == "refused" and d.district_code in in_effect and sha in issues:
            v = by_key[(path, sha)]
            sheet = next((i.sheet for i in issues[sha] if i.sheet), None)
            issues[sha].append(
                make_issue("superseded_refused", sheet=sheet, file=v.file_name, in_effect=in_effect[d.district_code])
            )


_STAGING_SOURCES = {
    "excel_row": "excel_row",
    "unit_code": "matched_unit_code",
    "unit_name_written": "unit_name",
    "unit_type_written": "unit_type_raw",
    "total_members": "total_members",
    "eligible": "eligible",
    "has_cell": "has_cell",
    "established_on": "established_on",
    "basis": "basis",
    "cell_members": "cell_members",
    "note": "note",
}


def _staging_rows(period: str, parsed: dict[str, ParsedReturn], shas: set[str]) -> pd.DataFrame:
    """Every parsed unit row of the period's readable versions, as one frame.

    Columns are gathered as plain lists and framed once: a frame per return
    costs more than the rest of the load.
    """
    columns: dict[str, list] = {c: [] for c in _STAGING_COLUMNS}
    for sha in sorted(shas):
        p = parsed.get(sha)
        if p is None or p.rows is None or len(p.rows) == 0:
            continue
        n = len(p.rows)
        columns["period"] += [period] * n
        columns["sha256"] += [sha] * n
        columns["sheet"] += [p.sheet] * n
        for target, source in _STAGING_SOURCES.items():
            columns[target] += p.rows[source].tolist()
    frame = pd.DataFrame(columns, columns=_STAGING_COLUMNS)
    # Whole columns at once: a Python loop per cell costs more than the rest of the load.
    frame["unit_type_written"] = frame["unit_type_written"].astype("string").astype(object).where(
        frame["unit_type_written"].notna(), None
    )
    frame["established_on"] = pd.to_datetime(frame["established_on"], errors="coerce")
    for c in ("total_members", "cell_members"):
        frame[c] = pd.array(pd.to_numeric(frame[c], errors="coerce"), dtype="Int64")
    for c in ("eligible", "has_cell"):
        frame[c] = frame[c].astype("boolean")
    return frame


def record_build(pending: PendingRows, period: str, fingerprint: str, files: int, run_id: str) -> None:
    pending.builds.append(
        {"period": period, "fingerprint": fingerprint, "built_at": datetime.now(timezone.utc), "files": files, "run_id": run_id}
    )


def write_pending(con: duckdb.DuckDBPyConnection, pending: PendingRows) -> None:
    """Replace the prepared periods' slices of every table, one statement per table."""
    if not pending.periods:
        return
    params = {"periods": pending.periods}
    frames = {**pending.tables, "audit.period_builds": [pd.DataFrame(pending.builds)]}
    for table, parts in frames.items():  # fixed identifiers only
        con.execute(f"delete from {table} where list_contains($periods, period)", params)
        non_empty = [f for f in parts if len(f)]
        if not non_empty:
            continue
        con.register("incoming", pd.concat(non_empty, ignore_index=True) if len(non_empty) > 1 else non_empty[0])
        try:
            con.execute(f"insert into {table} by name select * from incoming")
        finally:
            con.unregister("incoming")
    con.execute("delete from core.unit_returns where list_contains($periods, period)", params)
    con.execute(sql("load_periods.sql"), params)
