"""Workbooks the province sends out: the canonical district return and its blank template."""

from pipeline.templates.return_workbook import (
    template_for_district,
    templates_for_period,
    write_return,
)

__all__ = ["template_for_district", "templates_for_period", "write_return"]
