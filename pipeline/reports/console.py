"""The province summary as the CLI prints it (maintainer-facing, English frame, Vietnamese labels)."""

from __future__ import annotations

import pandas as pd

_TYPE_LABELS = {"xa": "Xã", "phuong": "Phường", "thi_tran": "Thị trấn", "total": "Toàn tỉnh"}


def table(frame: pd.DataFrame) -> str:
    """A plain aligned text table."""
    cols = [str(c) for c in frame.columns]
    cells = [["" if pd.isna(v) else str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) if v.replace(".", "").replace("-", "").isdigit() else v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


FULL_PERIODS = 3  # the newest periods get the whole table; earlier ones a line each


def _older_periods(summary: pd.DataFrame) -> str:
    totals = summary[summary["unit_type"] == "total"].sort_values("period")
    shown = pd.DataFrame(
        {
            "period": totals["period"],
            "districts": totals["districts_reported"].astype(str) + "/" + totals["districts_expected"].astype(str),
            "units_with_cell": totals["units_with_cell"],
            "coverage_pct": totals["coverage_pct"],
            "cell_members": totals["cell_members"],
            "member_share_pct": totals["member_share_pct"],
            "complete": totals["is_complete"].map({True: "yes", False: "NO"}),
        }
    )
    return table(shown)


def render_outcome(outcome) -> str:
    s = outcome.settings
    lines = []
    if not outcome.success:
        lines.append(f"RUN FAILED: {outcome.failure}")
    summary = outcome.summary
    if not summary.empty and summary["period"].nunique() > FULL_PERIODS:
        newest = sorted(summary["period"].unique())[-FULL_PERIODS:]
        older = summary[~summary["period"].isin(newest)]
        lines += ["", f"Province totals, {older['period'].min()} to {older['period'].max()}:", _older_periods(older)]
        summary = summary[summary["period"].isin(newest)]
    for period, frame in summary.groupby("period", sort=True) if not summary.empty else []:
        total = frame[frame["unit_type"] == "total"].iloc[0]
        state = "complete" if total["is_complete"] else "INCOMPLETE"
        lines.append("")
        lines.append(
            f"Period {period}: {total['districts_reported']}/{total['districts_expected']} districts reported ({state})"
        )
        shown = frame.assign(unit_type=frame["unit_type"].map(_TYPE_LABELS).fillna(frame["unit_type"]))[
            ["unit_type", "units", "units_with_cell", "coverage_pct", "cell_members", "total_members", "member_share_pct", "cells_hd28"]
        ]
        lines.append(table(shown))
        files = outcome.files[outcome.files["period"] == period] if not outcome.files.empty else outcome.files
        if not files.empty:
            lines.append("Files: " + ", ".join(f"{r.files} {r.status}" for r in files.itertuples()))
    if outcome.unchanged:
        lines.append("")
        lines.append(
            f"{len(outcome.unchanged)} period(s) unchanged since the last run, not run again "
            "(--force rebuilds them)."
        )
    lines += [
        "",
        f"Warehouse: {s.warehouse}",
        f"Reports:   {s.reports_dir}",
        f"Feedback:  {s.feedback_dir}",
        "Query it:  uv run pipeline sql \"select * from marts.province_summary\"   (or .venv/bin/pipeline sql …)",
        f"Done in {outcome.seconds:.1f} s.",
    ]
    return "\n".join(lines)
