import duckdb
import pytest

from pipeline.archive import Archive, FileVersion, sha256_of
from pipeline.warehouse.build import building


def test_store_is_content_addressed_and_manifest_merges(tmp_path):
    archive = Archive(tmp_path)
    data = b"PK fake"
    sha = sha256_of(data)
    rel = archive.store(data, sha, ".XLSX")
    assert rel.endswith(f"{sha}.xlsx") and archive.read(rel) == data
    first = FileVersion("2016-06", "a.xlsx", "a.xlsx", sha, 7, "2016-07-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", rel)
    again = FileVersion("2016-06", "a.xlsx", "a.xlsx", sha, 7, "2016-07-01T00:00:00+00:00", "2026-02-02T00:00:00+00:00", rel)
    archive.record("2016-06", [first])
    merged = archive.record("2016-06", [again])
    # Seeing the same version again keeps the first sighting.
    assert merged == [first]
    assert archive.periods() == ["2016-06"]


def test_build_publishes_atomically_and_keeps_old_file_on_failure(tmp_path):
    published = tmp_path / "w.duckdb"
    with building(published, tmp_path / ".build") as con:
        con.execute("create table core.t as select 1 as x")
    with pytest.raises(RuntimeError):
        with building(published, tmp_path / ".build") as con:
            con.execute("insert into core.t values (2)")
            raise RuntimeError("killed mid-build")
    con = duckdb.connect(str(published), read_only=True)
    assert con.execute("select count(*) from core.t").fetchone()[0] == 1
    con.close()
    assert not list((tmp_path / ".build").glob("*.duckdb"))


def test_reader_keeps_its_snapshot_while_a_build_publishes(tmp_path):
    published = tmp_path / "w.duckdb"
    with building(published, tmp_path / ".build") as con:
        con.execute("create table core.t as select 1 as x")
    reader = duckdb.connect(str(published), read_only=True)
    with building(published, tmp_path / ".build") as con:
        con.execute("insert into core.t values (2)")
    assert reader.execute("select count(*) from core.t").fetchone()[0] == 1
    reader.close()
    fresh = duckdb.connect(str(published), read_only=True)
    assert fresh.execute("select count(*) from core.t").fetchone()[0] == 2
    fresh.close()


def test_object_left_short_by_a_power_cut_is_written_again(tmp_path):
    archive = Archive(tmp_path)
    data = b"PK\x03\x04 return bytes"
    rel = archive.store(data, sha256_of(data), ".xlsx")
    (tmp_path / rel).write_bytes(data[:3])  # what a power cut before the flush can leave
    assert archive.store(data, sha256_of(data), ".xlsx") == rel
    assert (tmp_path / rel).read_bytes() == data


def test_record_flushes_objects_before_the_manifest(tmp_path, monkeypatch):
    import pipeline.archive as archive_module

    order = []
    monkeypatch.setattr(archive_module, "syncfs", lambda path: order.append("objects") or True)
    real_write = archive_module._atomic_write
    monkeypatch.setattr(
        archive_module, "_atomic_write", lambda path, *a, **k: (order.append(path.parent.name), real_write(path, *a, **k))
    )
    archive = Archive(tmp_path)
    data = b"bytes"
    rel = archive.store(data, sha256_of(data), ".xlsx")
    archive.record("2016-06", [FileVersion("2016-06", "a.xlsx", "a.xlsx", sha256_of(data), 5, "t", "t", rel)])
    assert order[-2:] == ["objects", "manifests"]
