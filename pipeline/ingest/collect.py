"""Raw folder → archive: take in every file version of a period before anything else."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from pipeline.archive import Archive, FileVersion, sha256_of, utc_iso
from pipeline.ingest.discover import scan_period, skipped_issue
from pipeline.ingest.guards import Limits
from pipeline.runner import crash_point


@dataclass(frozen=True)
class Collected:
    versions: list[FileVersion]  # every version ever seen for the period (manifest)
    new_versions: int
    files_in_folder: int


def _now() -> str:
    return utc_iso(datetime.now(timezone.utc))


def _take_in_large(path: Path, archive: Archive, suffix: str) -> tuple[str, str]:
    """Hash and archive a file too large to parse, without holding it in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    # The bytes archived may differ from the bytes hashed if the file changes
    # meanwhile; it is refused for its size either way and never parsed.
    return sha, archive.store_file(path, sha, suffix)


def collect_period(raw_dir: Path, period: str, archive: Archive, limits: Limits) -> Collected:
    """Archive every file of raw/<period> and merge it into the period's manifest."""
    return collect_periods(raw_dir, [period], archive, limits)[period]


def collect_periods(raw_dir: Path, periods: list[str], archive: Archive, limits: Limits) -> dict[str, Collected]:
    """Archive every file of each raw/<period>, then merge them into the manifests.

    All objects are stored first and made durable together, then all manifests
    written and made durable together: two flushes of the file system in all,
    however many periods (a flush costs more than storing a return).
    """
    return record_taken(archive, {period: take_in_period(raw_dir, period, archive, limits) for period in periods})


def record_taken(archive: Archive, taken: dict[str, tuple[list[FileVersion], int]]) -> dict[str, Collected]:
    """Make the stored objects durable, then merge what each period's folder held into its manifest.

    ``taken``: period -> ``take_in_period``'s (versions seen, files in the folder).
    """
    crash_point("archive_stored")  # test-only: objects stored, manifests not yet written
    before = {period: len(archive.versions(period)) for period in taken}
    recorded = archive.record_many({period: seen for period, (seen, _) in taken.items()})
    return {
        period: Collected(versions=recorded[period], new_versions=len(recorded[period]) - before[period], files_in_folder=files)
        for period, (_, files) in taken.items()
    }


def take_in_period(raw_dir: Path, period: str, archive: Archive, limits: Limits) -> tuple[list[FileVersion], int]:
    """Store the bytes of every file of raw/<period> in the archive: (versions seen, files in the folder)."""
    files, skipped = scan_period(raw_dir, period)
    now = _now()
    seen: list[FileVersion] = []
    for f in files:
        suffix = PurePosixPath(f.file_name).suffix
        refusal, detail = None, ""
        if f.size_bytes > limits.max_file_bytes:
            sha, rel = _take_in_large(f.path, archive, suffix)
            refusal = "file_too_large"
            size = f.size_bytes
            detail = f"{size / 1e6:.1f} MB"
        else:
            try:
                # Read once: the bytes hashed are the bytes archived and parsed,
                # even if the file changes on disk meanwhile.
                data = f.path.read_bytes()
            except OSError:
                continue  # vanished or unreadable right now; the next run sees it again
            sha = sha256_of(data)
            rel = archive.store(data, sha, suffix)
            size = len(data)
        seen.append(
            FileVersion(
                period=period,
                path=f.rel_path,
                file_name=f.file_name,
                sha256=sha,
                size_bytes=size,
                modified_at=utc_iso(f.modified_at),
                first_seen_at=now,
                archived_path=rel,
                refusal=refusal,
                refusal_detail=detail,
            )
        )
    for s in skipped:
        name = PurePosixPath(s.rel_path).name
        issue = skipped_issue(s)
        seen.append(
            FileVersion(
                period=period,
                path=s.rel_path,
                file_name=name,
                # No bytes are read from junk or unsafe links; the path identifies them.
                sha256=sha256_of(f"{s.reason}:{s.rel_path}".encode()),
                size_bytes=0,
                modified_at=utc_iso(s.modified_at) if s.modified_at else now,
                first_seen_at=now,
                archived_path=None,
                ignored=not s.refuse,
                refusal=issue.code if issue else None,
                refusal_detail=str(issue.params.get("detail", "")) if issue else "",
            )
        )
    return seen, len(files)
