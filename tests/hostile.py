"""Hostile and broken input files, built on the fly for the guard and discovery tests.

Every maker takes a directory (pytest's tmp_path) and returns the path it wrote.
Nothing here is a fixture on disk: the bombs are cheap to build in a stream
and would be unpleasant to keep in the repository.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import olefile
import openpyxl

MB = 1024 * 1024

# A one-sheet Excel 97–2003 workbook ("BC": A1 "Xã Ia Mơ Nông", B1 412, C2 "x")
# written by LibreOffice 7, zlib-compressed and base64-encoded: nothing in the
# test environment writes .xls, and hand-building an OLE container is not the point.
_XLS_B64 = (
    "eNrtV19sk1UUP/dr130t2/ptMMUBtWKUwQqBkOiM4soKwhJxBlGJWSKldqNS1qbMZCT+KSIvZiQaHvSBxCzZg8ZENCb6"
    "oInbGw8YfeFBo8nAFxUfqtEYEtfP3znf/baP2iVtIRq1pzn33J7759x7/t3zfflF5/z0Bz2XqQLuJx+V7SAFPDwFNN0/"
    "FpGheWXbtl223YR/FSxoyjb0w34tQLZ5q7ZrUNMm/DdhP+Xwm6Ao7aZx0AKdoHrgFniMd79a1pRrnFcrNOU3Lp/zN+dx"
    "H7Ay/jnXc/yHgCuAbcB2YAcw7DwB1AnsAq4ErgJ2i08Q3QpcDbxNy1ujKWME/duBUc1bD3pnM8/8IxA0YcVAC33SfpFN"
    "Lra/DI943z8nfnEFOEJ59o1EMpuK/l0wKGdIKj7DLJx0B3qKzoHbQeeF+6m0O8T7AHGK9muPPmjE5exnpF0vbQfx+o9l"
    "zdfC2UYR+ka8/DUJAkWtKkFJylKGDiMPZjCjhy5wfL0kMzg61E4Z4Vk3Mhrxt9EMx9ie9Hi6kMzOS+zM0G921BOns1Hm"
    "83Lh/1ob36iTT/87/gx0V03Pfc78UiV/4zL82DL8Tcvwg3/hnzUQV0WymVpFn9DOYkBoV9EvdGWxVeiqYot9SPz3NDLy"
    "FCdr2HQwMYXYVPjNKRNIdOCMoqv0FGfo0n6REyhxJuYQdit2L26nFSWOoc8QCSadVMj45qyKo41T5GfLyfkmcr+JnG7+"
    "jrT/BzRi6HejndRB+g7qHIJjR2kfTasoPQKdj9MYbz9p47Amxf3O85Eyu4FLqu/W1OA3xslF1nW5qA1SnsFdOHo7RaKF"
    "7TYn1l69ck/PwNPCLy59ldBdrFGKqZMYmfNvkhV90r4sc9036pTwXpH27sX13w9s8PR7F/ulgY2e/jRyShCnItG7AWkx"
    "tbotcGru0PyASxU9jhGTXpBrk3rVDOubdjhEWn51TcPSnJiTKVRYeLyzz8NbkHfYeXmJXhSNKfwrQE08xvPDYtGf6FHW"
    "WGmvo62SqS3NHhAmX2mr7OIv9Qo/WLKq1AgGhWQdr+Ga4EGjiz4KOImW6AG5PdE63m+pkGAYg5uMmd6NlFuXhKrIUXj1"
    "fSGnhrFMRyuzztBDXDPsy6QKueO50Yno7slUOhu9797NB5KH09lsWtxjMDM62n8jtZNyTdEglG0SzVfZl+ZPv/XLteEj"
    "1ruvm9S34cOvWO9v6tpKaU2yt+7VddaI1tERXW9N6JqrqOuuKe03PywQRfSaXD49nj8xmWWZET2+Ve/tQmW/+M7F8o/P"
    "f6u8/Zt9f8kPlz6/dG7LGuvsG7h/7Np7u/gVrOCN6DrRzUaW544P6wghXSvyeL8ej3tqV9bVznz+iXTheCY3fr2OWL/b"
    "t2yjJlSHm/n9J/ariOFqa8SmQaf/JKQX6CgqLj7H0brP3wVrG9rOdh3fVfmAG6cJyD2GCncYZ3i2Ifk+zzdYLWt6gEOL"
    "eWIY9WC6YfuFIL/e77+1+ltNqlJ6jJ7D/Y/h+WbbD8ELRsUmzJlAvZoDZ3no1fJb6tD/OuCFRfm7ICElZ0iLB9Z3nv4G"
    "7n8H8O3m97/Anwd/Fc4="
)


def good_xlsx_bytes() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Báo cáo"
    ws["A1"] = "TỈNH ỦY GIA LAI"
    ws["C11"] = "Xã Ia Mơ Nông"
    ws["E11"] = 412
    ws["G11"] = "x"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def good_xls_bytes() -> bytes:
    return zlib.decompress(base64.b64decode(_XLS_B64))


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = Path(directory) / name
    path.write_bytes(data)
    return path


def _rewrite_zip(data: bytes, part: str, change) -> bytes:
    """Copy a zip, passing one part's content through ``change``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            content = zin.read(info)
            zout.writestr(info.filename, change(content) if info.filename == part else content)
    return out.getvalue()


def good_xlsx(directory: Path) -> Path:
    return _write(directory, "Chu Pah.xlsx", good_xlsx_bytes())


def good_xls(directory: Path) -> Path:
    return _write(directory, "Chu Pah 2003.xls", good_xls_bytes())


def good_ods(directory: Path) -> Path:
    """The smallest .ods that LibreOffice and calamine read: mimetype first, stored."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        "<office:body><office:spreadsheet>"
        '<table:table table:name="BC"><table:table-row>'
        '<table:table-cell office:value-type="string"><text:p>Xã Ia Mơ Nông</text:p></table:table-cell>'
        '<table:table-cell office:value-type="float" office:value="412"><text:p>412</text:p></table:table-cell>'
        "</table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        zf.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return _write(directory, "Chu Pah.ods", buf.getvalue())


def zip_bomb(directory: Path, uncompressed: int = 300 * MB) -> Path:
    """A fake .xlsx whose sheet inflates to ``uncompressed`` bytes of zeros (~0,3 MB on disk).

    Written through a streaming entry in 1 MB chunks, so building it never holds
    more than a chunk in memory.
    """
    path = Path(directory) / "bomb.xlsx"
    good = zipfile.ZipFile(io.BytesIO(good_xlsx_bytes()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels"):
            zf.writestr(name, good.read(name))
        zero = bytes(MB)
        sheet = zipfile.ZipInfo("xl/worksheets/sheet1.xml")
        sheet.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(sheet, "w", force_zip64=True) as fh:
            for _ in range(uncompressed // MB):
                fh.write(zero)
    return path


def lying_size_zip(directory: Path) -> Path:
    """A fake .xlsx whose sheet declares 1 KB in the central directory but inflates to 50 MB."""
    body = bytes(50 * MB)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = comp.compress(body) + comp.flush()
    good = zipfile.ZipFile(io.BytesIO(good_xlsx_bytes()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels"):
            zf.writestr(name, good.read(name))
    entries = buf.getvalue()
    # Splice one more entry in by hand, with a false uncompressed size (and a
    # CRC matching the first KB, which is all a reader trusting it would see).
    eocd_at = entries.rfind(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack_from("<HII", entries, eocd_at + 10)
    local_part = entries[:cd_offset]
    central = entries[cd_offset : cd_offset + cd_size]
    name = b"xl/worksheets/sheet1.xml"
    crc = zlib.crc32(body[:1024])
    offset = len(local_part)
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(deflated), 1024, len(name), 0)
    cent = struct.pack(
        "<4sHHHHHHIIIHHHHHII",
        b"PK\x01\x02",
        20,
        20,
        0,
        8,
        0,
        0,
        crc,
        len(deflated),
        1024,
        len(name),
        0,
        0,
        0,
        0,
        0,
        offset,
    )
    local_part += local + name + deflated
    central += cent + name
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count + 1, count + 1, len(central), len(local_part), 0)
    return _write(directory, "lying.xlsx", local_part + central + eocd)


def _laughs_doctype(levels: int = 9) -> bytes:
    ents = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1))
    return f"<!DOCTYPE worksheet [{ents}]>".encode()


def billion_laughs(directory: Path) -> Path:
    """A valid openpyxl workbook whose sheet1.xml declares nested entities and uses the deepest."""

    def change(xml: bytes) -> bytes:
        xml = xml.replace("Xã Ia Mơ Nông".encode(), b"&lol9;")
        return b'<?xml version="1.0" encoding="UTF-8"?>' + _laughs_doctype() + xml

    return _write(directory, "laughs.xlsx", _rewrite_zip(good_xlsx_bytes(), "xl/worksheets/sheet1.xml", change))


def doctype_after_long_comment(directory: Path) -> Path:
    """The DOCTYPE pushed 200 KB into the part by a comment, past any fixed-size prefix scan."""

    def change(xml: bytes) -> bytes:
        return b'<?xml version="1.0"?><!--' + b" " * (200 * 1024) + b"-->" + _laughs_doctype(3) + xml

    return _write(directory, "comment.xlsx", _rewrite_zip(good_xlsx_bytes(), "xl/worksheets/sheet1.xml", change))


def utf16_doctype(directory: Path) -> Path:
    """sharedStrings-free workbook whose styles part is UTF-16 and carries a DOCTYPE."""

    def change(xml: bytes) -> bytes:
        text = xml.decode("utf-8").split("?>", 1)[-1]
        return ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]>' + text).encode("utf-16")

    return _write(directory, "utf16.xlsx", _rewrite_zip(good_xlsx_bytes(), "xl/styles.xml", change))


def far_cell_xlsx(directory: Path, ref: str = "XFD1048576") -> Path:
    """A 5 KB workbook with one value at the far corner (calamine would allocate the whole grid)."""

    def change(xml: bytes) -> bytes:
        row = ref.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        extra = f'<row r="{row}"><c r="{ref}"><v>1</v></c></row>'.encode()
        return xml.replace(b"</sheetData>", extra + b"</sheetData>")

    return _write(directory, "far.xlsx", _rewrite_zip(good_xlsx_bytes(), "xl/worksheets/sheet1.xml", change))


def far_styled_empty_xlsx(directory: Path) -> Path:
    """Formatting (no values) far down the sheet: must not count as rows."""

    def change(xml: bytes) -> bytes:
        extra = b'<row r="900000"><c r="Z900000" s="0"/></row>'
        return xml.replace(b"</sheetData>", extra + b"</sheetData>")

    return _write(directory, "styled.xlsx", _rewrite_zip(good_xlsx_bytes(), "xl/worksheets/sheet1.xml", change))


def quoted_gt_far_cell_xlsx(directory: Path) -> Path:
    """A far cell hidden from naive tag regexes by a '>' inside an attribute value."""

    def change(xml: bytes) -> bytes:
        extra = b'<row r="5" x=">"><c x="a>b" r="A900000"><v>1</v></c></row>'
        return xml.replace(b"</sheetData>", extra + b"</sheetData>")

    return _write(directory, "quoted.xlsx", _rewrite_zip(good_xlsx_bytes(), "xl/worksheets/sheet1.xml", change))


def encrypted_xlsx(directory: Path, password: str = "1234") -> Path:
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(good_xlsx_bytes())).encrypt(password, out)
    return _write(directory, "Chu Pah (mat khau).xlsx", out.getvalue())


def _patch_xls_workbook(directory: Path, name: str, patch) -> Path:
    path = _write(directory, name, good_xls_bytes())
    with olefile.OleFileIO(str(path), write_mode=True) as ole:
        stream = bytearray(ole.openstream("Workbook").read())
        patch(stream)
        ole.write_stream("Workbook", bytes(stream))
    return path


def _records(stream: bytes):
    pos = 0
    while pos + 4 <= len(stream):
        rtype, size = struct.unpack_from("<HH", stream, pos)
        yield pos, rtype, size
        pos += 4 + size


def encrypted_xls(directory: Path) -> Path:
    """The globals' first record after BOF retyped as FILEPASS, as a password-protected .xls has it."""

    def patch(stream: bytearray) -> None:
        pos = next(p for p, t, _ in _records(stream) if p > 0)
        struct.pack_into("<H", stream, pos, 0x002F)

    return _patch_xls_workbook(directory, "Chu Pah mat khau.xls", patch)


def far_cell_xls(directory: Path) -> Path:
    """A value cell moved to row 65536, column IV."""

    def patch(stream: bytearray) -> None:
        pos = next(p for p, t, _ in _records(stream) if t in (0x027E, 0x0203))
        struct.pack_into("<HH", stream, pos + 4, 65535, 255)

    return _patch_xls_workbook(directory, "far.xls", patch)


def truncated_xlsx(directory: Path) -> Path:
    data = good_xlsx_bytes()
    return _write(directory, "truncated.xlsx", data[: len(data) // 2])


def truncated_xls(directory: Path) -> Path:
    data = good_xls_bytes()
    return _write(directory, "truncated.xls", data[: len(data) // 2 + 100])


def corrupt_xlsx(directory: Path) -> Path:
    """End record intact, but bytes in the middle of the sheet's compressed data flipped."""
    data = bytearray(good_xlsx_bytes())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 5, start + min(info.compress_size, 40)):
        data[k] ^= 0x5A
    return _write(directory, "corrupt.xlsx", bytes(data))


def pdf_as_xlsx(directory: Path) -> Path:
    return _write(directory, "Chu Pah.xlsx", b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n")


def png_as_xlsx(directory: Path) -> Path:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return _write(directory, "scan.xlsx", b"\x89PNG\r\n\x1a\n" + chunk)


def docx_as_xlsx(directory: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        zf.writestr("word/document.xml", '<?xml version="1.0"?><w:document xmlns:w="x"/>')
    return _write(directory, "Cong van.xlsx", buf.getvalue())


def html_as_xls(directory: Path) -> Path:
    html = (
        "<html xmlns:x=\"urn:schemas-microsoft-com:office:excel\"><head><meta charset='utf-8'></head>"
        "<body><table><tr><td>Xã Ia Mơ Nông</td><td>412</td></tr></table></body></html>"
    )
    return _write(directory, "xuat tu phan mem.xls", html.encode("utf-8"))


def csv_as_xlsx(directory: Path) -> Path:
    return _write(directory, "Chu Pah.xlsx", "STT,Tên đơn vị,Tổng số\n1,Xã Ia Mơ Nông,412\n".encode())


def empty_file(directory: Path) -> Path:
    return _write(directory, "empty.xlsx", b"")


def symlink_to_passwd(directory: Path) -> Path:
    path = Path(directory) / "Chu Pah.xlsx"
    os.symlink("/etc/passwd", path)
    return path
