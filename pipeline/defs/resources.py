"""Resources: where things are (from the environment) and the warehouse connection."""


from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipeline.config import DEFAULT_PROVINCE, Settings, load_settings


class PipelineConfig(dg.ConfigurableResource):
    """Paths of the raw folder, warehouse and register, and the province (defaults from PIPELINE_* variables)."""

    raw_dir: str
    warehouse: str
    register_csv: str
    aliases: str
    province: str = DEFAULT_PROVINCE

    def settings(self) -> Settings:
        return Settings(
            raw_dir=Path(self.raw_dir),
            warehouse=Path(self.warehouse),
            register=Path(self.register_csv),
            aliases=Path(self.aliases),
            province=self.province,
        )


def default_resources(settings: Settings | None = None) -> dict:
    s = settings or load_settings()
    return {
        "paths": PipelineConfig(
            raw_dir=str(s.raw_dir), warehouse=str(s.warehouse), register_csv=str(s.register), aliases=str(s.aliases),
            province=s.province,
        ),
        # Readers of the published warehouse; builds write a private copy (see warehouse/build.py).
        "duckdb": DuckDBResource(database=str(s.warehouse), connection_config={"access_mode": "READ_ONLY"}),
    }
