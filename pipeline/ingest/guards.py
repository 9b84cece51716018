"""Checks on a raw file's bytes before any spreadsheet parser sees them.

The raw folder is untrusted (files arrive by e-mail and USB stick), so nothing
here parses a workbook: zip containers are judged from their central directory
and then inflated in bounded chunks that are thrown away, OLE containers are
opened with olefile and only the BIFF record headers are walked.

Why each check exists:
- a zip bomb must be refused from the declared sizes, before anything inflates;
- the declared sizes can lie, so every entry is also inflated here (output
  discarded) and refused as soon as it produces more than it declared;
- calamine builds a dense grid from the furthest cell, so one value at
  XFD1048576 in a 5 KB file aborts the whole process on a failed allocation
  (not an exception we could catch); the furthest cell must therefore be found
  before parsing;
- entity declarations (billion laughs, external entities) are refused outright:
  calamine does not expand them, but no spreadsheet writer produces them, so
  they only come from an attacker; and because of this refusal, the parts the
  reader looks at itself (styles and sheets for cell fonts, read.py) can go
  through the standard library's fast XML parser.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from xml.parsers import expat

import olefile

from pipeline.checks.catalogue import Issue, make_issue

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Ceilings no genuine district return comes near (a return is ~250 rows × 11 columns)."""

    max_file_bytes: int = 20 * MB
    max_zip_entries: int = 2000
    max_uncompressed_bytes: int = 200 * MB
    # Spreadsheet XML compresses 10–30×; a ratio is only suspicious on a large
    # entry, because tiny entries (an empty styles part) compress absurdly well.
    max_compression_ratio: float = 100.0
    ratio_min_bytes: int = 1 * MB
    max_sheet_rows: int = 20_000
    max_sheet_cols: int = 200


SPREADSHEET_FORMATS = frozenset({"xlsx", "xlsm", "xlsb", "xls", "ods"})
ENCRYPTED_FORMATS = frozenset({"encrypted_ooxml", "encrypted_xls"})

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_EOCD = b"PK\x05\x06"
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_CHUNK = 1 * MB
_SMALL_PART = 64 * 1024


def sniff_format(data: bytes) -> str:
    """Name the container from its magic bytes and structure, never from the file name.

    Spreadsheets: 'xlsx', 'xlsm', 'xlsb', 'xls', 'ods'. Password-protected:
    'encrypted_ooxml' (an .xlsx/.xlsm with a password is an OLE file holding
    EncryptionInfo + EncryptedPackage), 'encrypted_xls' (BIFF FILEPASS record).
    Damaged containers: 'zip_damaged', 'ole_damaged'. Everything else: 'zip_other',
    'ole_other', 'html', 'xml', 'pdf', 'image', 'archive', 'rtf', 'csv', 'text',
    'empty', 'unknown'.
    """
    return _sniff(data)[0]


def check_bytes(data: bytes, file_name: str, limits: Limits = Limits()) -> Issue | None:
    """The refusal for a file that must not reach a parser, or None if it may be parsed."""
    return screen_bytes(data, file_name, limits)[1]


def screen_bytes(
    data: bytes, file_name: str, limits: Limits = Limits(), parts: dict[str, bytes] | None = None
) -> tuple[str, Issue | None]:
    """``(format, refusal)``: ``check_bytes`` and ``sniff_format`` with the container opened once.

    The format is ``sniff_format(data)``, except for a file refused before it is
    sniffed (empty: 'empty'; over the size limit: 'unknown'). When ``parts`` is
    a dict, the checked (inflated, size- and CRC-verified) XML parts an .xlsx
    reader needs again are put in it (worksheets, workbook, its relationships,
    styles), so they are not inflated twice.
    """
    if not data or data.count(0) == len(data):
        detail = "0 byte" if not data else "toàn byte 0"
        return "empty", make_issue("file_empty", file=file_name, detail=detail)
    if len(data) > limits.max_file_bytes:
        detail = f"{_size(len(data))}, giới hạn {_size(limits.max_file_bytes)}"
        return "unknown", make_issue("file_too_large", file=file_name, detail=detail)
    zf = _open_zip(data) if data[:4] in _ZIP_MAGICS else None
    found: dict[str, bytes] = {}
    fmt, detail = _sniff(data, zf, found)
    if fmt in ENCRYPTED_FORMATS:
        return fmt, make_issue("file_encrypted", file=file_name, detail=detail)
    if fmt == "zip_damaged":
        return fmt, _zip_damage(data, file_name)
    if fmt == "ole_damaged":
        return fmt, _ole_damage(data, file_name)
    if fmt in ("xlsx", "xlsm", "xlsb", "ods"):
        return fmt, _check_zip(data, fmt, file_name, limits, zf, parts)
    if fmt == "xls":
        return fmt, _check_xls(file_name, limits, found["biff"])
    return fmt, make_issue("file_not_spreadsheet", file=file_name, detail=detail)


def check_sheet_dimensions(rows: int, cols: int, limits: Limits = Limits()) -> bool:
    """True when a sheet of ``rows`` × ``cols`` is within what a return can need."""
    return rows <= limits.max_sheet_rows and cols <= limits.max_sheet_cols


# --------------------------------------------------------------------- sniffing


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error)


def _open_zip(data: bytes) -> zipfile.ZipFile | None:
    """The zip's central directory, or None when it cannot be read (a damaged container)."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS:
        return None


def _sniff(data: bytes, zf: zipfile.ZipFile | None = None, found: dict[str, bytes] | None = None) -> tuple[str, str]:
    """(format, Vietnamese description for a refusal); ``zf`` is the already opened zip, if any.
    ``found`` gets the .xls workbook stream under "biff" when one was read (so it is read once)."""
    if not data or data.count(0) == len(data):
        return "empty", "tệp rỗng"
    if data[:4] in _ZIP_MAGICS:
        return _sniff_zip(zf if zf is not None else _open_zip(data))
    if data[:8] == _OLE_MAGIC:
        return _sniff_ole(data, found)
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf", "tệp PDF"
    for magic, fmt, detail in _BINARY_MAGICS:
        if data.startswith(magic):
            return fmt, detail
    return _sniff_text(data[:8192])


_BINARY_MAGICS = (
    (b"\x89PNG\r\n\x1a\n", "image", "ảnh PNG"),
    (b"\xff\xd8\xff", "image", "ảnh JPEG"),
    (b"GIF87a", "image", "ảnh GIF"),
    (b"GIF89a", "image", "ảnh GIF"),
    (b"II*\x00", "image", "ảnh TIFF"),
    (b"MM\x00*", "image", "ảnh TIFF"),
    (b"Rar!\x1a\x07", "archive", "tệp nén RAR"),
    (b"7z\xbc\xaf\x27\x1c", "archive", "tệp nén 7z"),
    (b"\x1f\x8b", "archive", "tệp nén gzip"),
    (b"{\\rtf", "rtf", "văn bản RTF"),
)


def _sniff_zip(zf: zipfile.ZipFile | None) -> tuple[str, str]:
    if zf is None:
        return "zip_damaged", "tệp nén ZIP bị hỏng"
    try:
        names = {i.filename for i in zf.infolist()}
        if "xl/workbook.xml" in names:
            types = _read_small(zf, "[Content_Types].xml") if "[Content_Types].xml" in names else b""
            if b"macroenabled" in types.lower():
                return "xlsm", "bảng tính Excel có macro (.xlsm)"
            return "xlsx", "bảng tính Excel (.xlsx)"
        if "xl/workbook.bin" in names:
            return "xlsb", "bảng tính Excel nhị phân (.xlsb)"
        mime = _read_small(zf, "mimetype").strip() if "mimetype" in names else b""
    except _ZIP_ERRORS:
        return "zip_damaged", "tệp nén ZIP bị hỏng"
    if mime.startswith(_ODS_MIME):
        return "ods", "bảng tính OpenDocument (.ods)"
    if "word/document.xml" in names:
        return "zip_other", "tài liệu Word (.docx)"
    if "ppt/presentation.xml" in names:
        return "zip_other", "bản trình chiếu PowerPoint (.pptx)"
    if mime.startswith(b"application/vnd.oasis.opendocument.text"):
        return "zip_other", "văn bản OpenDocument (.odt)"
    if mime:
        return "zip_other", f"tài liệu OpenDocument ({mime.decode('ascii', 'replace')[:60]})"
    return "zip_other", "tệp nén ZIP"


def _read_small(zf: zipfile.ZipFile, name: str) -> bytes:
    with zf.open(name) as fh:
        return fh.read(_SMALL_PART)


def _sniff_ole(data: bytes, found: dict[str, bytes] | None = None) -> tuple[str, str]:
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            streams = {"/".join(p).lower() for p in ole.listdir(streams=True, storages=False)}
            if {"encryptioninfo", "encryptedpackage"} <= streams:
                return "encrypted_ooxml", "tệp Excel đặt mật khẩu"
            book = next((s for s in ("workbook", "book") if s in streams), None)
            if book is not None:
                biff = ole.openstream(book).read()
                if found is not None:
                    found["biff"] = biff
                if _biff_has_filepass(biff):
                    return "encrypted_xls", "tệp Excel 97–2003 đặt mật khẩu"
                return "xls", "bảng tính Excel 97–2003 (.xls)"
    except Exception:  # noqa: BLE001 - olefile raises assorted types on a damaged container
        return "ole_damaged", "tệp Office bị hỏng"
    if "worddocument" in streams:
        return "ole_other", "tài liệu Word 97–2003 (.doc)"
    if "powerpoint document" in streams:
        return "ole_other", "bản trình chiếu PowerPoint 97–2003 (.ppt)"
    if any(s.startswith("__substg1.0_") for s in streams):
        return "ole_other", "thư Outlook (.msg)"
    return "ole_other", "tệp Office không phải bảng tính"


def _sniff_text(head: bytes) -> tuple[str, str]:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", "replace")
    elif b"\x00" in head:
        return "unknown", "không rõ định dạng"
    else:
        text = head.decode("utf-8", "replace")
    low = text.lstrip("\ufeff \t\r\n").lower()
    if low.startswith("mime-version:") or "multipart/related" in low[:2048]:
        return "html", "trang web MHTML (xuất từ phần mềm, không phải tệp Excel thật)"
    if low.startswith(("<!doctype html", "<html")) or re.search(r"<(html|table|body)[\s>]", low[:4096]):
        return "html", "trang web HTML (xuất từ phần mềm, không phải tệp Excel thật)"
    if low.startswith("<"):
        if "urn:schemas-microsoft-com:office:spreadsheet" in low or 'progid="excel.sheet"' in low:
            return "xml", "bảng tính XML 2003 (SpreadsheetML), không phải .xlsx/.xls"
        return "xml", "tệp XML"
    lines = [ln for ln in low.splitlines()[:20] if ln.strip()]
    if lines and any(sum(ln.count(d) for ln in lines) >= len(lines) for d in (",", ";", "\t")):
        return "csv", "văn bản CSV"
    return "text", "tệp văn bản"


# ----------------------------------------------------------------------- zip


def _zip_damage(data: bytes, file_name: str) -> Issue:
    # Copying stops early → the end-of-central-directory record (always the
    # last ≤ 64 KB) is missing. If it is there, the damage is elsewhere.
    if _EOCD not in data[-(65536 + 22) :]:
        return make_issue("file_truncated", file=file_name, detail="thiếu phần cuối của tệp nén")
    return make_issue("file_corrupt", file=file_name, detail="cấu trúc tệp nén ZIP bị hỏng")


def _check_zip(
    data: bytes,
    fmt: str,
    file_name: str,
    limits: Limits,
    zf: zipfile.ZipFile | None = None,
    keep: dict[str, bytes] | None = None,
) -> Issue | None:
    zf = zf if zf is not None else zipfile.ZipFile(io.BytesIO(data))
    infos = [i for i in zf.infolist() if not i.is_dir()]

    def bomb(detail: str) -> Issue:
        return make_issue("file_zip_bomb", file=file_name, detail=detail)

    # Declared sizes first: nothing has been inflated yet.
    if len(infos) > limits.max_zip_entries:
        return bomb(f"có {_num(len(infos))} phần nén bên trong, giới hạn {_num(limits.max_zip_entries)}")
    total = sum(i.file_size for i in infos)
    if total > limits.max_uncompressed_bytes:
        return bomb(f"giải nén ra {_size(total)} từ tệp {_size(len(data))}")
    for i in infos:
        if i.file_size > limits.ratio_min_bytes and i.file_size > limits.max_compression_ratio * max(
            i.compress_size, 1
        ):
            return bomb(f"phần {i.filename} giải nén ra {_size(i.file_size)} từ {_size(i.compress_size)}")
    if total > limits.ratio_min_bytes and total > limits.max_compression_ratio * len(data):
        return bomb(f"giải nén ra {_size(total)} từ tệp {_size(len(data))}")

    if any(i.flag_bits & 0x1 for i in infos):
        return make_issue("file_encrypted", file=file_name, detail="tệp nén có mật khẩu")
    if fmt == "ods" and "META-INF/manifest.xml" in {i.filename for i in infos}:
        try:
            manifest = b"".join(_inflate(data, zf.getinfo("META-INF/manifest.xml")))
        except _Damage as exc:
            return make_issue(exc.code, file=file_name, detail=exc.detail)
        if b"encryption-data" in manifest:
            return make_issue("file_encrypted", file=file_name, detail="bảng tính .ods đặt mật khẩu")

    dims: dict[str, _SheetExtent] = {}
    for i in infos:
        is_xml = i.filename.lower().endswith((".xml", ".rels", ".vml", ".rdf"))
        entity_scan = _EntityScan() if is_xml else None
        is_sheet = fmt in ("xlsx", "xlsm") and _WORKSHEET_PART.match(i.filename) is not None
        # A sheet part of ordinary size is kept whole for the regex fast path;
        # a large one streams through expat so it never sits in memory.
        wanted = is_sheet or (keep is not None and fmt in ("xlsx", "xlsm") and i.filename in _READER_PARTS)
        whole: list[bytes] | None = [] if wanted and i.file_size <= _WHOLE_PART_BYTES else None
        extent = _SheetExtent() if is_sheet and whole is None else None
        try:
            for chunk in _inflate(data, i):
                if entity_scan is not None and entity_scan.feed(chunk):
                    return make_issue("file_xml_entities", file=file_name, detail=i.filename)
                if whole is not None:
                    whole.append(chunk)
                elif extent is not None:
                    extent.feed(chunk)
        except _Damage as exc:
            return make_issue(exc.code, file=file_name, detail=exc.detail)
        if whole is not None:
            content = b"".join(whole)
            if keep is not None:
                keep[i.filename] = content
            if is_sheet:
                extent = _sheet_extent(content)
        if extent is not None:
            extent.feed(b"", final=True)
            if extent.error is not None:
                return make_issue("file_corrupt", file=file_name, detail=f"XML của {i.filename}: {extent.error}")
            dims[i.filename] = extent

    for part, extent in dims.items():
        if not check_sheet_dimensions(extent.max_row, extent.max_col, limits):
            sheet = _xlsx_sheet_names(zf).get(part, part)
            return make_issue("file_too_many_rows", sheet=sheet, file=file_name, detail=_dims_detail(extent, limits))
    return None


class _Damage(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def _inflate(data: bytes, info: zipfile.ZipInfo):
    """Yield an entry's content in bounded chunks, checking it against the central directory.

    Written out rather than using ZipFile.open, which silently stops at the
    declared size: we want to know when an entry inflates to more than it
    declares, because other readers (calamine's Rust zip) may not stop there.
    """
    off = info.header_offset
    if off + _LOCAL_HEADER.size > len(data):
        raise _Damage("file_truncated", f"thiếu dữ liệu của phần {info.filename}")
    sig, _, _, method, *_rest, name_len, extra_len = _LOCAL_HEADER.unpack_from(data, off)
    if sig != b"PK\x03\x04" or method != info.compress_type:
        raise _Damage("file_corrupt", f"phần {info.filename} không đúng vị trí khai báo")
    start = off + _LOCAL_HEADER.size + name_len + extra_len
    if start + info.compress_size > len(data):
        raise _Damage("file_truncated", f"thiếu dữ liệu của phần {info.filename}")
    raw = memoryview(data)[start : start + info.compress_size]
    produced = 0
    crc = 0
    if info.compress_type == zipfile.ZIP_STORED:
        pieces = (bytes(raw[p : p + _CHUNK]) for p in range(0, len(raw), _CHUNK))
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        pieces = _deflate_pieces(raw, info.filename)
    else:
        raise _Damage("file_corrupt", f"phương thức nén {info.compress_type} không được hỗ trợ")
    for piece in pieces:
        produced += len(piece)
        if produced > info.file_size:
            raise _Damage("file_zip_bomb", f"phần {info.filename} giải nén ra nhiều hơn kích thước khai báo")
        crc = zlib.crc32(piece, crc)
        yield piece
    if produced != info.file_size or crc != info.CRC:
        raise _Damage("file_corrupt", f"dữ liệu phần {info.filename} bị hỏng (sai kích thước hoặc mã kiểm tra)")


def _deflate_pieces(raw: memoryview, name: str):
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        for p in range(0, len(raw), 64 * 1024):
            pending = bytes(raw[p : p + 64 * 1024])
            # max_length bounds each output piece, so a 1000:1 chunk never materialises whole.
            while pending:
                out = inflater.decompress(pending, _CHUNK)
                pending = inflater.unconsumed_tail
                if out:
                    yield out
        tail = inflater.flush()
        if tail:
            yield tail
    except zlib.error as exc:
        raise _Damage("file_corrupt", f"dữ liệu nén của phần {name} bị hỏng") from exc


class _EntityScan:
    """Finds <!DOCTYPE / <!ENTITY anywhere in an XML part, in UTF-8 or UTF-16.

    Entity declarations can only live in the DOCTYPE, which must precede the
    root element, so reading just the first few KB would look sufficient — but
    the prolog may hold arbitrarily long comments or whitespace before the
    DOCTYPE, so a fixed prefix can be dodged. The part is inflated anyway (size
    and CRC check), and a byte search over every chunk costs almost nothing.
    A literal "<!" cannot occur in character data (it would be written &lt;!).
    """

    _PATTERNS = tuple(
        word.encode(enc) for word in ("<!DOCTYPE", "<!ENTITY") for enc in ("utf-8", "utf-16-le", "utf-16-be")
    )
    _KEEP = max(len(p) for p in _PATTERNS) - 1

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> bool:
        buf = self._tail + chunk if self._tail else chunk
        # Every pattern holds a "!", which XML rarely has: one memchr, not six searches
        # slowed by the "<" that starts every tag.
        if b"!" in buf and any(p in buf for p in self._PATTERNS):
            return True
        self._tail = buf[-self._KEEP :]
        return False


_WORKSHEET_PART = re.compile(r"^xl/worksheets/[^/]+\.xml$", re.IGNORECASE)
_HUGE = 10**9
_WHOLE_PART_BYTES = 32 * MB
# Parts besides the worksheets that pipeline.ingest.read looks at again.
_READER_PARTS = frozenset({"xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/styles.xml", "docProps/core.xml"})

# Fast path for the furthest cell. Every place a <c> element can start ("<c"
# then whitespace, "/" or ">") is counted; the strict pattern below reads a
# start tag exactly as an XML parser would, but only in the plain form writers
# produce: double-quoted values free of < > & and exactly one r="A1"-style
# reference. When every start is matched by it, the references it read are the
# sheet's cells; otherwise (or with comments, CDATA, processing instructions,
# namespace prefixes, non-UTF-8 text) expat decides, as before.
CELL_START = re.compile(rb"<c[ \t\r\n/>]")
_ATTR = rb'[ \t\r\n]+(?!r=)[A-Za-z_][\w:.-]*="[^"<>&]*"'
_STRICT_CELL = re.compile(
    rb"<c(?:" + _ATTR + rb')*[ \t\r\n]+r="([A-Z]{1,3})([0-9]{1,7})"(?:' + _ATTR + rb")*[ \t\r\n]*(/>|></c>|>)"
)
_PREFIXED_CELL = re.compile(rb"<[A-Za-z_][\w.-]*:c[ \t\r\n/>]")
# The form Excel, LibreOffice and openpyxl write every cell in (r=, then s=, then t=; openpyxl
# without lxml ends an empty one in " />"): a case of the strict pattern, with the same groups,
# that a regex matches in half the time. Tried first.
_WRITER_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"(?: s="[0-9]{1,9}")?(?: t="[A-Za-z]{1,9}")? ?(/>|></c>|>)')


class _KnownExtent:
    """The result of the fast path, shaped like a finished _SheetExtent."""

    error: str | None = None

    def __init__(self, max_row: int, max_col: int) -> None:
        self.max_row = max_row
        self.max_col = max_col

    def feed(self, chunk: bytes, final: bool = False) -> None:
        pass


def _sheet_extent(xml: bytes) -> _KnownExtent | _SheetExtent:
    """The furthest value-bearing cell of a whole worksheet part: regex when it is plain, else expat."""
    found = _plain_cells(xml)
    if found is not None:
        return _KnownExtent(*found)
    extent = _SheetExtent()
    extent.feed(xml)
    return extent


def unusual_xml(xml: bytes) -> bool:
    """Text the regexes do not read like a parser: UTF-16, comments/CDATA/DOCTYPE, PIs, prefixed cells."""
    # "!" is rare and "<" starts every tag: memchr first asks whether "!" is there at all.
    return (
        b"\x00" in xml
        or (b"!" in xml and b"<!" in xml)
        or xml.find(b"<?", 1) != -1
        or (b":c" in xml and _PREFIXED_CELL.search(xml) is not None)
    )


def _plain_cells(xml: bytes) -> tuple[int, int] | None:
    """The exact valued extent of a sheet in the plain form (strict start tags), or None."""
    if unusual_xml(xml):
        return None
    starts = len(CELL_START.findall(xml))
    cells = _WRITER_CELL.findall(xml)
    if len(cells) != starts:
        cells = _STRICT_CELL.findall(xml)
        if len(cells) != starts:
            return None
    # Cells without a child (<c r="A5" s="3"/>, <c …></c>) hold no value; calamine skips them.
    valued = [c for c in cells if c[2] == b">"]
    if not valued:
        return 0, 0
    max_row = max(map(int, [c[1] for c in valued]))
    return max_row, max(column_number(x.decode()) for x in {c[0] for c in valued})


class _SheetExtent:
    """The furthest value-bearing cell of a worksheet XML, from a stream of chunks.

    A real (expat) parser rather than a regex, because XML allows quoting tricks
    (a ">" inside an attribute value) that a pattern can be fooled by. Positions
    follow a reader's rules: an explicit r= wins, a cell or row without one
    follows its predecessor. Cells without a child element (<c r="A5" s="3"/>)
    hold no value and calamine skips them, so formatting far down a sheet does
    not count. DOCTYPE is refused here too, so expat never expands an entity.
    """

    def __init__(self) -> None:
        self.max_row = 0
        self.max_col = 0
        self.error: str | None = None
        self._row = 0
        self._col = 0
        self._in_cell = False
        self._cell_has_value = False
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._parser.EntityDeclHandler = self._doctype

    def feed(self, chunk: bytes, final: bool = False) -> None:
        if self.error is None:
            try:
                self._parser.Parse(chunk, final)
            except (expat.ExpatError, ValueError) as exc:
                self.error = str(exc)

    def _doctype(self, *_args) -> None:
        raise ValueError("DOCTYPE")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        # Local names only: calamine matches elements by local name whatever the namespace.
        local = name.rpartition(" ")[2]
        if local == "c":
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                digits = ref[len(letters) :]
                if digits:
                    self._row = _int(digits)
                self._col = column_number(letters) if letters else self._col + 1
            else:
                self._col += 1
            self._in_cell = True
            self._cell_has_value = False
        elif local == "row":
            ref = attrs.get("r", "")
            self._row = _int(ref) if ref.isdigit() else self._row + 1
            self._col = 0
        elif self._in_cell:
            self._cell_has_value = True

    def _end(self, name: str) -> None:
        if name.rpartition(" ")[2] == "c":
            if self._cell_has_value:
                self.max_row = max(self.max_row, self._row)
                self.max_col = max(self.max_col, self._col)
            self._in_cell = False


def _int(digits: str) -> int:
    return _HUGE if len(digits) > 9 else int(digits)


def column_number(letters: str) -> int:
    """Excel column letters → number from 1 ("C" → 3); too many letters count as too far."""
    if len(letters) > 5:
        return _HUGE
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n


def _xlsx_sheet_names(zf: zipfile.ZipFile) -> dict[str, str]:
    """Worksheet part → sheet title, for naming the sheet in a refusal (best effort)."""
    import defusedxml.ElementTree as ET  # parts were already checked for DOCTYPE

    try:
        rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
        targets = {
            r.get("Id"): "xl/" + r.get("Target", "").lstrip("/").removeprefix("xl/") for r in rels if r.get("Id")
        }
        book = ET.fromstring(zf.read("xl/workbook.xml"))
        out = {}
        for el in book.iter():
            if el.tag.endswith("}sheet"):
                rid = next((v for k, v in el.attrib.items() if k.endswith("}id")), None)
                if rid in targets:
                    out[targets[rid]] = el.get("name", "")
        return out
    except Exception:  # noqa: BLE001 - only a nicer name is lost
        return {}


def _dims_detail(extent: _SheetExtent, limits: Limits) -> str:
    rows = "quá nhiều" if extent.max_row >= _HUGE else _num(extent.max_row)
    cols = "quá nhiều" if extent.max_col >= _HUGE else _num(extent.max_col)
    return f"{rows} dòng × {cols} cột, giới hạn {_num(limits.max_sheet_rows)} dòng × {_num(limits.max_sheet_cols)} cột"


# ----------------------------------------------------------------------- OLE


def _ole_damage(data: bytes, file_name: str) -> Issue:
    # OLE files are whole sectors (512 B, or 4096 B in version 4); a partial
    # last sector means the copy stopped early.
    shift = struct.unpack_from("<H", data, 30)[0] if len(data) >= 32 else 9
    sector = 1 << shift if shift in (9, 12) else 512
    if len(data) < 512 or len(data) % sector:
        return make_issue("file_truncated", file=file_name, detail="thiếu phần cuối của tệp")
    return make_issue("file_corrupt", file=file_name, detail="cấu trúc tệp Office bị hỏng")


def _check_xls(file_name: str, limits: Limits, biff: bytes) -> Issue | None:
    """``biff``: the workbook stream, as sniffing read it (a container it could not read is not "xls")."""
    try:
        extents = _biff_extents(biff)
    except _Damage as exc:
        return make_issue(exc.code, file=file_name, detail=exc.detail)
    for sheet, (rows, cols) in extents.items():
        if not check_sheet_dimensions(rows, cols, limits):
            detail = (
                f"{_num(rows)} dòng × {_num(cols)} cột, "
                f"giới hạn {_num(limits.max_sheet_rows)} dòng × {_num(limits.max_sheet_cols)} cột"
            )
            return make_issue("file_too_many_rows", sheet=sheet, file=file_name, detail=detail)
    return None


_BOF, _EOF, _FILEPASS, _BOUNDSHEET = 0x0809, 0x000A, 0x002F, 0x0085
# Records that put a value in a cell: FORMULA, NUMBER, RK, LABELSST, LABEL,
# BOOLERR, RSTRING (all start with row, col), and MULRK (row, first col … last col).
# BLANK/MULBLANK carry formatting only and readers skip them.
_CELL_RECORDS = {0x0006, 0x0203, 0x027E, 0x00FD, 0x0204, 0x0205, 0x00D6}
_MULRK = 0x00BD


def _biff_records(biff: bytes):
    pos = 0
    while pos + 4 <= len(biff):
        rtype, size = struct.unpack_from("<HH", biff, pos)
        if pos + 4 + size > len(biff):
            raise _Damage("file_corrupt", "bản ghi trong bảng tính .xls bị cắt ngang")
        yield pos, rtype, biff[pos + 4 : pos + 4 + size]
        pos += 4 + size


def _biff_has_filepass(biff: bytes) -> bool:
    """FILEPASS sits in the workbook globals, before the first EOF; later records are encrypted."""
    try:
        for _, rtype, _body in _biff_records(biff):
            if rtype == _FILEPASS:
                return True
            if rtype == _EOF:
                return False
    except _Damage:
        return False
    return False


def _biff_extents(biff: bytes) -> dict[str, tuple[int, int]]:
    """Sheet name → (rows, cols) up to its furthest value cell, from the BIFF record stream."""
    # One flat loop over the records (a return has a few hundred): unpacking at offsets,
    # with the current sheet's extent in locals, costs less than half of walking _biff_records.
    names: dict[int, str] = {}
    extents: dict[str, tuple[int, int]] = {}
    current: str | None = None
    rows = cols = 0
    biff8 = True
    unpack, size_of, cells = struct.unpack_from, len(biff), _CELL_RECORDS
    pos = 0
    while pos + 4 <= size_of:
        rtype, size = unpack("<HH", biff, pos)
        body, end = pos + 4, pos + 4 + size
        if end > size_of:
            raise _Damage("file_corrupt", "bản ghi trong bảng tính .xls bị cắt ngang")
        if (rtype in cells or rtype == _MULRK) and current is not None and size >= 4:
            row, col = unpack("<HH", biff, body)
            if rtype == _MULRK and size >= 6:
                col = unpack("<H", biff, end - 2)[0]
            if row >= rows:
                rows = row + 1
            if col >= cols:
                cols = col + 1
        elif rtype == _BOF:
            if current is not None:
                extents[current] = (rows, cols)
            if pos == 0 and size >= 2:
                biff8 = unpack("<H", biff, body)[0] == 0x0600
            current = names.get(pos, f"#{len(extents) + 1}") if pos else None
            if current is not None:
                rows, cols = extents.setdefault(current, (0, 0))
        elif rtype == _BOUNDSHEET and current is None and size >= 7:
            names[unpack("<I", biff, body)[0]] = _biff_sheet_name(biff[body:end], biff8)
        pos = end
    if current is not None:
        extents[current] = (rows, cols)
    return extents


def _biff_sheet_name(body: bytes, biff8: bool) -> str:
    cch = body[6]
    if not biff8:
        return body[7 : 7 + cch].decode("cp1252", "replace")
    wide = len(body) > 7 and body[7] & 0x1
    raw = body[8 : 8 + cch * (2 if wide else 1)]
    return raw.decode("utf-16-le" if wide else "latin-1", "replace")


# ------------------------------------------------------------------ wording


def _num(n: int) -> str:
    """Vietnamese grouping: 20.000."""
    return f"{n:,}".replace(",", ".")


def _size(n: int) -> str:
    """Vietnamese sizes with a decimal comma: 312 MB, 0,3 MB, 45 KB."""
    if n >= 10 * MB:
        return f"{_num(round(n / MB))} MB"
    if n >= MB // 10:
        return f"{n / MB:.1f}".replace(".", ",") + " MB"
    return f"{max(1, round(n / 1024))} KB"
