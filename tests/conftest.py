"""Shared fixtures: settings that point every output at a temporary folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT, Settings

# A `pipeline run` started by a test (they inherit this) runs in its own process and leaves
# no warm process behind; tests/test_warm_start.py turns it on for its own runs.
os.environ["PIPELINE_WARM_START"] = "off"

SAMPLE_RAW = PROJECT_ROOT / "data" / "raw"
REGISTER = PROJECT_ROOT / "data" / "reference" / "units.csv"
ALIASES = PROJECT_ROOT / "data" / "reference" / "aliases.csv"


def make_settings(root: Path, raw_dir: Path | None = None) -> Settings:
    return Settings(
        raw_dir=raw_dir or root / "raw",
        warehouse=root / "out" / "warehouse.duckdb",
        register=REGISTER,
        aliases=ALIASES,
    )


@pytest.fixture
def sample_settings(tmp_path: Path) -> Settings:
    """The bundled sample's raw folder (read only) with outputs under tmp_path."""
    return make_settings(tmp_path, raw_dir=SAMPLE_RAW)


@pytest.fixture
def raw_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled sample's raw folder."""
    target = tmp_path / "raw"
    shutil.copytree(SAMPLE_RAW, target)
    return target


@pytest.fixture(scope="session")
def register():
    """The project's unit register (loaded once)."""
    from pipeline.register import load_register

    return load_register(REGISTER, ALIASES)


@pytest.fixture(scope="session")
def matcher(register):
    from pipeline.ingest.match import UnitMatcher

    return UnitMatcher(register)
