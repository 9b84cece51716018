"""The workbook's own last-saved time (read.saved_time), which breaks ties between versions
of a return whose files share a modification time."""

import io
import re
import zipfile

import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.ingest.guards import sniff_format
from pipeline.ingest.read import saved_time

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "returns"


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
    return out.getvalue()


CORE = b'<cp:coreProperties><dcterms:modified xsi:type="dcterms:W3CDTF">%s</dcterms:modified></cp:coreProperties>'


@pytest.mark.parametrize(
    "written, expected",
    [
        (b"2016-07-05T08:12:00Z", "2016-07-05T08:12:00"),
        (b"2016-07-05T15:12:00+07:00", "2016-07-05T08:12:00"),  # to UTC
        (b" 2016-07-05T15:12:00.5+0700 ", "2016-07-05T08:12:00"),
        (b"2016-07-05", None),  # no time of day: not a save time
        ("hôm qua".encode(), None),
    ],
)
def test_xlsx_core_properties(written, expected):
    assert saved_time(_zip({"docProps/core.xml": CORE % written}), "xlsx") == expected


def test_xlsx_parts_already_inflated_are_used():
    parts = {"docProps/core.xml": CORE % b"2016-07-05T08:12:00Z"}
    assert saved_time(b"not read", "xlsx", parts) == "2016-07-05T08:12:00"


def test_ods_meta_date_is_vietnam_time_given_in_utc():
    """LibreOffice writes the computer's clock without a zone; a district's clock is UTC+7."""
    meta = b"<office:meta><dc:date>2016-07-05T15:12:00.123456789</dc:date></office:meta>"
    assert saved_time(_zip({"meta.xml": meta}), "ods") == "2016-07-05T08:12:00"
    after_midnight = b"<office:meta><dc:date>2016-07-06T03:00:00</dc:date></office:meta>"
    assert saved_time(_zip({"meta.xml": after_midnight}), "ods") == "2016-07-05T20:00:00"


def test_an_ods_saved_after_an_xlsx_is_later_whatever_the_zones():
    """An .xlsx saved at 08:11 UTC, an .ods at 15:12 Vietnam time (08:12 UTC): the .ods is the later."""
    xlsx = saved_time(b"not read", "xlsx", {"docProps/core.xml": CORE % b"2016-07-05T08:11:00Z"})
    ods = saved_time(_zip({"meta.xml": b"<office:meta><dc:date>2016-07-05T15:12:00</dc:date></office:meta>"}), "ods")
    assert ods > xlsx


def test_an_impossible_zoneless_time_is_not_known():
    meta = b"<office:meta><dc:date>2016-13-05T15:12:00</dc:date></office:meta>"
    assert saved_time(_zip({"meta.xml": meta}), "ods") is None


@pytest.mark.parametrize(
    "data, fmt",
    [
        (_zip({"xl/workbook.xml": b"<workbook/>"}), "xlsx"),  # no docProps
        (b"PK\x03\x04 cut", "xlsx"),
        (b"\xd0\xcf\x11\xe0 cut", "xls"),
        (_zip({"content.xml": b"<x/>"}), "ods"),  # no meta.xml
        (b"a,b", "csv"),
    ],
)
def test_not_said_or_unreadable_is_none(data, fmt):
    assert saved_time(data, fmt) is None


def test_every_writer_in_the_corpus_says_when_it_saved():
    """Excel-style writers (openpyxl), LibreOffice and Gnumeric, in .xlsx, .xlsm, .xls and .ods."""
    formats = set()
    for path in sorted(FIXTURES.iterdir()):
        data = path.read_bytes()
        fmt = sniff_format(data)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", saved_time(data, fmt) or ""), path.name
        formats.add(fmt)
    assert formats >= {"xlsx", "xlsm", "xls", "ods"}


def test_parse_return_keeps_it(matcher):
    from pipeline.ingest.parse import parse_return

    sample = PROJECT_ROOT / "data" / "raw" / "2016-06" / "AnKhe.xlsx"  # generated with pinned document dates
    assert parse_return(sample.read_bytes(), sample.name, matcher).saved_at == "2016-07-02T06:24:00"
