"""Workbook bytes → dense sheet grids, through python-calamine for every format.

Where calamine cannot help, the .xlsx parts are read directly: the font of
each cell of a workbook that uses legacy Vietnamese fonts (the font decides
TCVN3 vs VNI), and formulas whose value was never saved (calamine shows them
as blank).
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from datetime import datetime, timedelta, timezone
from typing import Any

import olefile
import python_calamine as pc

from pipeline.ingest.guards import CELL_START, column_number, unusual_xml
from pipeline.ingest.model import Sheet


class ReadError(Exception):
    """The workbook could not be read; ``code`` is a catalogue code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


_LEGACY_FONT = re.compile(rb'<name val="(\.Vn|VNI)', re.IGNORECASE)
# A formula cell with no cached value: <c r="E20" ...><f>…</f></c> (no <v>).
_CELL = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.DOTALL)
_REF = re.compile(rb'\br="([A-Z]+[0-9]+)"')
_FORMULA = re.compile(rb"<f[\s/>]")


# Whitespace between the structural elements of a pretty-printed ODS content.xml
# (Gnumeric writes one element per line). calamine's ODS reader refuses it; text
# inside a paragraph (<text:p>, <text:span>) is left alone, so cell text is kept.
_ODS_LAYOUT_GAP = re.compile(rb">[ \t\r\n]+<(?=/?(?:table:|office:|text:p[\s>/]|text:h[\s>/]|text:list))")
# Line breaks and tabs inside a cell (Gnumeric writes <text:line-break/>, LibreOffice
# a new paragraph); calamine drops the element, gluing "Tên đơn vị" to "hành chính".
_ODS_BREAKS = ((re.compile(rb"<text:line-break\s*/>"), b"\n"), (re.compile(rb"<text:tab\s*/>"), b"\t"))


# What calamine reads of an .ods: the manifest tells it the format, content.xml holds the sheets.
_ODS_READ_PARTS = frozenset({"mimetype", "META-INF/manifest.xml", "content.xml"})


def _normalise_ods(data: bytes) -> bytes:
    """The .ods with content.xml rewritten into the form calamine reads fully (unchanged if already so)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            content = src.read("content.xml")
            fixed = _ODS_LAYOUT_GAP.sub(b"><", content)
            for pattern, text in _ODS_BREAKS:
                fixed = pattern.sub(text, fixed)
            if fixed == content:
                return data
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
                for info in src.infolist():
                    if info.filename not in _ODS_READ_PARTS:
                        continue  # styles, settings, thumbnails: calamine never reads them
                    body = fixed if info.filename == "content.xml" else src.read(info)
                    # Stored, in their order ("mimetype" first, as ODF wants): this copy only
                    # goes to calamine, and compressing it again cost more than reading it.
                    dst.writestr(info, body, compress_type=zipfile.ZIP_STORED)
            return out.getvalue()
    except (zipfile.BadZipFile, KeyError, OSError, RuntimeError):
        return data  # calamine will say what is wrong with it


def read_workbook(
    data: bytes, fmt: str, max_rows: int, max_cols: int, parts: dict[str, bytes] | None = None
) -> list[Sheet]:
    """Read every worksheet into a grid; raise ReadError with a catalogue code.

    ``parts``: XML parts already inflated and checked (``guards.screen_bytes``),
    used instead of inflating them again.
    """
    source = _normalise_ods(data) if fmt == "ods" else data
    try:
        workbook = pc.CalamineWorkbook.from_filelike(io.BytesIO(source))
    except pc.PasswordError as exc:
        raise ReadError("file_encrypted", str(exc)) from exc
    except pc.XmlError as exc:
        raise ReadError("file_corrupt", f"XML: {exc}") from exc
    except Exception as exc:  # calamine raises several unrelated types on bad input
        raise ReadError("file_corrupt", f"{type(exc).__name__}: {exc}") from exc
    return _read_sheets(workbook, data, fmt, max_rows, max_cols, parts)


def _read_sheets(
    workbook, data: bytes, fmt: str, max_rows: int, max_cols: int, parts: dict[str, bytes] | None = None
) -> list[Sheet]:
    sheets: list[Sheet] = []
    for meta in workbook.sheets_metadata:
        if str(meta.typ) != "SheetTypeEnum.WorkSheet":
            continue
        try:
            sheet = workbook.get_sheet_by_name(meta.name)
            if sheet.total_height > max_rows or sheet.total_width > max_cols:
                raise ReadError("file_too_many_rows", f"{meta.name}: {sheet.total_height} × {sheet.total_width}")
            rows = sheet.to_python(skip_empty_area=False)
            merged = list(sheet.merged_cell_ranges or [])
        except ReadError:
            raise
        except Exception as exc:
            raise ReadError("file_corrupt", f"{meta.name}: {type(exc).__name__}: {exc}") from exc
        sheets.append(Sheet(name=meta.name, rows=[list(r) for r in rows], merged=merged))

    if fmt in ("xlsx", "xlsm"):
        _mark_formulas_without_value(data, sheets, parts)
    return sheets


class _Parts:
    """Parts of an .xlsx by name: from those already inflated, else from the archive (opened on demand)."""

    def __init__(self, data: bytes, known: dict[str, bytes] | None) -> None:
        self._data = data
        self._known = known or {}
        self._archive: zipfile.ZipFile | None = None

    def _zip(self) -> zipfile.ZipFile:
        if self._archive is None:
            self._archive = zipfile.ZipFile(io.BytesIO(self._data))
        return self._archive

    def read(self, name: str) -> bytes:
        """The part's bytes; KeyError when the workbook has no such part."""
        found = self._known.get(name)
        return found if found is not None else self._zip().read(name)

    def has(self, name: str) -> bool:
        return name in self._known or name in self._zip().namelist()

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()


def _xlsx_sheet_parts(archive: zipfile.ZipFile | _Parts) -> dict[str, str]:
    """Sheet name → part name, from workbook.xml and its relationships."""
    wb = archive.read("xl/workbook.xml")
    rels = archive.read("xl/_rels/workbook.xml.rels")
    targets = {
        m.group(1).decode(): m.group(2).decode()
        for m in re.finditer(rb'<Relationship[^>]*?Id="([^"]+)"[^>]*?Target="([^"]+)"', rels)
    }
    targets.update(
        {
            m.group(2).decode(): m.group(1).decode()
            for m in re.finditer(rb'<Relationship[^>]*?Target="([^"]+)"[^>]*?Id="([^"]+)"', rels)
        }
    )
    parts: dict[str, str] = {}
    for m in re.finditer(rb"<(?:\w+:)?sheet\b([^>]*)/?>", wb):
        attrs = m.group(1)
        name = re.search(rb'name="([^"]*)"', attrs)
        rid = re.search(rb'r:id="([^"]*)"', attrs) or re.search(rb'\w+:id="([^"]*)"', attrs)
        if not name or not rid or rid.group(1).decode() not in targets:
            continue
        target = targets[rid.group(1).decode()].lstrip("/")
        part = target if target.startswith("xl/") else f"xl/{target}"
        parts[_xml_unescape(name.group(1).decode("utf-8"))] = part
    return parts


def _xml_unescape(s: str) -> str:
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


def _mark_formulas_without_value(data: bytes, sheets: list[Sheet], known: dict[str, bytes] | None = None) -> None:
    archive = _Parts(data, known)
    try:
        parts = _xlsx_sheet_parts(archive)
        for sheet in sheets:
            part = parts.get(sheet.name)
            if part is None or not archive.has(part):
                continue
            sheet.formulas_without_value.extend(formulas_without_value(archive.read(part)))
    finally:
        archive.close()


def formulas_without_value(xml: bytes) -> list[str]:
    """References of the cells of a worksheet part holding a formula but no cached value.

    Only the cells around each formula are looked at: a return has a handful
    of formulas (its totals) among thousands of cells.
    """
    found: list[str] = []
    end = 0
    for f in _FORMULA.finditer(xml):
        if f.start() < end:
            continue  # a second formula element in a cell already judged
        start = max(xml.rfind(b"<c" + after, 0, f.start()) for after in (b" ", b"\t", b"\r", b"\n", b">"))
        m = _CELL.match(xml, start) if start != -1 else None
        if m is None or m.end() <= f.start():
            continue  # not inside a cell
        end = m.end()
        body = m.group(2) or b""
        if b"<v>" not in body or b"<v></v>" in body:
            ref = _REF.search(m.group(1))
            if ref:
                found.append(ref.group(1).decode())
    return found


def xlsx_sheet_fonts(
    data: bytes, sheet_names: list[str], known: dict[str, bytes] | None = None
) -> dict[str, dict[tuple[int, int], str]] | None:
    """Font name per valued cell of each named sheet, only when the workbook uses a legacy font.

    Returns None when no .Vn*/VNI-* font is declared, which is the common case
    and costs one scan of styles.xml (``known``: the parts already inflated).
    Otherwise the font of a cell is that of its cell style, as openpyxl's
    ``cell.font`` gives it, read from styles.xml and the style index on each
    ``<c>`` of the worksheet part: building an openpyxl workbook for this cost
    ~8 ms a sheet, more than the rest of reading the return.
    """
    archive = _Parts(data, known)
    try:
        try:
            styles = archive.read("xl/styles.xml")
        except KeyError:
            return None
        if not _LEGACY_FONT.search(styles):
            return None
        style_fonts = _style_fonts(styles)
        parts = _xlsx_sheet_parts(archive)
        out: dict[str, dict[tuple[int, int], str]] = {}
        for name in sheet_names:
            part = parts.get(name)
            out[name] = _cell_fonts(archive.read(part), style_fonts) if part and archive.has(part) else {}
        return out
    except (SyntaxError, ValueError, KeyError, zipfile.BadZipFile):
        # ElementTree's ParseError is a SyntaxError. Fonts are only evidence for decoding:
        # a styles or sheet part calamine read past but that does not parse leaves the text to speak.
        return None
    finally:
        archive.close()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _style_fonts(styles: bytes) -> list[str | None]:
    """Font name of each cell style (``cellXfs`` index → its ``fontId``'s ``<name val>``)."""
    from xml.etree.ElementTree import fromstring  # see _cell_fonts

    root = fromstring(styles)
    fonts: list[str | None] = []
    xfs: list[int] = []
    for child in root:  # top-level only: <dxfs> holds <font>s of its own
        tag = _local(child.tag)
        if tag == "fonts":
            for font in child:
                name = next((el.get("val") for el in font if _local(el.tag) == "name"), None)
                fonts.append(name or None)
        elif tag == "cellXfs":
            xfs = [int(xf.get("fontId") or 0) for xf in child if _local(xf.tag) == "xf"]
    return [fonts[i] if 0 <= i < len(fonts) else None for i in xfs]


_REF_PARTS = re.compile(r"([A-Za-z]{1,3})([0-9]+)$")


# A cell as Excel, LibreOffice and openpyxl write it: r=, then s=, then t=, nothing else (openpyxl
# without lxml ends an empty one in " />"); a value follows when the start tag ends in ">" with
# more than blank space before "</c>" (as an XML parser sees it; the guards' twin of this pattern
# counts a blank body as a value, as their strict pattern does, so the two stay apart).
_WRITER_CELL = re.compile(
    rb'<c r="([A-Z]{1,3}[0-9]{1,7})"(?: s="([0-9]{1,9})")?(?: t="[A-Za-z]{1,9}")? ?(/>|>[ \t\r\n]*</c>|>)'
)


def _cell_fonts(xml: bytes, style_fonts: list[str | None]) -> dict[tuple[int, int], str]:
    """(row, column) from 0 → font name, for each cell of a worksheet part that holds a value."""
    fonts = _writer_cell_fonts(xml, style_fonts)
    return fonts if fonts is not None else _parsed_cell_fonts(xml, style_fonts)


def _writer_cell_fonts(xml: bytes, style_fonts: list[str | None]) -> dict[tuple[int, int], str] | None:
    """``_cell_fonts`` by one regex when every cell is in the writers' form, else None.

    Exact when it answers: the XML has nothing a regex misreads (comments, CDATA,
    processing instructions, prefixed names, UTF-16: ``unusual_xml``) and every
    place a cell starts matched the form, so every cell has its own r=.
    """
    start, end = xml.find(b"<sheetData"), xml.rfind(b"</sheetData>")
    if start == -1 or end == -1 or unusual_xml(xml):
        return None
    body = xml[start:end]
    cells = _WRITER_CELL.findall(body)
    if len(cells) != len(CELL_START.findall(body)):
        return None
    fonts: dict[tuple[int, int], str] = {}
    for ref, style, close in cells:
        if close != b">":
            continue  # no value
        index = int(style) if style else 0
        name = style_fonts[index] if index < len(style_fonts) else None
        if name:
            row, col = _position(ref.decode())
            fonts[(row - 1, col - 1)] = name
    return fonts


def _parsed_cell_fonts(xml: bytes, style_fonts: list[str | None]) -> dict[tuple[int, int], str]:
    """``_cell_fonts`` through an XML parser: any form the format allows."""
    # The standard library's C parser (defusedxml's is ~4x slower here): screen_bytes has
    # already refused any part declaring a DOCTYPE or entity, so there is nothing to expand.
    from xml.etree.ElementTree import fromstring

    fonts: dict[tuple[int, int], str] = {}
    for data in fromstring(xml):
        if _local(data.tag) != "sheetData":
            continue
        row_counter = 0
        for row_el in data:
            # Positions as calamine and openpyxl place them: a row without r= follows the row
            # before; a cell without r= is in its row's row, one column after the cell before.
            r = row_el.get("r")
            row_counter = int(r) if r and r.isdigit() else row_counter + 1
            col = 0
            for cell in row_el:
                position = _position(cell.get("r"))
                if position is not None:
                    row, col = position
                else:
                    row, col = row_counter, col + 1
                if len(cell):  # a cell without <v>/<is> holds no value
                    s = cell.get("s")
                    index = int(s) if s and s.isdigit() else 0
                    name = style_fonts[index] if index < len(style_fonts) else None
                    if name:
                        fonts[(row - 1, col - 1)] = name
    return fonts


@functools.lru_cache(maxsize=4096)
def _position(ref: str | None) -> tuple[int, int] | None:
    """"C12" → (12, 3), both from 1; None for a missing or malformed reference. Cached: every
    return uses the same few hundred references."""
    found = _REF_PARTS.match(ref or "")
    if found is None:
        return None
    return int(found.group(2)), column_number(found.group(1))


# <dcterms:modified xsi:type="dcterms:W3CDTF">2016-07-05T08:12:00Z</dcterms:modified> (.xlsx),
# <dc:date>2016-07-05T15:12:00.123456789</dc:date> (.ods meta.xml, local time).
_XLSX_SAVED = re.compile(rb"<dcterms:modified\b[^>]*>\s*([^<]{1,64}?)\s*</dcterms:modified>")
_ODS_SAVED = re.compile(rb"<dc:date>\s*([^<]{1,64}?)\s*</dc:date>")
_ISO_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[.,]\d+)?(Z|[+-]\d{2}:?\d{2})?")
_SECOND = "%Y-%m-%dT%H:%M:%S"
# A saved time without a zone (LibreOffice's meta.xml) is the clock of the district's
# computer: Vietnam's, UTC+7 all year (no daylight saving). Read as such, it compares
# with the UTC times of .xlsx and .xls returns.
RETURNS_LOCAL_ZONE = timezone(timedelta(hours=7), "ICT")


def saved_time(data: bytes, fmt: str, parts: dict[str, bytes] | None = None) -> str | None:
    """When the workbook was last saved by its own properties, not the file system's:
    ``YYYY-MM-DDTHH:MM:SS`` in UTC, or None when it does not say. .xlsx and .xls
    give UTC; an .ods gives local time, read as Vietnam's (``RETURNS_LOCAL_ZONE``).

    ``parts``: the .xlsx parts ``screen_bytes`` kept (docProps/core.xml among them).
    Returns whose files share a modification time (attachments saved together, a
    zip extracted) are told apart by it; see ``submissions.decide``.
    """
    try:
        if fmt in ("xlsx", "xlsm"):
            core = (parts or {}).get("docProps/core.xml")
            if core is None:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    core = zf.read("docProps/core.xml")
            found = _XLSX_SAVED.search(core)
        elif fmt == "ods":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                found = _ODS_SAVED.search(zf.read("meta.xml"))
        elif fmt == "xls":
            with olefile.OleFileIO(io.BytesIO(data)) as ole:
                when = ole.get_metadata().last_saved_time  # FILETIME, UTC
            return when.strftime(_SECOND) if isinstance(when, datetime) and when.year > 1601 else None
        else:
            return None
    except Exception:  # noqa: BLE001 - a missing or damaged property part only means "not known"
        return None
    return _iso_second(found.group(1).decode("ascii", "replace")) if found else None


def _iso_second(text: str) -> str | None:
    m = _ISO_TIME.fullmatch(text.strip())
    if m is None:
        return None
    stamp, zone = m.groups()
    try:
        when = datetime.fromisoformat(stamp + (zone or ""))  # Python 3.11 reads Z, +07:00 and +0700
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=RETURNS_LOCAL_ZONE)
    return when.astimezone(timezone.utc).strftime(_SECOND)


def is_blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())
