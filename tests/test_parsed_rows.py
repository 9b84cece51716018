"""ParsedReturn keeps the parser's column lists until its DataFrame is asked for."""

import pickle

import pandas as pd

from pipeline.ingest.model import ParsedReturn, UnitColumns
from pipeline.ingest.parse import unit_frame
from pipeline.warehouse.load import _stack_rows


def _columns(rows: int, first: int = 11) -> UnitColumns:
    return UnitColumns(
        excel_row=list(range(first, first + rows)),
        unit_name=[f"Xã {i}" for i in range(rows)],
        total_members=[10 + i if i % 2 else None for i in range(rows)],
        has_cell=[bool(i % 2) if i % 3 else None for i in range(rows)],
        code_conflict=[False] * rows,
    )


def test_counts_and_names_do_not_make_the_frame():
    result = ParsedReturn(file_name="a.xlsx", rows=_columns(3))
    assert result.row_count() == 3
    assert "total_members" in result.column_names() and "stt" not in result.column_names()
    assert result.unit_columns() is not None  # still lists


def test_the_frame_is_made_once_with_the_parsers_dtypes():
    result = ParsedReturn(file_name="a.xlsx", rows=_columns(3))
    frame = result.rows
    assert result.rows is frame and result.unit_columns() is None
    pd.testing.assert_frame_equal(frame, unit_frame(_columns(3)))
    assert result.row_count() == 3 and "unit_name" in result.column_names()


def test_unreadable_and_default():
    assert ParsedReturn(file_name="x.xls").rows is None
    assert ParsedReturn(file_name="x.xls").row_count() is None
    assert ParsedReturn(file_name="x.xls").column_names() == ()


def test_pickling_keeps_the_lists():
    result = pickle.loads(pickle.dumps(ParsedReturn(file_name="a.xlsx", rows=_columns(2))))
    assert result.unit_columns() == _columns(2)
    pd.testing.assert_frame_equal(result.rows, unit_frame(_columns(2)))


def test_stacking_lists_equals_concatenating_frames():
    returns = [ParsedReturn(file_name=f"{n}.xlsx", rows=_columns(n + 1, first=20 * n)) for n in range(4)]
    from_lists = _stack_rows(returns, mixed_ok=False)
    frames = [unit_frame(_columns(n + 1, first=20 * n)) for n in range(4)]
    pd.testing.assert_frame_equal(from_lists, pd.concat(frames, ignore_index=True))
    returns[1].rows  # one frame made: the frames are concatenated instead, with the same result
    pd.testing.assert_frame_equal(_stack_rows(returns, mixed_ok=False), from_lists)


def test_returns_with_other_columns_are_not_stacked_across_periods():
    other = UnitColumns(_columns(2))
    other.pop("has_cell")
    returns = [ParsedReturn(file_name="a.xlsx", rows=_columns(2)), ParsedReturn(file_name="b.xlsx", rows=other)]
    assert _stack_rows(returns, mixed_ok=False) is None
    assert list(_stack_rows(returns, mixed_ok=True).columns) == list(_columns(1))
