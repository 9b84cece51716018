"""The catalogue of checks: one row per stable code, with severity and Vietnamese wording.

The wording lives in ``rules.csv`` so staff can read and improve it without
touching code; ``make_issue`` is the only way an issue is created.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SEVERITIES = ("error", "warning", "info")
_CATALOGUE = Path(__file__).with_name("rules.csv")


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    stage: str
    message: str
    action: str


@dataclass(frozen=True)
class Issue:
    code: str
    severity: str
    message: str
    action: str
    sheet: str | None = None
    cell: str | None = None
    params: dict = field(default_factory=dict, compare=False, hash=False)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "…"


@cache
def rules() -> dict[str, Rule]:
    with _CATALOGUE.open(encoding="utf-8", newline="") as fh:
        table = {row["code"]: Rule(**row) for row in csv.DictReader(fh)}
    bad = [r.code for r in table.values() if r.severity not in SEVERITIES]
    if bad:
        raise ValueError(f"rules.csv: unknown severity for {bad}")
    return table


def make_issue(code: str, *, sheet: str | None = None, cell: str | None = None, **params) -> Issue:
    """Build an issue from the catalogue; unknown codes are a programming error."""
    rule = rules()[code]
    values = _Blank({k: "" if v is None else v for k, v in params.items()}, sheet=sheet or "", cell=cell or "")
    return Issue(
        code=code,
        severity=rule.severity,
        message=rule.message.format_map(values),
        action=rule.action.format_map(values),
        sheet=sheet,
        cell=cell,
        params=params,
    )
