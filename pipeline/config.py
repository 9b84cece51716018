"""Where the pipeline reads and writes, resolved from the environment.

Every path is absolute and independent of the current directory. Everything the
pipeline writes (archive, parse cache, reports, feedback) lives beside the
warehouse file, so redirecting ``PIPELINE_WAREHOUSE`` moves all of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The province whose Board publishes the reports (their title block, place and author);
# another province's deployment sets PIPELINE_PROVINCE beside its own register.
DEFAULT_PROVINCE = "Gia Lai"


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    path = Path(value).expanduser() if value else default
    if not path.is_absolute():
        # Relative values are taken from the project root, never the cwd, so
        # the CLI, the UI's code server and tests agree on one location.
        path = PROJECT_ROOT / path
    return path


@dataclass(frozen=True)
class Settings:
    raw_dir: Path
    warehouse: Path
    register: Path
    aliases: Path
    province: str = DEFAULT_PROVINCE

    @property
    def output_dir(self) -> Path:
        return self.warehouse.parent

    @property
    def archive_dir(self) -> Path:
        return self.output_dir / "archive"

    @property
    def cache_dir(self) -> Path:
        return self.output_dir / "cache"

    @property
    def reports_dir(self) -> Path:
        return self.output_dir / "reports"

    @property
    def feedback_dir(self) -> Path:
        return self.output_dir / "feedback"

    @property
    def work_dir(self) -> Path:
        """Private build area; same filesystem as the warehouse so publishing is an atomic rename."""
        return self.output_dir / ".build"


def load_settings() -> Settings:
    register = _path_from_env("PIPELINE_REGISTER", PROJECT_ROOT / "data/reference/units.csv")
    return Settings(
        raw_dir=_path_from_env("PIPELINE_RAW_DIR", PROJECT_ROOT / "data/raw"),
        warehouse=_path_from_env("PIPELINE_WAREHOUSE", PROJECT_ROOT / "data/warehouse/warehouse.duckdb"),
        register=register,
        aliases=_path_from_env("PIPELINE_ALIASES", register.parent / "aliases.csv"),
        province=" ".join(os.environ.get("PIPELINE_PROVINCE", "").split()) or DEFAULT_PROVINCE,
    )
