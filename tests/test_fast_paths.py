"""The fast paths added for speed give the same answers as the slow ones they replace."""

from __future__ import annotations

import io
import random
import re
import zipfile
from pathlib import Path

import hostile
import pytest

import olefile

from pipeline.ingest.guards import (
    _BOF,
    _BOUNDSHEET,
    _CELL_RECORDS,
    _MULRK,
    _PREFIXED_CELL,
    _biff_extents,
    _biff_records,
    _biff_sheet_name,
    _Damage,
    _EntityScan,
    _SheetExtent,
    _plain_cells,
    check_bytes,
    screen_bytes,
    sniff_format,
    unusual_xml,
)

FIXTURES = Path(__file__).parent / "fixtures" / "returns"
HEAD = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
TAIL = b"</sheetData></worksheet>"


def _expat(xml: bytes) -> tuple[int, int]:
    e = _SheetExtent()
    e.feed(xml, final=True)
    assert e.error is None
    return e.max_row, e.max_col


PLAIN = [
    b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="K1" s="2"><v>3</v></c></row>',
    b'<row r="2"><c r="B2" s="1"/><c r="C40"><f>1+1</f></c></row>',  # valueless cell ignored
    b'<row r="9"><c r="Z9" s="3"></c><c s="1" r="AB7" t="inlineStr"><is><t>x</t></is></c></row>',
    b'<row r="3">\n  <c\n r="D3"\tt="n"><v>1</v></c>\n</row>',
    b"",
]


@pytest.mark.parametrize("body", PLAIN)
def test_plain_sheets_take_the_fast_path_with_expats_answer(body):
    xml = HEAD + body + TAIL
    assert _plain_cells(xml) == _expat(xml)


WRITER_FORM = [
    b'<row r="1"><c r="A1" s="1" t="s"><v>0</v></c><c r="K1" s="2"/><c r="L1"></c></row>',
    b'<row r="2"><c r="B2" s="1" t="inlineStr"><is><t>x</t></is></c><c r="XFD2" s="3"/></row>',
    b'<row r="30"><c r="C30"><v>4</v></c><c r="D30" t="n"><v>5</v></c></row>',
    b'<row r="8"><c r="G8" s="7" t="n" /><c r="H8" s="7" ><v>2</v></c><c r="Z8" s="1" /></row>',  # openpyxl without lxml
]


@pytest.mark.parametrize("body", WRITER_FORM + PLAIN)
def test_writer_form_regex_gives_the_strict_patterns_answer(body, monkeypatch):
    from pipeline.ingest import guards

    xml = HEAD + body + TAIL
    fast = _plain_cells(xml)
    monkeypatch.setattr(guards, "_WRITER_CELL", re.compile(rb"(?!)(x)(x)(x)"))  # never matches: strict only
    assert fast == _plain_cells(xml) == _expat(xml)


UNUSUAL = [
    b"<row><c t=\"n\"><v>1</v></c></row>",  # no r: position follows the predecessor
    b"<row r=\"5\"><c r='A5'><v>1</v></c></row>",  # single quotes
    b'<row r="5"><c x="a>b" r="A900000"><v>1</v></c></row>',  # ">" inside a value
    b'<row r="5"><x:c xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main" r="A7"><v>1</v></x:c></row>',
    b'<row r="5"><c r="&#65;7"><v>1</v></c></row>',  # character reference
    b'<row r="5"><c r="a7"><v>1</v></c></row>',  # lower case
    b'<row r="5"><c r = "A7"><v>1</v></c></row>',  # spaces around "="
    b'<!-- <c r="XFD1"> --><row r="5"><c r="A5"><v>1</v></c></row>',
    b'<row r="5"><c r="A5"><v><![CDATA[1]]></v></c></row>',
    b'<row r="5"><c r="XFDA5"><v>1</v></c></row>',  # four letters
    b'<row r="5"><c r="A5" r="A900000"><v>1</v></c></row>',  # duplicate r: calamine takes the last
]


@pytest.mark.parametrize("body", UNUSUAL)
def test_anything_unusual_falls_back_to_expat(body):
    assert _plain_cells(HEAD + body + TAIL) is None


def test_utf16_sheet_falls_back():
    xml = (HEAD + PLAIN[0] + TAIL).decode().replace("UTF-8", "UTF-16").encode("utf-16")
    assert _plain_cells(xml) is None


def _xlsx_with_sheet_body(body: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(hostile.good_xlsx_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", body + b"</sheetData>")
            dst.writestr(info.filename, data)
    return out.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>',
        b"<row r='900000'><c r='A900000'><v>1</v></c></row>",
        b'<row r="6"><c r="A6"/><c r="A900000" ><v>1</v></c></row>',
        b'<row r="7"><c r="&#65;900000"><v>1</v></c></row>',
        b'<row r="8"><c r="A8"/><c s="1" r="IA8"><v>1</v></c></row>',  # too many columns (IA = 235)
    ],
)
def test_far_cells_are_refused_whichever_path_reads_them(body):
    issue = check_bytes(_xlsx_with_sheet_body(body), "far.xlsx")
    assert issue is not None and issue.code == "file_too_many_rows"


def test_duplicate_reference_is_refused():
    issue = check_bytes(_xlsx_with_sheet_body(b'<row r="12"><c r="A12" r="A900000"><v>1</v></c></row>'), "dup.xlsx")
    assert issue is not None and issue.code in ("file_too_many_rows", "file_corrupt")


def test_far_formatting_without_value_still_passes():
    assert check_bytes(_xlsx_with_sheet_body(b'<row r="900000"><c r="Z900000" s="0"/><c r="Y900000"></c></row>'), "ok.xlsx") is None


def test_malformed_plain_sheet_is_still_corrupt_or_readable_never_far():
    # Not well-formed, but no cell is far: whichever path reads it, it is not refused as too big.
    issue = check_bytes(_xlsx_with_sheet_body(b'<row r="3"><c r="A3"><v>1</v></row>'), "bad.xlsx")
    assert issue is None or issue.code == "file_corrupt"


def test_screen_bytes_agrees_with_sniff_and_check(tmp_path):
    for make in (hostile.good_xlsx, hostile.good_xls, hostile.good_ods, hostile.zip_bomb, hostile.truncated_xlsx, hostile.pdf_as_xlsx):
        data = make(tmp_path).read_bytes()
        fmt, issue = screen_bytes(data, "f.xlsx")
        assert fmt == sniff_format(data)
        expected = check_bytes(data, "f.xlsx")
        assert (issue and issue.code) == (expected and expected.code)


def test_counts_beyond_64_bits_are_not_numbers():
    from pipeline.ingest.values import parse_count

    assert parse_count("100.000.000.000.000.000.000") == (None, "count_not_number")
    assert parse_count(1e20) == (None, "count_not_number")
    assert parse_count(2**63) == (None, "count_not_number")
    assert parse_count(2**63 - 1) == (2**63 - 1, None)


def test_rows_frame_has_the_documented_dtypes_and_keeps_values():
    import datetime as dt

    from pipeline.ingest.parse import unit_frame

    frame = unit_frame(
        {
            "excel_row": [11, 12],
            "unit_name": ["Xã Ia Ka", None],
            "total_members": [12, None],
            "eligible": [True, None],
            "established_on": [dt.date(2015, 3, 2), None],
            "code_conflict": [False, True],
        }
    )
    assert list(frame.columns) == ["excel_row", "unit_name", "total_members", "eligible", "established_on", "code_conflict"]
    assert [str(t) for t in frame.dtypes] == ["int64", "object", "Int64", "boolean", "object", "bool"]
    assert frame["unit_name"].tolist() == ["Xã Ia Ka", None]
    assert frame["total_members"].isna().tolist() == [False, True] and frame["total_members"].iloc[0] == 12
    assert frame["eligible"].isna().tolist() == [False, True] and bool(frame["eligible"].iloc[0])
    assert frame["established_on"].iloc[0] == dt.date(2015, 3, 2)
    assert unit_frame({"excel_row": [], "unit_name": [], "total_members": []}).empty


def test_rows_frame_is_the_same_without_the_block_constructor(monkeypatch):
    from pipeline.ingest import parse

    records = {
        "excel_row": [11, 12, 13],
        "unit_name": ["Xã Ia Ka", None, "Phường Tây Sơn"],
        "total_members": [12, None, 7],
        "has_cell": [True, False, None],
        "note": [None, None, None],
        "code_conflict": [False, True, False],
    }
    fast = parse.unit_frame({k: list(v) for k, v in records.items()})
    monkeypatch.setattr(parse, "_from_blocks", None)
    slow = parse.unit_frame({k: list(v) for k, v in records.items()})
    import pandas as pd

    pd.testing.assert_frame_equal(fast, slow)
    fast["matched_unit_code"] = ["1", None, "2"]  # the frame behaves like any other
    assert fast.loc[fast["code_conflict"], "excel_row"].tolist() == [12]


def _unusual_reference(xml: bytes) -> bool:
    """unusual_xml as first written: four plain searches."""
    return b"\x00" in xml or b"<!" in xml or xml.find(b"<?", 1) != -1 or (b":c" in xml and _PREFIXED_CELL.search(xml) is not None)


def test_unusual_with_its_cheap_first_checks_answers_as_the_plain_searches():
    # Strings made of the pieces the checks look for, with and without a declaration:
    # "<?>" right after it, "?>" inside it, a PI, a DOCTYPE, NUL, prefixed cells.
    pieces = [b"<", b"?", b">", b"!", b"x", b"<?", b"?>", b"<!", b":c", b"<c ", b"<x:c ", b"\x00"]
    rng = random.Random(7)
    for _ in range(50_000):
        xml = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        if rng.random() < 0.5:
            xml = b'<?xml version="1.0"?>' + xml
        assert unusual_xml(xml) == _unusual_reference(xml), xml
    for xml in (b"<?xml?><?pi?>", b"<?xml <?>", b"<??>", b"<?", b"?<?", b"<?xml?>", HEAD + PLAIN[0] + TAIL):
        assert unusual_xml(xml) == _unusual_reference(xml), xml


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("word", ["<!DOCTYPE", "<!ENTITY"])
def test_entity_scan_finds_declarations_split_across_chunks(encoding, word):
    text = ("<root>" + "x" * 50 + word + " a SYSTEM 'b'>").encode(encoding)
    for cut in range(len(text)):
        scan = _EntityScan()
        assert scan.feed(text[:cut]) or scan.feed(text[cut:])
    assert not _EntityScan().feed("<root>Chú ý! &lt;!DOCTYPE</root>".encode(encoding))


def _biff_extents_reference(biff: bytes) -> dict[str, tuple[int, int]]:
    """_biff_extents as first written: record by record through _biff_records."""
    names: dict[int, str] = {}
    extents: dict[str, tuple[int, int]] = {}
    current = None
    biff8 = True
    for pos, rtype, body in _biff_records(biff):
        if rtype == _BOF:
            if pos == 0 and len(body) >= 2:
                biff8 = int.from_bytes(body[:2], "little") == 0x0600
            current = names.get(pos, f"#{len(extents) + 1}") if pos else None
            if current is not None:
                extents.setdefault(current, (0, 0))
        elif rtype == _BOUNDSHEET and current is None and len(body) >= 7:
            names[int.from_bytes(body[:4], "little")] = _biff_sheet_name(body, biff8)
        elif current is not None and len(body) >= 4 and (rtype in _CELL_RECORDS or rtype == _MULRK):
            row, col = int.from_bytes(body[:2], "little"), int.from_bytes(body[2:4], "little")
            if rtype == _MULRK and len(body) >= 6:
                col = int.from_bytes(body[-2:], "little")
            rows, cols = extents[current]
            extents[current] = (max(rows, row + 1), max(cols, col + 1))
    return extents


def _extents_or_damage(fn, biff: bytes):
    try:
        return fn(biff)
    except _Damage as exc:
        return exc.code, exc.detail


def test_biff_extents_in_one_loop_answer_as_record_by_record():
    streams = []
    for path in sorted(FIXTURES.glob("*.xls")):
        with olefile.OleFileIO(str(path)) as ole:
            found = {"/".join(p).lower(): p for p in ole.listdir(streams=True, storages=False)}
            streams.append(ole.openstream(found.get("workbook") or found["book"]).read())
    assert len(streams) >= 8
    rng = random.Random(11)
    damaged = []
    for biff in streams:
        damaged.append(biff[: rng.randrange(len(biff))])  # cut short, possibly inside a record
        flipped = bytearray(biff)
        for _ in range(6):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        damaged.append(bytes(flipped))
    for biff in streams + damaged:
        assert _extents_or_damage(_biff_extents, biff) == _extents_or_damage(_biff_extents_reference, biff)


@pytest.mark.parametrize("body", WRITER_FORM)
def test_writer_form_cells_are_all_read_by_the_fast_regex(body):
    from pipeline.ingest import guards

    xml = HEAD + body + TAIL
    assert len(guards._WRITER_CELL.findall(xml)) == len(guards.CELL_START.findall(xml)) > 0
