"""`pipeline sql`: one query printed as a table, an interactive read-only prompt,
and a clear refusal of anything that would change the warehouse."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline import cli
from pipeline.config import PROJECT_ROOT
from pipeline.sql_shell import format_table, interactive
from pipeline.warehouse.build import ensure_schema


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch) -> Path:
    """A tiny warehouse with the public schema and two unit rows."""
    path = tmp_path / "out" / "warehouse.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    ensure_schema(con)
    con.execute("""insert into core.unit_returns (period, district_code, unit_code, unit_name, unit_type,
                   total_members, eligible, has_cell, cell_members) values
                   ('2016-06', '622', '23737', 'Ia Mơ Nông', 'xa', 18495, true, true, 12),
                   ('2016-06', '622', '23740', 'Hà Tây', 'xa', 95, false, false, null)""")
    con.close()
    monkeypatch.setenv("PIPELINE_WAREHOUSE", str(path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return path


def test_query_prints_an_aligned_table_with_readable_numbers(warehouse, capsys):
    code = cli.main(["sql", "select unit_name, total_members, pct(cell_members, total_members) as share, "
                     "cell_members from core.unit_returns order by unit_code"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["unit_name", "total_members", "share", "cell_members"]
    assert "18,495" in lines[2] and "0.1" in lines[2] and "Ia Mơ Nông" in lines[2]
    assert "NULL" in lines[3]
    assert lines[-1] == "(2 rows)"
    # Numbers are right-aligned: their last digits share a column.
    assert lines[2].index("18,495") + len("18,495") == lines[3].index("95") + len("95")


def test_write_statement_is_refused_with_a_clear_error(warehouse, capsys):
    code = cli.main(["sql", "delete from core.unit_returns"])
    err = capsys.readouterr().err
    assert code != 0
    assert "read-only" in err and "DELETE" in err
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("select count(*) from core.unit_returns").fetchone() == (2,)
    con.close()


def test_bad_sql_fails_with_the_duckdb_message(warehouse, capsys):
    assert cli.main(["sql", "select * from no_such_table"]) != 0
    assert "no_such_table" in capsys.readouterr().err


def test_missing_warehouse_is_explained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_WAREHOUSE", str(tmp_path / "none.duckdb"))
    assert cli.main(["sql", "select 1"]) == 2
    assert "pipeline run" in capsys.readouterr().err


def test_interactive_prompt_reads_statements_from_stdin(warehouse, capsys):
    script = io.StringIO("select 1 as one;\nselect count(*)\n  as units from core.unit_returns;\n.tables\n")
    assert interactive(warehouse, stdin=script) == 0
    out = capsys.readouterr().out
    assert "one" in out and "(1 row)" in out
    assert "units" in out and "\n    2\n" in f"\n{out}"
    assert "core.unit_returns" in out  # .tables lists the public tables


def test_interactive_prompt_refuses_writes_and_exits_non_zero_on_a_script(warehouse, capsys):
    script = io.StringIO("insert into core.units values ('1', 'x', 'xa', null, '622', null);\nselect 2 as two;\n")
    assert interactive(warehouse, stdin=script) == 1
    captured = capsys.readouterr()
    assert "read-only" in captured.err
    assert "two" in captured.out  # later statements still run


def test_pipeline_sql_subprocess_with_piped_stdin(warehouse):
    """`pipeline sql` with no query and "select 1;" piped in, as a shell user would."""
    env = {**os.environ, "PIPELINE_WAREHOUSE": str(warehouse)}
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "sql"], input="select 1;\n", env=env,
                          capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1", "-", "1", "(1 row)"]


def test_format_table_decimals_line_up():
    text = format_table(["pct"], [(44.1,), (100.0,), (7.25,)])
    assert text.splitlines()[2:5] == [" 44.10", "100.00", "  7.25"]
    assert format_table(["n"], [(1,)] * 3, total=5000).splitlines()[-1] == "(5000 rows, first 3 shown)"
