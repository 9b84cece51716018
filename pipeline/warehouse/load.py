"""Load the register and a period's returns into the warehouse (idempotent per period)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import duckdb
import numpy as np
import pandas as pd

from pipeline.archive import FileVersion
from pipeline.checks.catalogue import Issue, make_issue
from pipeline.checks.rules import HISTORY_ROW_COLUMNS, check_stacked, merge_in_sheet_order
from pipeline.ingest.match import UnitMatcher
from pipeline.ingest.model import ParsedReturn
from pipeline.ingest.parse import unit_frame
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
    # Built column by column into a new frame: selecting, copying and re-typing
    # the frame costs more than its rows for a period of a few hundred units.
    has_cell, members = frame["has_cell"], frame["total_members"]
    return pd.DataFrame(
        {
            **{c: frame[c].to_numpy(dtype=object, copy=True) for c in ("period", "district_code", "unit_code")},
            "has_cell": has_cell.array.copy() if has_cell.dtype == "boolean" else has_cell.astype("boolean").array,
            "total_members": members.array.copy()
            if members.dtype == "Int64"
            else pd.array(pd.to_numeric(members, errors="coerce"), dtype="Int64"),
        }
    )


Snapshot = dict[str, str]  # district -> the period whose rows it is compared with


class PriorRows:
    """What each period's history checks compare with, walking periods in order.

    Per district, its core.unit_returns rows of its latest period so far: per
    district, not province-wide, so a district that missed the last period is
    compared with the last return it did have accepted. The walk only names
    periods (``snapshot()`` before ``advance(period)``); the rows themselves
    are gathered once for the whole build (``rows_for``) and digested for the
    build fingerprints in batches (``digests``), so a period costs no pandas
    work of its own. A period rebuilt now advances with the rows it is about
    to get, so no period has to be written before the next one is checked.
    """

    def __init__(self, stored: pd.DataFrame) -> None:
        stored = _history_rows(stored)
        self._rows: dict[str, pd.DataFrame] = {p: g for p, g in stored.groupby("period", sort=False)}
        self._districts: dict[str, list[str]] = {p: list(g["district_code"].unique()) for p, g in self._rows.items()}
        self._latest: Snapshot = {}
        self._digests: dict[tuple[str, str], bytes] = {}  # (period, district) -> digest of those rows
        self._digested: set[str] = set()  # periods whose groups are in _digests

    @classmethod
    def from_warehouse(cls, con: duckdb.DuckDBPyConnection) -> "PriorRows":
        return cls(con.execute(f"select {', '.join(_HISTORY_COLUMNS)} from core.unit_returns").df())

    def snapshot(self) -> Snapshot:
        """Per district, the period of the rows the next period is compared with."""
        return dict(self._latest)

    def advance(self, period: str, rows: pd.DataFrame | None = None) -> None:
        """Move past ``period``: its rows are ``rows`` (``history_rows`` columns and dtypes) when
        rebuilt now, else what the warehouse holds."""
        if rows is not None:
            self._rows[period] = rows
            self._districts[period] = list(rows["district_code"].unique())
            self._digested.discard(period)
        for district in self._districts.get(period, []):
            self._latest[district] = period

    def digests(self, snapshots: list[Snapshot]) -> list[str]:
        """A digest of the rows each snapshot names: the history checks' whole input, for the build fingerprint."""
        if any(p not in self._digested for snap in snapshots for p in snap.values()):
            # Every period not digested yet, in one pass: walking a warehouse asks for one more each period.
            self._digest_periods(sorted(self._rows.keys() - self._digested))
        out = []
        for snap in snapshots:
            digest = hashlib.sha256()
            for district in sorted(snap):
                digest.update(f"{district}\0{snap[district]}\0".encode())
                digest.update(self._digests[(snap[district], district)])
            out.append(digest.hexdigest())
        return out

    def _digest_periods(self, periods: list[str]) -> None:
        """Digest every (period, district) group of rows of ``periods`` in one pass."""
        self._digested.update(periods)
        self._digests = {key: d for key, d in self._digests.items() if key[0] not in set(periods)}
        frames = [self._rows[p] for p in periods if len(self._rows[p])]
        if not frames:
            return
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
        # pandas' row hashes are fixed-key and the dtypes fixed by _history_rows, so equal rows
        # digest equally in any run; sorting by unit makes a group's digest independent of row order.
        hashes = pd.util.hash_pandas_object(rows[["period", "unit_code", "has_cell", "total_members"]], index=False).to_numpy()
        keys = rows[["period", "district_code", "unit_code"]].astype(str).to_numpy()
        order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))
        hashes, keys = hashes[order], keys[order]
        group = keys[:, 0] + "\0" + keys[:, 1]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], len(group)]
        for a, b in zip(starts, ends):
            self._digests[(keys[a, 0], keys[a, 1])] = hashlib.sha256(hashes[a:b].tobytes()).digest()

    def rows_for(self, snapshots: dict[str, Snapshot]) -> pd.DataFrame:
        """The rows each period (key) is compared with, tagged ``for_period``: one frame for all of them."""
        pairs = [(k, d, p) for k, snap in snapshots.items() for d, p in snap.items()]
        columns = ["for_period", *_HISTORY_COLUMNS]
        sources = sorted({p for _, _, p in pairs})
        frames = [self._rows[p] for p in sources if p in self._rows and len(self._rows[p])]
        if not pairs or not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        rows = pd.concat(frames, ignore_index=True)
        rows["_row"] = np.arange(len(rows))
        wanted = pd.DataFrame(pairs, columns=["for_period", "district_code", "period"], dtype=object)
        joined = wanted.merge(rows, on=["period", "district_code"], how="inner")
        # Within a district's rows their own order is kept: the last row of a unit wins a comparison.
        joined = joined.sort_values(["for_period", "district_code", "_row"], kind="stable")
        return joined[columns].reset_index(drop=True)


def _checked_shas(versions: list[FileVersion]) -> list[str]:
    return list(dict.fromkeys(v.sha256 for v in versions if not v.ignored))


@dataclass
class PreparedContent:
    """What can be worked out for a period without the periods before it (see ``prepare_content``).

    Everything later steps need of the parsed returns is here, so a period
    prepared in a worker process never has its parse results loaded in the
    pipeline process.
    """

    period: str
    issues: dict[str, list[Issue]]  # by sha256: file, layout and content issues
    own_issues: dict[str, int]  # by sha256: how many of ``issues`` (the first) the parser found
    returns: dict[str, ParsedReturn]  # by sha256: the parse result without its rows or issues
    staging: pd.DataFrame
    history_shas: list[str]  # the returns with unit rows, in the order ``history_input`` stacks them
    history_input: pd.DataFrame  # their rows (rules.HISTORY_ROW_COLUMNS), ``_file`` = position in history_shas
    unit_rows: pd.DataFrame  # what core.unit_returns gets for the period (``history_rows`` columns)


def prepare_content(
    period: str, versions: list[FileVersion], parsed: dict[str, ParsedReturn], register: Register, matcher: UnitMatcher
) -> PreparedContent:
    """The part of a period's preparation that does not depend on other periods (``prepare_contents`` of one)."""
    return prepare_contents([(period, versions, parsed)], register, matcher)[0]


def prepare_contents(
    items: list[tuple[str, list[FileVersion], dict[str, ParsedReturn]]], register: Register, matcher: UnitMatcher
) -> list[PreparedContent]:
    """``prepare_content`` of several periods, each exactly as if prepared alone.

    The periods' unit rows are stacked once, for the file, layout and content
    checks (each return checked in its own period), the staging rows and the
    history checks' input: pandas costs about as much per call on a few
    hundred rows as on a thousand, so four periods at once cost about what
    two did one by one. Which return is in effect depends only on errors,
    and the history checks only warn, so each period's core.unit_returns
    rows are known here already. ``parsed`` of a period gives each of its
    returns under the file name it is checked under.
    """
    plans = []  # per period: (period, versions, parsed, its shas, those with rows, first return, first row)
    returns: list[ParsedReturn] = []
    return_periods: list[str] = []
    return_shas: list[str] = []
    counts: list[int] = []
    rows = 0
    for period, versions, parsed in items:
        shas = _checked_shas(versions)
        # Staging rows come in content-hash order; the checks of a return do not depend on the order.
        with_rows = sorted(sha for sha in shas if parsed[sha].row_count())
        plans.append((period, versions, parsed, shas, with_rows, len(returns), rows))
        for sha in with_rows:
            returns.append(parsed[sha])
            return_periods.append(period)
            return_shas.append(sha)
            counts.append(parsed[sha].row_count())
            rows += counts[-1]
    stacked = _stack_rows(returns, mixed_ok=len(items) == 1)
    if stacked is None:
        # The parser gives every return the same columns; should two differ, stacking
        # them would retype a period's columns: then each period on its own.
        return [prepare_contents([item], register, matcher)[0] for item in items]
    stacked["_file"] = np.repeat(np.arange(len(counts)), counts)
    single = len(items) == 1
    found = check_stacked(
        returns, stacked, units=register.units, districts=register.districts,
        period=items[0][0] if single else None, periods=None if single else return_periods,
        suggest=matcher.suggest, stages="content",
    )  # fmt: skip
    staging = _staging_rows(return_periods, stacked, return_shas, [r.sheet for r in returns])
    history_input_all = stacked[[c for c in (*HISTORY_ROW_COLUMNS, "_file") if c in stacked.columns]]
    staging_shas = staging["sha256"].to_numpy(dtype=object)
    in_effect_rows = np.zeros(len(staging), dtype=bool)
    periods_done = []
    for n, (period, versions, parsed, shas, with_rows, first, row) in enumerate(plans):
        end = plans[n + 1][6] if n + 1 < len(plans) else len(stacked)
        by_sha = dict(zip(with_rows, found[first : first + len(with_rows)]))
        issues = {sha: list(parsed[sha].issues) + by_sha.get(sha, []) for sha in shas}
        decisions = decide(versions, _outcomes(issues, parsed))
        in_effect = {sha for (_, sha), d in decisions.items() if d.in_effect}
        in_effect_rows[row:end] = np.fromiter((sha in in_effect for sha in staging_shas[row:end]), dtype=bool, count=end - row)
        periods_done.append((period, parsed, shas, with_rows, first, row, end, issues))
    unit_rows, kept = _unit_rows(staging, in_effect_rows, register)
    kept_before = np.concatenate([[0], np.cumsum(kept)])
    out = []
    for period, parsed, shas, with_rows, first, row, end, issues in periods_done:
        if not with_rows:
            own_staging = _no_staging_rows()
            own_unit_rows = _unit_rows(own_staging, np.zeros(0, dtype=bool), register)[0]
            history_input = pd.DataFrame({"_file": pd.Series(dtype="int64")})
        elif single:
            own_staging, own_unit_rows, history_input = staging, unit_rows, history_input_all
        else:
            own_staging = staging.iloc[row:end].reset_index(drop=True)
            own_unit_rows = unit_rows.iloc[kept_before[row] : kept_before[end]].reset_index(drop=True)
            history_input = history_input_all.iloc[row:end].reset_index(drop=True)
            history_input["_file"] -= first
        out.append(
            PreparedContent(
                period=period,
                issues=issues,
                own_issues={sha: len(parsed[sha].issues) for sha in shas},
                returns={sha: replace(parsed[sha], rows=None, issues=[]) for sha in shas},
                staging=own_staging,
                history_shas=with_rows,
                history_input=history_input,
                unit_rows=own_unit_rows,
            )
        )
    return out


def _stack_rows(returns: list[ParsedReturn], mixed_ok: bool) -> pd.DataFrame | None:
    """The returns' unit rows one under the other; None when their columns differ, unless
    ``mixed_ok`` (then pandas lines up the columns of all).

    Rows still held as the parser's column lists are stacked as lists and made
    into one DataFrame (a frame per return is never made); otherwise the
    returns' frames are concatenated.
    """
    if not returns:
        return pd.DataFrame()
    lists = [r.unit_columns() for r in returns]
    if all(c is not None for c in lists):
        names = tuple(lists[0])
        if all(tuple(c) == names for c in lists[1:]):
            return unit_frame({name: [v for c in lists for v in c[name]] for name in names})
    frames = [r.rows for r in returns]
    if not mixed_ok and not _one_schema(frames):
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def _one_schema(frames: list[pd.DataFrame]) -> bool:
    """Whether the frames have the same columns with the same dtypes."""
    if not frames:
        return True
    first, schema = frames[0].columns, None
    for frame in frames[1:]:
        # The parser's frames share one column Index (parse._column_index), and their
        # dtypes follow from the column names: asking each frame for its dtypes (a
        # Series) costs more than the check is worth. Frames from elsewhere are compared.
        if frame.columns is first:
            continue
        schema = schema or (tuple(first), tuple(frames[0].dtypes))
        if (tuple(frame.columns), tuple(frame.dtypes)) != schema:
            return False
    return True


def _outcomes(issues: dict[str, list[Issue]], returns: dict[str, ParsedReturn]) -> dict[str, Outcome]:
    return {
        sha: Outcome(
            district_code=returns[sha].district_code,
            errors=sum(i.severity == "error" for i in found),
            warnings=sum(i.severity == "warning" for i in found),
            saved_at=returns[sha].saved_at,
        )
        for sha, found in issues.items()
    }


def _unit_rows(staging: pd.DataFrame, in_effect: np.ndarray, register: Register) -> tuple[pd.DataFrame, np.ndarray]:
    """What load_periods.sql will put in core.unit_returns: the rows of returns in effect
    (``in_effect``, per staging row) that are register units; and which rows those are."""
    # Rows picked with one mask: each pandas filter or copy costs more than a period's rows.
    districts = staging["unit_code"].map(register.unit_districts).to_numpy(dtype=object)
    keep = in_effect & pd.notna(districts)
    return _history_rows(staging[keep].assign(district_code=districts[keep])), keep


def check_history(
    contents: list[PreparedContent], snapshots: dict[str, Snapshot], prior: PriorRows, register: Register
) -> dict[tuple[str, str], list[Issue]]:
    """The history checks of every period prepared in a build, in one pass: (period, sha256) -> issues.

    Each return is compared with its district's rows named by its period's snapshot.
    """
    returns: list[ParsedReturn] = []
    periods: list[str] = []
    keys: list[tuple[str, str]] = []
    frames = []
    for c in contents:
        if not c.history_shas:
            continue
        frames.append(c.history_input.assign(_file=c.history_input["_file"].to_numpy() + len(returns)))
        returns += [c.returns[sha] for sha in c.history_shas]
        periods += [c.period] * len(c.history_shas)
        keys += [(c.period, sha) for sha in c.history_shas]
    if not returns:
        return {}
    found = check_stacked(
        returns, pd.concat(frames, ignore_index=True), periods=periods, units=register.units,
        districts=register.districts, previous=prior.rows_for({c.period: snapshots[c.period] for c in contents}),
        stages="history",
    )  # fmt: skip
    return dict(zip(keys, found))


_FILE_COLUMNS = [
    "period", "file_name", "path", "sha256", "size_bytes", "modified_at", "first_seen_at", "district_code", "status",
    "archived_path", "sheet", "errors", "warnings",
]  # fmt: skip
_ISSUE_COLUMNS = ["period", "file_name", "district_code", "sheet", "cell", "severity", "code", "message", "action", "path", "sha256"]
_DISTRICT_COLUMNS = ["period", "district_code", "status", "sha256", "source_file", "source_path"]


@dataclass
class PendingRows:
    """Rows of the periods built so far in this build, gathered as column lists and written to
    the audit and staging tables once at the end (a frame and a statement per table, not per
    table and period)."""

    periods: list[str] = field(default_factory=list)
    files: dict[str, list] = field(default_factory=lambda: {c: [] for c in _FILE_COLUMNS})
    issues: dict[str, list] = field(default_factory=lambda: {c: [] for c in _ISSUE_COLUMNS})
    districts: dict[str, list] = field(default_factory=lambda: {c: [] for c in _DISTRICT_COLUMNS})
    staging: list[pd.DataFrame] = field(default_factory=list)
    builds: list[dict] = field(default_factory=list)

    def frames(self) -> dict[str, pd.DataFrame]:
        files = pd.DataFrame(self.files, columns=_FILE_COLUMNS)
        for c in ("modified_at", "first_seen_at"):
            files[c] = pd.to_datetime(files[c], utc=True, format="ISO8601")
        non_empty = [f for f in self.staging if len(f)]
        return {
            "audit.files": files,
            "audit.issues": pd.DataFrame(self.issues, columns=_ISSUE_COLUMNS),
            "staging.return_rows": pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame(columns=_STAGING_COLUMNS),
            "core.district_returns": pd.DataFrame(self.districts, columns=_DISTRICT_COLUMNS),
            "audit.period_builds": pd.DataFrame(self.builds),
        }


def finish_period(
    content: PreparedContent,
    versions: list[FileVersion],
    history: dict[str, list[Issue]],
    register: Register,
    pending: PendingRows,
) -> PeriodResult:
    """Add the history issues to a prepared period, decide what is in effect; its rows go to ``pending``.

    ``history``: by sha256, the period's part of ``check_history``. Nothing is
    written here: ``write_pending`` replaces every finished period's slices at once.
    """
    period = content.period
    issues: dict[str, list[Issue]] = {}
    for sha, found in content.issues.items():
        own = content.own_issues[sha]  # file and layout issues first, as the parser found them
        issues[sha] = found[:own] + merge_in_sheet_order(found[own:], history.get(sha, []))
    outcomes = _outcomes(issues, content.returns)
    decisions = decide(versions, outcomes)
    _note_kept_in_effect(versions, decisions, issues)

    keyed = [decisions[(v.path, v.sha256)] for v in versions]
    files = pending.files
    files["period"] += [period] * len(versions)
    for column, values in (
        ("file_name", [v.file_name for v in versions]),
        ("path", [v.path for v in versions]),
        ("sha256", [v.sha256 for v in versions]),
        ("size_bytes", [v.size_bytes for v in versions]),
        ("modified_at", [v.modified_at for v in versions]),
        ("first_seen_at", [v.first_seen_at for v in versions]),
        ("district_code", [d.district_code for d in keyed]),
        ("status", [d.status for d in keyed]),
        ("archived_path", [v.archived_path for v in versions]),
        ("sheet", [content.returns[v.sha256].sheet if v.sha256 in content.returns else None for v in versions]),
        ("errors", [outcomes[v.sha256].errors if v.sha256 in outcomes else 0 for v in versions]),
        ("warnings", [outcomes[v.sha256].warnings if v.sha256 in outcomes else 0 for v in versions]),
    ):
        files[column] += values

    # Issues are reported once per submission (not again for duplicate copies).
    issue_lists = pending.issues
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

    in_effect = {d.district_code: (path, sha) for (path, sha), d in decisions.items() if d.in_effect}
    by_path = {(v.path, v.sha256): v for v in versions}
    statuses = district_statuses(decisions, list(register.districts["district_code"]))
    codes = list(statuses)
    rows = pending.districts
    rows["period"] += [period] * len(codes)
    rows["district_code"] += codes
    rows["status"] += [statuses[c] for c in codes]
    rows["sha256"] += [in_effect[c][1] if c in in_effect else None for c in codes]
    rows["source_file"] += [by_path[in_effect[c]].file_name if c in in_effect else None for c in codes]
    rows["source_path"] += [in_effect[c][0] if c in in_effect else None for c in codes]

    pending.periods.append(period)
    pending.staging.append(content.staging)
    counts = {s: sum(d.status == s for d in decisions.values()) for s in {d.status for d in decisions.values()}}
    return PeriodResult(period, decisions, issues, statuses, counts)


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


_STAGING_DTYPES = {"total_members": "Int64", "cell_members": "Int64", "eligible": "boolean", "has_cell": "boolean"}


def _no_staging_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in _STAGING_COLUMNS})


def _staging_rows(periods: list[str], stacked: pd.DataFrame, shas: list[str], sheets: list[str | None]) -> pd.DataFrame:
    """Every parsed unit row of the readable versions, as one frame (``stacked``: their rows
    stacked, ``_file`` = position in ``shas``, ``periods`` and ``sheets``, one per return)."""
    if not len(stacked):
        return _no_staging_rows()
    file = stacked["_file"].to_numpy()
    columns = {
        "period": np.asarray(periods, dtype=object)[file],
        "sha256": np.asarray(shas, dtype=object)[file],
        "sheet": np.asarray(sheets, dtype=object)[file],
    }
    for target, source in _STAGING_SOURCES.items():
        column = stacked[source]
        dtype = _STAGING_DTYPES.get(target)
        # The parser's typed columns are taken as they are; conversions are per
        # call, not per cell, but cost more than the rest on a small period.
        columns[target] = column.array if dtype is not None and column.dtype == dtype else column.to_numpy(dtype=object)
    frame = pd.DataFrame(columns, columns=_STAGING_COLUMNS)
    # Whole columns at once: a Python loop per cell costs more than the rest of the load.
    frame["unit_type_written"] = frame["unit_type_written"].astype("string").astype(object).where(
        frame["unit_type_written"].notna(), None
    )
    frame["established_on"] = pd.to_datetime(frame["established_on"], errors="coerce")
    for c, dtype in _STAGING_DTYPES.items():  # columns that did not come typed from the parser
        if frame[c].dtype != dtype:
            frame[c] = (
                pd.array(pd.to_numeric(frame[c], errors="coerce"), dtype=dtype) if dtype == "Int64" else frame[c].astype(dtype)
            )
    return frame


def record_build(pending: PendingRows, period: str, fingerprint: str, files: int, run_id: str) -> None:
    pending.builds.append(
        {"period": period, "fingerprint": fingerprint, "built_at": datetime.now(timezone.utc), "files": files, "run_id": run_id}
    )


def write_pending(con: duckdb.DuckDBPyConnection, pending: PendingRows) -> None:
    """Replace the finished periods' slices of every table, one statement per table."""
    if not pending.periods:
        return
    params = {"periods": pending.periods}
    for table, frame in pending.frames().items():  # fixed identifiers only
        con.execute(f"delete from {table} where list_contains($periods, period)", params)
        if not len(frame):
            continue
        con.register("incoming", frame)
        try:
            con.execute(f"insert into {table} by name select * from incoming")
        finally:
            con.unregister("incoming")
    con.execute("delete from core.unit_returns where list_contains($periods, period)", params)
    con.execute(sql("load_periods.sql"), params)
