"""A whole reporting period salted with hostile, broken and junk files.

Used by tests/test_hostile_run.py and scripts/measure_memory.py. The good
returns are copied from a period folder (the bundled sample by default); two of
them are renamed to awkward names and one gets a hyperlink/external-reference
note, none of which may change a figure. Everything else must be refused with a
reason, or ignored when it is junk nobody sent on purpose.
"""

from __future__ import annotations

import io
import os
import shutil
import unicodedata
import zipfile
from pathlib import Path

import openpyxl

from tests import hostile

# on-disk name → what the run must make of it
REFUSED = "refused"
IGNORED = "ignored"
ACCEPTED = "accepted"


def big_sheet_xlsx(directory: Path, rows: int = 200_000) -> Path:
    """A small workbook whose one sheet has ``rows`` value rows (streamed, never held whole)."""
    path = Path(directory) / "Danh sach dang vien.xlsx"
    good = zipfile.ZipFile(io.BytesIO(hostile.good_xlsx_bytes()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels"):
            zf.writestr(name, good.read(name))
        with zf.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write(
                b'<?xml version="1.0" encoding="UTF-8"?>'
                b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            )
            for start in range(1, rows + 1, 10_000):
                fh.write(
                    b"".join(
                        b'<row r="%d"><c r="A%d"><v>%d</v></c><c r="B%d"><v>%d</v></c></row>' % (r, r, r * 7919 % 100003, r, r)
                        for r in range(start, min(start + 10_000, rows + 1))
                    )
                )
            fh.write(b"</sheetData></worksheet>")
    return path


def with_links(source: Path, target: Path) -> Path:
    """A good return whose notes hold a hyperlink, '=HYPERLINK(…)' text and an external-workbook formula.

    None of it may be followed or evaluated, and none of it touches a figure:
    the formula sits outside the table, the text note is text.
    """
    wb = openpyxl.load_workbook(source)
    ws = wb.active
    header_row = next(r for r in range(1, 30) if str(ws.cell(r, 1).value or "").strip().upper() == "STT")
    note_col = next(c for c in range(1, ws.max_column + 1) if "ghi chú" in str(ws.cell(header_row, c).value or "").lower())
    first, second = header_row + 3, header_row + 4
    ws.cell(first, note_col).value = '=HYPERLINK("http://example.invalid/x?a=1","Xem")'
    ws.cell(first, note_col).data_type = "s"  # typed text, as a user pasting it would get
    ws.cell(second, note_col).value = "Xem văn bản"
    ws.cell(second, note_col).hyperlink = "file:///etc/passwd"
    ws.cell(1, ws.max_column + 3).value = "='\\\\server\\share\\[So lieu.xlsx]Sheet1'!A1"
    wb.save(target)
    st = source.stat()
    os.utime(target, (st.st_atime, st.st_mtime))
    return target


def display_name(raw_name: str) -> str:
    """How discovery records a file name (undecodable bytes replaced, NFC)."""
    text = raw_name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return unicodedata.normalize("NFC", text)


def long_name(stem: str, suffix: str = ".xlsx", limit: int = 255) -> str:
    """A decomposed (NFD) Vietnamese name of exactly ``limit`` bytes, as macOS and some mailers write."""
    piece = unicodedata.normalize("NFD", "Báo cáo chi bộ cơ quan ")
    name = stem
    while len((name + piece + suffix).encode()) <= limit:
        name += piece
    while len((name + "x" + suffix).encode()) <= limit:
        name += "x"
    return name + suffix


def build_hostile_period(folder: Path, good_dir: Path) -> dict[str, str]:
    """Fill ``folder`` with the good returns of ``good_dir`` plus hostile files.

    Returns {display name: expected outcome}. Nothing here depends on which
    district a good return belongs to.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    goods = sorted(p for p in Path(good_dir).iterdir() if p.is_file())
    for p in goods:
        shutil.copy2(p, folder / p.name)
        expected[p.name] = ACCEPTED

    # Awkward names on genuine returns: still accepted.
    renames = [long_name("Bao cao "), "Báo cáo \u200b📊 \u202exslx.xlsx"]
    for old, new in zip(goods[:2], renames):
        os.rename(folder / old.name, folder / new)
        del expected[old.name]
        expected[display_name(new)] = ACCEPTED
    linked = goods[2]
    with_links(Path(good_dir) / linked.name, folder / linked.name)

    scratch = folder.parent / (folder.name + ".scratch")
    scratch.mkdir(exist_ok=True)
    makers = [
        (hostile.zip_bomb, "bomb.xlsx"),
        (hostile.lying_size_zip, "lying.xlsx"),
        (hostile.billion_laughs, "laughs.xlsx"),
        (hostile.doctype_after_long_comment, "comment.xlsx"),
        (hostile.encrypted_xlsx, "Bao cao (mat khau).xlsx"),
        (hostile.encrypted_xls, "Bao cao mat khau.xls"),
        (hostile.truncated_xlsx, "Bao cao\ncat cut.xlsx"),
        (hostile.truncated_xls, "truncated.xls"),
        (hostile.corrupt_xlsx, "corrupt.xlsx"),
        (hostile.pdf_as_xlsx, "Cong van.xlsx"),
        (hostile.png_as_xlsx, "scan.xlsx"),
        (hostile.docx_as_xlsx, "To trinh.xlsx"),
        (hostile.html_as_xls, "xuat tu phan mem.xls"),
        (hostile.csv_as_xlsx, "Bao cao.csv.xlsx"),
        (hostile.empty_file, "empty.xlsx"),
        (hostile.far_cell_xlsx, "far.xlsx"),
        (hostile.far_cell_xls, "far.xls"),
        (big_sheet_xlsx, "Danh sach dang vien.xlsx"),
    ]
    for make, name in makers:
        made = make(scratch)
        target = folder / name
        os.replace(made, target)
        expected[display_name(name)] = REFUSED
    shutil.rmtree(scratch)
    # Undecodable bytes in a name (a USB stick formatted on an old Windows).
    bad = os.fsencode(folder) + b"/Bao cao \xc2\xa9\xff.xlsx"
    with open(bad, "wb") as fh:
        fh.write(b"\x00" * 10)
    expected[display_name(os.fsdecode(b"Bao cao \xc2\xa9\xff.xlsx"))] = REFUSED
    os.symlink("/etc/passwd", folder / "Chu Pah (lien ket).xlsx")
    expected["Chu Pah (lien ket).xlsx"] = REFUSED

    # Junk nobody sent on purpose.
    lock_owner = b"\x0bNguyen Van A" + b" " * 40 + b"\x0bNguyen Van A" + b"\x00" * 100
    junk = {
        "~$" + goods[3].name: lock_owner,
        ".~lock." + goods[3].name + "#": b"Nguyen Van A,may-tinh,/home/a,26.11.2026 08:00,file:///home/a;\n",
        "Thumbs.db": bytes(512),
        ".DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(100),
        "desktop.ini": b"[.ShellClassInfo]\r\n",
    }
    for name, data in junk.items():
        (folder / name).write_bytes(data)
        expected[name] = IGNORED
    return expected
