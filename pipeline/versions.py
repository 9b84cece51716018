"""What results are derived from besides their own inputs: version numbers and code digests.

Standard library only, on purpose: ``pipeline run`` reads these to tell whether
anything changed before it imports Dagster or pandas.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

# Bump when parsing changes meaning or the shape results are cached in, so they are not reused.
# 2: ParsedReturn keeps its rows as column lists (model.UnitColumns) until they are used.
# 3: ParsedReturn.saved_at, the workbook's own last-saved time.
# 4: saved_at of an .ods (local time) given in UTC, as the other formats' are.
PARSER_VERSION = "4"
# Bump when the workbooks' layout changes, so unchanged periods are rewritten once.
OUTPUT_VERSION = "1"

_PACKAGE = Path(__file__).parent
# What a period's build is derived from besides its files: the rules, the load and the marts.
_BUILD_CODE = [
    *sorted((_PACKAGE / "checks").glob("*.py")),
    _PACKAGE / "checks" / "rules.csv",
    _PACKAGE / "submissions.py",
    *sorted((_PACKAGE / "warehouse").rglob("*.py")),
    *sorted((_PACKAGE / "warehouse").rglob("*.sql")),
]

# What a generated workbook looks like besides its data: the code that writes it.
_OUTPUT_CODE = sorted((_PACKAGE / "reports").glob("*.py"))


def file_digest(*paths: Path) -> str:
    """SHA-256 over the files' bytes (a missing file counts as such)."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.read_bytes() if p.exists() else b"-")
    return digest.hexdigest()


@cache
def build_code_version() -> str:
    return file_digest(*_BUILD_CODE)


@cache
def output_code_version() -> str:
    return f"{OUTPUT_VERSION}:{file_digest(*_OUTPUT_CODE)}"
