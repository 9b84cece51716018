"""Which file is in effect for each district and period, and the status of every version.

Rules (returns.md, "Where files are"): per district and period the most
recently modified *accepted* return is in effect; older accepted ones are
superseded; a refused file never displaces an accepted one; the same bytes
under several names are one submission, the extra copies are duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.archive import FileVersion


@dataclass(frozen=True)
class Outcome:
    """What checking one version's content found."""

    district_code: str | None
    errors: int
    warnings: int
    saved_at: str | None = None  # the workbook's own last-saved time (pipeline.ingest.read.saved_time)


@dataclass(frozen=True)
class Decision:
    status: str  # accepted | accepted_with_warnings | refused | superseded | duplicate | ignored
    district_code: str | None
    in_effect: bool


def decide(versions: list[FileVersion], outcomes: dict[str, Outcome]) -> dict[tuple[str, str], Decision]:
    """Status of every (path, sha256) version of one period."""
    decisions: dict[tuple[str, str], Decision] = {}
    primary: dict[str, FileVersion] = {}
    # The earliest-seen copy of some bytes stands for the submission; among copies
    # first seen in one run, the oldest on disk (the others were copied from it).
    for v in sorted(versions, key=lambda v: (v.first_seen_at, v.modified_at, v.path)):
        if v.ignored:
            decisions[(v.path, v.sha256)] = Decision("ignored", None, False)
        elif v.sha256 in primary:
            district = outcomes[v.sha256].district_code if v.sha256 in outcomes else None
            decisions[(v.path, v.sha256)] = Decision("duplicate", district, False)
        else:
            primary[v.sha256] = v

    accepted_by_district: dict[str, list[FileVersion]] = {}
    for sha, v in primary.items():
        outcome = outcomes[sha]
        if outcome.errors or outcome.district_code is None:
            decisions[(v.path, sha)] = Decision("refused", outcome.district_code, False)
        else:
            accepted_by_district.setdefault(outcome.district_code, []).append(v)

    for district, candidates in accepted_by_district.items():
        # Files saved together (attachments saved at once, a zip extracted) share their
        # modification second; the time the workbook itself was last saved then tells
        # the correction from the original. A file that does not say loses such a tie.
        candidates.sort(
            key=lambda v: (v.modified_at, outcomes[v.sha256].saved_at or "", v.first_seen_at, v.path), reverse=True
        )
        winner, *older = candidates
        status = "accepted_with_warnings" if outcomes[winner.sha256].warnings else "accepted"
        decisions[(winner.path, winner.sha256)] = Decision(status, district, True)
        for v in older:
            decisions[(v.path, v.sha256)] = Decision("superseded", district, False)
    return decisions


def district_status(decisions: dict[tuple[str, str], Decision], district_code: str) -> str:
    """accepted / accepted_with_warnings / refused / missing for one district."""
    return district_statuses(decisions, [district_code])[district_code]


def district_statuses(decisions: dict[tuple[str, str], Decision], district_codes: list[str]) -> dict[str, str]:
    """accepted / accepted_with_warnings / refused / missing for each district, in one pass over the decisions."""
    in_effect: dict[str, str] = {}
    refused: set[str] = set()
    for d in decisions.values():
        if d.in_effect:
            in_effect.setdefault(d.district_code, d.status)
        elif d.status == "refused":
            refused.add(d.district_code)
    return {c: in_effect.get(c) or ("refused" if c in refused else "missing") for c in district_codes}
