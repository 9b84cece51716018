"""Content-addressed archive of every file version the pipeline has seen.

The archive is the system of record: the warehouse is rebuilt from it, so a
raw file later overwritten or deleted keeps its data in effect until a newer
accepted return replaces it. Layout, beside the warehouse:

    archive/objects/ab/abcdef….xlsx     the bytes, named by SHA-256
    archive/manifests/<period>.json     every version seen for the period

Writes go to a temporary name and are renamed into place, so a run killed at
any moment leaves either the old or the new manifest, never half of one.
Objects are made durable before the manifest that names them is written
(``record`` flushes the archive's file system first: one ``syncfs`` for all
of a period's objects rather than two fsyncs each), so even a power cut never
leaves a manifest pointing at bytes that are not there; an object a power
cut left short is noticed by its size and written again. Manifest updates are
read-merge-write under a lock, so two runs at once (CLI and a sensor) cannot
drop each other's versions.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class FileVersion:
    period: str
    path: str  # relative to the raw folder, posix
    file_name: str
    sha256: str
    size_bytes: int
    modified_at: str  # ISO 8601, UTC
    first_seen_at: str  # ISO 8601, UTC
    archived_path: str | None  # relative to the archive folder; None for ignored files
    ignored: bool = False
    # Catalogue code when the bytes could not be taken in (unsafe path, too large).
    refusal: str | None = None
    refusal_detail: str = ""

    def as_dict(self) -> dict[str, str | int | bool | None]:
        """The fields by name: ``dataclasses.asdict`` without its deep copy (every field is a plain value)."""
        return dict(vars(self))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's content, or a folder's entries (a rename or a new file in it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: Path) -> bool:
    """Flush every pending write of the file system holding ``path`` (Linux); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            return libc.syncfs(fd) == 0
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        return False


def _atomic_write(path: Path, data: bytes | None = None, source: Path | None = None, durable: bool = True) -> None:
    """Write ``data`` (or a copy of the file ``source``) to ``path`` so that it is there whole or not at all.

    ``durable=False`` leaves flushing to the caller (see ``Archive.record``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            if source is not None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
            else:
                fh.write(data or b"")
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._unsynced: list[Path] = []  # objects written since the last flush

    def _store_object(self, target: Path, size: int, data: bytes | None = None, source: Path | None = None) -> None:
        try:
            if target.stat().st_size == size:
                return  # content-addressed: already there
        except FileNotFoundError:
            pass
        _atomic_write(target, data, source, durable=False)
        self._unsynced.append(target)

    def flush(self) -> None:
        """Make every object (and manifest) written since the last flush durable."""
        if not self._unsynced:
            return
        if not syncfs(self.root):  # no syncfs here: each file and folder on its own
            for target in self._unsynced:
                with open(target, "rb") as fh:
                    os.fsync(fh.fileno())
            for folder in {t.parent for t in self._unsynced}:
                fsync_path(folder)
        self._unsynced = []

    def object_path(self, sha256: str, suffix: str) -> str:
        # Keep a short, safe extension so archived files open in Excel.
        ext = suffix.lower() if suffix.lower() in {".xlsx", ".xlsm", ".xls", ".ods"} else ".bin"
        return str(PurePosixPath("objects") / sha256[:2] / f"{sha256}{ext}")

    def store(self, data: bytes, sha256: str, suffix: str) -> str:
        rel = self.object_path(sha256, suffix)
        self._store_object(self.root / rel, len(data), data=data)
        return rel

    def store_file(self, source: Path, sha256: str, suffix: str) -> str:
        """Like store, streaming from a file already hashed (too large to hold in memory)."""
        rel = self.object_path(sha256, suffix)
        self._store_object(self.root / rel, source.stat().st_size, source=source)
        return rel

    def read(self, archived_path: str) -> bytes:
        return (self.root / archived_path).read_bytes()

    def _manifest_path(self, period: str) -> Path:
        return self.root / "manifests" / f"{period}.json"

    def versions(self, period: str) -> list[FileVersion]:
        path = self._manifest_path(period)
        if not path.exists():
            return []
        return [FileVersion(**v) for v in json.loads(path.read_text(encoding="utf-8"))]

    def periods(self) -> list[str]:
        folder = self.root / "manifests"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []

    def record(self, period: str, seen: list[FileVersion], durable: bool = True) -> list[FileVersion]:
        """Merge newly seen versions into the period's manifest; returns the full list.

        A version is identified by (path, sha256); seeing it again keeps its
        first_seen_at, so re-running is a no-op. ``durable=False`` leaves the
        manifest to the next ``flush`` (``record_many``).
        """
        if durable:
            self.flush()  # the objects first, then the manifest naming them
        with self._locked():
            merged, added = merge_versions(self.versions(period), seen)
            if added:
                # One version per line: readable, and json's C encoder (not used with indent=).
                lines = ",\n".join(json.dumps(v.as_dict(), ensure_ascii=False) for v in merged)
                payload = f"[\n{lines}\n]\n" if merged else "[]\n"
                _atomic_write(self._manifest_path(period), payload.encode("utf-8"), durable=durable)
                if not durable:
                    self._unsynced.append(self._manifest_path(period))
        return merged

    def record_many(self, seen: dict[str, list[FileVersion]]) -> dict[str, list[FileVersion]]:
        """``record`` for many periods with two flushes in all (objects, then manifests), not two per period."""
        self.flush()
        merged = {period: self.record(period, versions, durable=False) for period, versions in seen.items()}
        self.flush()
        return merged

    @contextmanager
    def _locked(self):
        folder = self.root / "manifests"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def merge_versions(known: list[FileVersion], seen: list[FileVersion]) -> tuple[list[FileVersion], bool]:
    """A period's versions after ``seen`` joins the ``known`` ones, and whether any is new.

    A version is identified by (path, sha256); one seen again keeps its first_seen_at.
    """
    merged = {(v.path, v.sha256): v for v in known}
    added = False
    for v in seen:
        if (v.path, v.sha256) not in merged:
            merged[(v.path, v.sha256)] = v
            added = True
    return sorted(merged.values(), key=lambda v: (v.path, v.first_seen_at, v.sha256)), added


def utc_iso(ts: float | datetime) -> str:
    if isinstance(ts, datetime):
        dt = ts.astimezone(timezone.utc) if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    else:
        dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.isoformat(timespec="seconds")
