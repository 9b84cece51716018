"""benchmarks.generate.make_varied: returns in the layouts districts send, which the pipeline reads."""

from benchmarks.generate import GIA_LAI_REGISTER, make_varied
from pipeline.ingest.match import UnitMatcher
from pipeline.ingest.parse import parse_return
from pipeline.register import load_register


def test_varied_returns_are_read_except_the_ones_cut_short(tmp_path):
    raw = make_varied(tmp_path, periods=2, formats=("xlsx",), broken=1)
    files = sorted(raw.glob("*/*"))
    assert [p.name for p in sorted(raw.iterdir())] == ["2017-01", "2017-02"]
    assert len(files) == 26  # 13 districts a month
    matcher = UnitMatcher(load_register(GIA_LAI_REGISTER, GIA_LAI_REGISTER.parent / "aliases.csv"))
    results = [parse_return(p.read_bytes(), p.name, matcher) for p in files]
    assert sum(r.row_count() is None for r in results) == 1  # the one cut short is refused
    assert all(r.row_count() and r.district_code for r in results if r.row_count() is not None)
    before = {p: p.stat().st_mtime_ns for p in files}
    assert make_varied(tmp_path, periods=2, formats=("xlsx",), broken=1) == raw  # cached: not written again
    assert {p: p.stat().st_mtime_ns for p in files} == before
