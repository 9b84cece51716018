"""List the files of a reporting period in the raw folder, before anything reads them.

The raw folder is filled by hand from e-mail and USB sticks, so it holds
junk (lock files, thumbnails, macOS metadata), attachments, and possibly
links or special files placed there to make the
pipeline read something else. Nothing here opens a file; it only decides
which paths may be read. Attachments that are not spreadsheets (a PDF cover
letter) are not skipped: the guards refuse them as "not a spreadsheet", which
tells the district to send the Excel return and never touches the figures.

Symlink policy: a link is followed only when its resolved target lies inside
the period folder (so it cannot reach /etc/passwd, nor another period's files
and count them twice); any other link is refused, as are device files, FIFOs
and sockets (opening a FIFO would block the run forever).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.checks.catalogue import Issue, make_issue

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_JUNK_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store", "__macosx", "$recycle.bin"})
_MAX_DEPTH = 8


@dataclass(frozen=True)
class RawFile:
    path: Path  # exact path on disk, to open
    rel_path: str  # relative to the raw dir, posix, NFC, printable (for people and keys)
    file_name: str
    size_bytes: int
    modified_at: datetime  # UTC
    mtime_ns: int = 0  # the same instant, exact (the folder state compares these)


@dataclass(frozen=True)
class Skipped:
    rel_path: str
    # 'ignored_junk' (refuse=False);
    # 'unsafe_path', 'broken_link', 'unreadable', 'too_deep' (refuse=True).
    reason: str
    refuse: bool
    # The entry's own mtime (the link's, not its target's) when it could be read:
    # recording it rather than the time of the run keeps re-runs identical.
    modified_at: datetime | None = None


def is_junk(name: str) -> bool:
    """Files and folders nobody sent on purpose: Office lock/temp files, OS metadata, hidden entries."""
    low = name.lower()
    return (
        # hidden (.DS_Store, ._resource forks, LibreOffice .~lock.*#) and Office owner/lock files
        name.startswith((".", "~$"))
        or (name.startswith("~") and low.endswith(".tmp"))  # Office save-in-progress temp
        or low in _JUNK_NAMES
    )


def list_periods(raw_dir: Path) -> list[str]:
    """Period folders (YYYY-MM, month 01–12) directly under ``raw_dir``, oldest first."""
    raw_dir = Path(raw_dir)
    try:
        entries = list(os.scandir(raw_dir))
    except OSError:
        return []
    root = raw_dir.resolve()
    periods = []
    for entry in entries:
        if not _PERIOD.match(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=True):
                continue
            if entry.is_symlink() and not _inside(Path(entry.path).resolve(), root):
                continue
        except OSError:
            continue
        periods.append(entry.name)
    return sorted(periods)


def scan_period(raw_dir: Path, period: str) -> tuple[list[RawFile], list[Skipped]]:
    """Every candidate return under ``raw_dir/period`` (recursively), and what was skipped and why.

    Both lists are sorted by rel_path. Never raises for odd names or entries.
    """
    raw_dir = Path(raw_dir)
    folder = raw_dir / period
    files: list[RawFile] = []
    skipped: list[Skipped] = []
    if folder.is_symlink() and not _inside(folder.resolve(), raw_dir.resolve()):
        return [], [Skipped(period, "unsafe_path", True)]
    try:
        boundary = folder.resolve(strict=True)
    except OSError:
        return [], []
    _walk(folder, period, boundary, 0, {boundary}, files, skipped)
    files.sort(key=lambda f: f.rel_path)
    skipped.sort(key=lambda s: s.rel_path)
    return files, skipped


def skipped_issue(item: Skipped) -> Issue | None:
    """The catalogue issue for a refused entry (None for ignored ones)."""
    if not item.refuse:
        return None
    name = item.rel_path.rsplit("/", 1)[-1]
    if item.reason == "unsafe_path":
        return make_issue("file_unsafe_path", file=name)
    details = {
        "broken_link": "lối tắt trỏ tới tệp không còn tồn tại",
        "unreadable": "không có quyền đọc hoặc đường dẫn quá dài",
        "too_deep": "nằm trong quá nhiều tầng thư mục",
    }
    return make_issue("file_corrupt", file=name, detail=details.get(item.reason, item.reason))


def _walk(
    folder: Path,
    rel: str,
    boundary: Path,
    depth: int,
    seen: set[Path],
    files: list[RawFile],
    skipped: list[Skipped],
) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        skipped.append(Skipped(rel, "unreadable", True))
        return
    for entry in entries:
        rel_path = f"{rel}/{_display(entry.name)}"
        try:
            _visit(entry, rel_path, boundary, depth, seen, files, skipped)
        except OSError:
            skipped.append(Skipped(rel_path, "unreadable", True))


def _own_mtime(entry) -> datetime | None:
    try:
        return datetime.fromtimestamp(entry.stat(follow_symlinks=False).st_mtime, tz=UTC)
    except OSError:
        return None


def _visit(entry, rel_path, boundary, depth, seen, files, skipped) -> None:
    if is_junk(entry.name):
        skipped.append(Skipped(rel_path, "ignored_junk", False, _own_mtime(entry)))
        return
    path = Path(entry.path)
    if entry.is_symlink():
        target = path.resolve()
        if not _inside(target, boundary):
            skipped.append(Skipped(rel_path, "unsafe_path", True, _own_mtime(entry)))
            return
        if not target.exists():
            skipped.append(Skipped(rel_path, "broken_link", True, _own_mtime(entry)))
            return
    st = entry.stat(follow_symlinks=True)
    if stat.S_ISDIR(st.st_mode):
        real = path.resolve()
        if real in seen:  # a link back up the tree
            return
        if depth + 1 > _MAX_DEPTH:
            skipped.append(Skipped(rel_path, "too_deep", True, _own_mtime(entry)))
            return
        _walk(path, rel_path, boundary, depth + 1, seen | {real}, files, skipped)
        return
    if not stat.S_ISREG(st.st_mode):  # FIFO, device, socket
        skipped.append(Skipped(rel_path, "unsafe_path", True, _own_mtime(entry)))
        return
    files.append(
        RawFile(
            path=path,
            rel_path=rel_path,
            file_name=rel_path.rsplit("/", 1)[-1],
            size_bytes=st.st_size,
            modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
            mtime_ns=st.st_mtime_ns,
        )
    )


def _inside(target: Path, boundary: Path) -> bool:
    return target == boundary or target.is_relative_to(boundary)


def _display(name: str) -> str:
    """A name safe to print and store: undecodable bytes replaced, NFC (macOS writes NFD)."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return unicodedata.normalize("NFC", text)


# --------------------------------------------------------------------------- folder state
# What the sensor and `pipeline run` compare to see whether a period changed.


@dataclass(frozen=True)
class FolderState:
    state: str  # hash of the listing; equal listings give equal states
    newest_mtime: float  # seconds since the epoch, 0 for an empty folder
    files: int


def listing_hash(entries: list) -> str:
    """A short, stable hash of a JSON-able listing."""
    return hashlib.sha256(json.dumps(entries, ensure_ascii=False).encode()).hexdigest()[:16]


EMPTY_STATE = listing_hash([])


def period_state(raw_dir: Path, period: str) -> FolderState:
    """The listing of one period folder as the pipeline will see it, minus junk."""
    files, skipped = scan_period(raw_dir, period)
    # Files as the scan saw them (it stats each one); attachments and refused entries are
    # recorded by the pipeline too, so they count; junk is what nobody sent on purpose.
    entries: list = [[f.rel_path, f.size_bytes, f.mtime_ns] for f in files]
    for s in skipped:
        if s.reason == "ignored_junk":
            continue
        try:
            st = os.stat(Path(raw_dir) / s.rel_path, follow_symlinks=False)
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            # Vanished between listing and stat: the folder is in flux, this state will not repeat.
            size, mtime_ns = -1, time.time_ns()
        entries.append([s.rel_path, size, mtime_ns])
    entries.sort()
    newest = max((mtime_ns for _, _, mtime_ns in entries), default=0) / 1e9
    return FolderState(state=listing_hash(entries), newest_mtime=newest, files=len(entries))


def observe(raw_dir: Path, periods: list[str] | None = None) -> dict[str, FolderState]:
    """State of every period folder under ``raw_dir`` (or of the given periods)."""
    return {p: period_state(raw_dir, p) for p in (list_periods(raw_dir) if periods is None else periods)}
