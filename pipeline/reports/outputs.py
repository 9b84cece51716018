"""Warehouse → the workbooks people read: province report, district feedback, status overview.

Reads the published warehouse (read-only) and writes beside it, under
``reports/<period>/`` and ``feedback/<period>/``. Files are written to a
temporary name and renamed, so a reader never opens half a workbook.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.config import Settings
from pipeline.reports.excel_safe import read_stamp
from pipeline.reports.feedback import write_district_feedback, write_status_overview
from pipeline.reports.pdf import soffice_path, to_pdfs
from pipeline.reports.province_report import write_province_report
from pipeline.versions import OUTPUT_VERSION, PARSER_VERSION, output_code_version


def _query(con, sql: str, params: dict) -> pd.DataFrame:
    return con.execute(sql, params).df()


def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("Đ", "D").replace("đ", "d"))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return re.sub(r"[^A-Za-z0-9]+", "_", folded).strip("_") or "x"


def _replace_into(tmp: Path, final: Path) -> Path:
    os.replace(tmp, final)
    return final


def inputs_stamp(*parts: object, frame: pd.DataFrame) -> str:
    """Digest of everything a workbook is made from: ``parts``, the table ``frame`` and the writing code."""
    digest = hashlib.sha256(output_code_version().encode())
    for part in parts:
        digest.update(repr(part).encode() + b"\x00")
    digest.update(repr(list(frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def is_unchanged(final: Path, stamp: str) -> bool:
    """True when ``final`` was written from exactly these inputs (a re-built period
    often leaves most districts' feedback as it was: not rewritten)."""
    return final.is_file() and read_stamp(final) == stamp


def _stamps(con, periods: list[str], variant: str = "") -> dict[str, str]:
    """What each period's outputs are derived from: its warehouse build, the layout
    version and ``variant`` (the province a report names); periods never built are
    left out. One query for all of them."""
    rows = con.execute(
        "select period, fingerprint from audit.period_builds where list_contains($periods, period)", {"periods": periods}
    ).fetchall()
    return {period: f"{OUTPUT_VERSION}:{variant}:{fingerprint}" for period, fingerprint in rows}


def _stamp(con, period: str, variant: str = "") -> str | None:
    return _stamps(con, [period], variant).get(period)


def is_current(folder: Path, stamp: str | None) -> bool:
    """True when ``folder`` already holds the outputs of the build ``stamp`` names (None: never built)."""
    stamp_file = folder / ".built-from"
    return stamp is not None and stamp_file.is_file() and stamp_file.read_text() == stamp


def mark_current(con, folder: Path, period: str, variant: str = "") -> None:
    stamp = _stamp(con, period, variant)
    if stamp is not None:
        tmp = folder / ".built-from.tmp"
        tmp.write_text(stamp)
        os.replace(tmp, folder / ".built-from")


def periods_needing(
    con, folder: Path, periods: list[str], force: bool, limit: int, run_id: str | None = None, variant: str = ""
) -> tuple[list[str], list[str]]:
    """(periods to write now, stale periods left for later).

    Candidates are the periods this run rebuilt, or every period asked for when
    a run asks for few (a sensor run, ``--period``): that rewrites a report
    someone deleted without re-rendering years of history on every rerun. Of
    the stale candidates the ``limit`` newest are written (0 = all); the rest
    wait for ``pipeline run --all-reports``.
    """
    candidates = set(periods) if force or not limit or len(periods) <= limit else set()
    if run_id is not None:
        rebuilt = con.execute(
            "select period from audit.period_builds where run_id = $run_id", {"run_id": run_id}
        ).fetchall()
        candidates |= {p for (p,) in rebuilt if p in set(periods)}
    stamps = _stamps(con, sorted(candidates), variant) if not force else {}
    stale = sorted(p for p in candidates if force or not is_current(folder / p, stamps.get(p)))
    if limit and len(stale) > limit:
        return stale[-limit:], stale[:-limit]
    return stale, []


@dataclass
class Written:
    reports: list[Path] = field(default_factory=list)  # workbooks and their PDFs
    feedback: list[Path] = field(default_factory=list)  # district workbooks and the status overview written now
    later: list[str] = field(default_factory=list)  # stale periods left for --all-reports


def write_outputs(
    con,
    settings: Settings,
    periods: list[str],
    force: bool = False,
    limit: int = 0,
    run_id: str | None = None,
    feedback: bool = True,
) -> Written:
    """Everything people read for the periods whose build changed: reports (+PDF), feedback, overview.

    LibreOffice renders the PDFs in its own process while this one writes the
    feedback workbooks, so its start-up (seconds) overlaps the other work.
    """
    out = Written()
    todo, out.later = periods_needing(con, settings.reports_dir, periods, force, limit, run_id, settings.province)
    workbooks = [w for w in (write_period_report(con, settings, p, force=force) for p in todo) if w is not None]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf") as background:
        pdfs = background.submit(to_pdfs, workbooks)
        if feedback:
            out.feedback = write_feedback(con, settings, periods, force=force, limit=limit, run_id=run_id)
            overview = write_overview(con, settings, force=force)
            if overview is not None:
                out.feedback.append(overview)
        out.reports = workbooks + list(pdfs.result().values())
    for p in todo:
        mark_current(con, settings.reports_dir / p, p, settings.province)
    return out


def write_period_report(con, settings: Settings, period: str, force: bool = False) -> Path | None:
    """The province report workbook of one period; None when the workbook there, and its PDF,
    were made from the same figures (a period rebuilt for a return sent again with the same
    cells): LibreOffice's rendering is then not paid again."""
    params = {"period": period}
    by_type = _query(con, "select * from marts.province_summary where period = $period", params)
    by_district = _query(con, "select * from marts.district_summary where period = $period order by district_code", params)
    hd28 = _query(con, "select * from marts.hd28_cells where period = $period", params)
    status = _query(
        con,
        "select district_code, district_name, status, source_file from marts.district_summary where period = $period order by district_code",
        params,
    )
    out_dir = settings.reports_dir / period
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"Bao_cao_chi_bo_co_quan_{period}.xlsx"
    pdf = final.with_suffix(".pdf")
    stamp = inputs_stamp(
        "province_report", period, settings.province, *(inputs_stamp(frame=f) for f in (by_type, by_district, hd28)),
        frame=status,
    )
    if not force and is_unchanged(final, stamp) and (pdf.is_file() or soffice_path() is None):
        return None
    # A PDF beside a new workbook is the new one's: an older PDF goes first, so a failed rendering
    # leaves no PDF (made again next run) rather than one of other figures.
    pdf.unlink(missing_ok=True)
    tmp = out_dir / f".tmp-{final.name}"
    write_province_report(
        tmp, period=period, by_type=by_type, by_district=by_district, hd28=hd28, status=status,
        province_name=settings.province, stamp=stamp,
    )  # fmt: skip
    return _replace_into(tmp, final)


def write_feedback(
    con, settings: Settings, periods: list[str], force: bool = False, limit: int = 0, run_id: str | None = None
) -> list[Path]:
    """Feedback workbooks of the periods whose warehouse build changed (the newest ``limit``);
    returns those written now."""
    written = []
    todo, _ = periods_needing(con, settings.feedback_dir, periods, force, limit, run_id)
    for p in todo:
        folder = settings.feedback_dir / p
        written.extend(write_period_feedback(con, settings, p, force=force))
        folder.mkdir(parents=True, exist_ok=True)
        mark_current(con, folder, p)
    return written


def write_period_feedback(con, settings: Settings, period: str, force: bool = False) -> list[Path]:
    """One feedback workbook per submitted file with errors or warnings (refused or in effect).

    Returns the workbooks written; one already made from the same inputs is
    left as it is unless ``force``.
    """
    files = _query(
        con,
        """
        select f.file_name, f.path, f.sha256, f.status, f.archived_path, f.district_code, d.district_name
        from audit.files f left join core.districts d using (district_code)
        where f.period = $period and f.status not in ('ignored', 'duplicate')
          and exists (select 1 from audit.issues i where i.period = f.period and i.sha256 = f.sha256
                      and i.severity in ('error', 'warning'))
        order by f.path
        """,
        {"period": period},
    )
    out_dir = settings.feedback_dir / period
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files.itertuples(index=False):
        issues = _query(
            con,
            """
            select sheet, cell, severity, code, message, action from audit.issues
            where period = $period and sha256 = $sha256 and path = $path
            order by case severity when 'error' then 0 when 'warning' then 1 else 2 end, cell
            """,
            {"period": period, "sha256": f.sha256, "path": f.path},
        )
        district = f.district_name if isinstance(f.district_name, str) else "Chưa xác định đơn vị"
        name = f"Phan_hoi_{ascii_slug(district)}_{ascii_slug(Path(f.file_name).stem)[:60]}_{f.sha256[:8]}.xlsx"
        final = out_dir / name
        source = settings.archive_dir / f.archived_path if isinstance(f.archived_path, str) else None
        source = source if source is not None and source.exists() else None
        # The archive is content-addressed: the sha256 (and the parser that reads it) stand for the marked copy.
        stamp = inputs_stamp(
            "feedback", period, district, f.file_name, f.status, f.sha256, PARSER_VERSION, source is not None, frame=issues
        )
        if not force and is_unchanged(final, stamp):
            continue
        tmp = out_dir / f".tmp-{name}"
        write_district_feedback(
            tmp, period=period, district_name=district, file_name=f.file_name, status=f.status, issues=issues,
            source_path=source, stamp=stamp,
        )  # fmt: skip
        written.append(_replace_into(tmp, final))
    return written


def write_overview(con, settings: Settings, force: bool = False) -> Path | None:
    """The province overview of submission status (every period in the matrix, the newest in
    detail); None when it is already current."""
    status = _query(
        con,
        """
        select s.period, s.district_code, s.district_name, s.status, s.source_file,
               coalesce(sum(case when i.severity = 'error' then 1 end), 0) as errors,
               coalesce(sum(case when i.severity = 'warning' then 1 end), 0) as warnings
        from marts.district_summary s
        left join audit.issues i on i.period = s.period and i.district_code = s.district_code
        group by all order by s.period, s.district_code
        """,
        {},
    )
    settings.feedback_dir.mkdir(parents=True, exist_ok=True)
    final = settings.feedback_dir / "Tinh_hinh_gui_bao_cao.xlsx"
    stamp = inputs_stamp("overview", frame=status)
    if not force and is_unchanged(final, stamp):
        return None
    tmp = settings.feedback_dir / f".tmp-{final.name}"
    write_status_overview(tmp, status=status, stamp=stamp)
    return _replace_into(tmp, final)
