"""Find the return's table on a sheet grid: header, column mapping, data rows, totals row.

Districts edit the province template freely (extra title rows, reordered or
renamed columns, one- or two-row headers, blank rows, totals row first or last,
a signature block), so nothing here relies on fixed positions. Column labels are
matched against the vocabulary in ``header_labels.csv`` (data, not code) after a
normalisation that removes case, diacritics, punctuation and line breaks.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

from pipeline.ingest.model import FIELDS, REQUIRED_FIELDS, Layout, Sheet

_LABELS_CSV = Path(__file__).with_name("header_labels.csv")

# The header is near the top; scanning a bounded window keeps huge sheets cheap.
HEADER_SEARCH_ROWS = 200
# Below this a label is too weak to claim a column.
MIN_MATCH = 0.5
# Fields that say something about the agency cell; a "chi bộ" label points to them.
_CELL_FIELDS = frozenset({"eligible", "has_cell", "established_on", "basis", "cell_members"})

# Abbreviations clerks use in headers, expanded on both sides so that "Số ĐV" and
# "Số đảng viên" compare equal without listing every combination in the CSV.
_ABBREVIATIONS = {
    "dv": ("dang", "vien"),
    "tl": ("thanh", "lap"),
    "dk": ("dieu", "kien"),
    "dktl": ("dieu", "kien", "thanh", "lap"),
    "cbcq": ("chi", "bo", "co", "quan"),
    "hd": ("huong", "dan"),
}

_TOTAL_RE = re.compile(
    r"^(tong cong( .*)?|cong|cong chung|cong (xa|phuong|thi tran|cac)( .*)?|tong|tong so|tong so chung"
    r"|toan (huyen|thi xa|thanh pho|quan|tinh|dang bo)( .*)?)$"
)
_SIGNATURE_PREFIXES = (
    "nguoi lap bieu",
    "nguoi lap",
    "nguoi bao cao",
    "nguoi tong hop",
    "t m",
    "tm",
    "k t",
    "kt",
    "noi nhan",
    "ky ten",
    "ky ghi ro",
    "ky va ghi ro",
    "ky dong dau",
    "xac nhan",
    "bi thu",
    "pho bi thu",
    "truong ban",
    "pho truong ban",
)
_DATE_LINE_RE = re.compile(r"\bngay\b.{0,16}\bthang\b.{0,16}\bnam\b")
_NUMBER_TEXT_RE = re.compile(r"^[+-]?\d{1,3}([.,\s]\d{3})+$|^[+-]?\d+([.,]\d+)?$")
_COLUMN_NUMBER_RE = re.compile(r"^[\(\[]?\s*(\d{1,2}|[A-Za-z])\s*[\)\]]?(\s*[=+\-*/:x]\s*[\(\[]?\s*\w{1,2}\s*[\)\]]?)*$")
_UNIT_PREFIX_RE = re.compile(r"^(xa|phuong|thi tran|tt|p)\b")
_SUBTOTAL_RE = re.compile(r"^(?:tong cong|tong so|tong|cong)\s+(?:cac\s+|khoi\s+)?(?:xa|phuong|thi tran)\b")
# A heading row that groups units by type ("I. PHƯỜNG", "B - Các xã", "Khối thị trấn"):
# a unit is never named by its type alone, so such a row is never a unit.
_SECTION_RE = re.compile(
    r"^(?:(?:[ivx]{1,4}|[a-e]|\d{1,2})\s+)?(?:(?:cac|khoi|don vi|dang bo)\s+)?"
    r"(?:xa|phuong|thi tran)(?:\s+(?:va\s+)?(?:xa|phuong|thi tran))*$"
)


# --------------------------------------------------------------------------- text


def label_key(text: Any) -> str:
    """Normalise a label for comparison: NFC, casefold, đ→d, no diacritics, no punctuation."""
    if text is None:
        return ""
    return _label_key(text if type(text) is str else str(text))


_NON_WORD = re.compile(r"[\W_]+")


# Cell texts repeat across rows and returns (template headers, the same unit names
# every period), so normalising each distinct text once pays for the cache.
@lru_cache(maxsize=65536)
def _label_key(s: str) -> str:
    s = unicodedata.normalize("NFC", s)
    s = s.replace("đ", "d").replace("Đ", "d").replace("ð", "d").replace("Ð", "d")
    s = unicodedata.normalize("NFD", s.casefold())
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = _NON_WORD.sub(" ", s)
    return " ".join(s.split())


def _tokens(text: Any) -> tuple[str, ...]:
    if text is None:
        return ()
    return _str_tokens(text if type(text) is str else str(text))


@lru_cache(maxsize=65536)
def _str_tokens(s: str) -> tuple[str, ...]:
    out: list[str] = []
    for tok in _label_key(s).split():
        out.extend(_ABBREVIATIONS.get(tok, (tok,)))
    return tuple(out)


def column_letter(idx: int) -> str:
    """0-based column index to Excel letters (0 → 'A', 26 → 'AA')."""
    if idx < 0:
        raise ValueError(f"negative column index {idx}")
    letters = ""
    n = idx + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def cell_ref(row_idx: int, col_idx: int) -> str:
    """0-based grid position to an Excel reference ((11, 6) → 'G12')."""
    return f"{column_letter(col_idx)}{row_idx + 1}"


# --------------------------------------------------------------------------- vocabulary


@cache
def _vocabulary() -> dict[str, tuple[tuple[tuple[str, ...], frozenset[str]], ...]]:
    labels: dict[str, list[tuple[tuple[str, ...], frozenset[str]]]] = {f: [] for f in FIELDS}
    with _LABELS_CSV.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            fld = row["field"].strip()
            if fld not in labels:
                raise ValueError(f"header_labels.csv: unknown field {fld!r}")
            toks = _tokens(row["label"])
            if toks and (toks, frozenset(toks)) not in labels[fld]:
                labels[fld].append((toks, frozenset(toks)))
    return {f: tuple(v) for f, v in labels.items()}


def _label_score(col: tuple[str, ...], sub: tuple[str, ...], label: tuple[str, ...], label_set: frozenset[str]) -> float:
    if col == label or sub == label:
        return 1.0
    col_set, sub_set = frozenset(col), frozenset(sub)
    if col_set == label_set or sub_set == label_set:
        return 0.95
    best = 0.0
    # The label is inside a longer header text ("Tên đơn vị hành chính (xã, phường...)").
    for have in (col_set, sub_set):
        if have and label_set < have:
            best = max(best, 0.5 + 0.4 * len(label_set) / len(have))
    # The header is an abbreviation of a longer label ("Ngày" for "Ngày thành lập").
    if col_set and col_set < label_set:
        best = max(best, 0.3 + 0.5 * len(col_set) / len(label_set))
    overlap = len(col_set & label_set)
    if overlap >= 2:
        best = max(best, 0.7 * overlap / len(col_set | label_set))
    ratio = fuzz.ratio(" ".join(col), " ".join(label))
    if ratio >= 88:
        best = max(best, 0.9 * ratio / 100)
    return best


def _has_cell_context(tokens: tuple[str, ...]) -> bool:
    return any(tokens[i : i + 2] == ("chi", "bo") for i in range(len(tokens) - 1))


@lru_cache(maxsize=4096)
def _field_scores(col: tuple[str, ...], sub: tuple[str, ...]) -> dict[str, float]:
    """How well a column's header text (group + sub label, and sub label alone) fits each field."""
    scores: dict[str, float] = {}
    cell_context = _has_cell_context(col)
    for fld, labels in _vocabulary().items():
        s = max((_label_score(col, sub, toks, lset) for toks, lset in labels), default=0.0)
        # "Số đảng viên" under a "Chi bộ cơ quan" group counts the cell, not the unit.
        if fld == "total_members" and cell_context:
            s *= 0.5
        if s >= MIN_MATCH:
            scores[fld] = s
    return scores


# --------------------------------------------------------------------------- cells


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _text(v: Any) -> str:
    if isinstance(v, str):
        return _str_text(v)
    if v is None:
        return ""
    if isinstance(v, (dt.datetime, dt.date)):
        return v.strftime("%d/%m/%Y")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return " ".join(str(v).split())


@lru_cache(maxsize=65536)
def _str_text(v: str) -> str:
    return " ".join(v.split())


# Any character that could be a letter; str.isalpha() confirms (a few numeric
# symbols such as "½" are word characters but not letters).
_MAYBE_ALPHA = re.compile(r"[^\W\d_]")


def _is_label(v: Any) -> bool:
    return isinstance(v, str) and _str_is_label(v)


@lru_cache(maxsize=65536)
def _str_is_label(v: str) -> bool:
    m = _MAYBE_ALPHA.search(v)
    return m is not None and (m.group().isalpha() or any(ch.isalpha() for ch in v))


def _is_numeric(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float, dt.date, dt.datetime)):
        return True
    if isinstance(v, str):
        return _str_is_numeric(v)
    return False


@lru_cache(maxsize=65536)
def _str_is_numeric(v: str) -> bool:
    s = v.replace("\xa0", " ").strip().replace(" ", "")
    return bool(s) and bool(_NUMBER_TEXT_RE.match(s))


def _all_blank(values: list[Any]) -> bool:
    """``all(map(_blank, values))`` without a call per cell (the body walk asks it of every row)."""
    for v in values:
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return False
    return True


def _at(row: list[Any], c: int | None) -> Any:
    """The value in column ``c`` of one row; None past its end or for no column."""
    return row[c] if c is not None and 0 <= c < len(row) else None


def _cell(rows: list[list[Any]], r: int, c: int) -> Any:
    if 0 <= r < len(rows) and 0 <= c < len(rows[r]):
        return rows[r][c]
    return None


def _is_number_row(row: list[Any]) -> bool:
    """A row of column numbers under the header: "(1) (2) … (11)", "1 2 3", "A B 1 2"."""
    cells = [v for v in row if not _blank(v)]
    if len(cells) < 3:
        return False
    firsts: list[int] = []
    for v in cells:
        if isinstance(v, bool):
            return False
        if isinstance(v, (int, float)):
            if not float(v).is_integer() or not 0 <= v <= 60:
                return False
            firsts.append(int(v))
            continue
        s = str(v).strip()
        if not _COLUMN_NUMBER_RE.match(s):
            return False
        m = re.search(r"\d+", s)
        if m:
            firsts.append(int(m.group()))
    return len(firsts) * 2 >= len(cells) and all(a < b for a, b in zip(firsts, firsts[1:]))


# --------------------------------------------------------------------------- header


class _Merges:
    """Lookup of merged ranges for the rows where a header may sit."""

    def __init__(self, sheet: Sheet, max_row: int, width: int):
        self.at: dict[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]] = {}
        for rng in sheet.merged:
            (r0, c0), (r1, c1) = rng
            if r0 > max_row or (r0 == r1 and c0 == c1):
                continue
            for r in range(r0, min(r1, max_row) + 1):
                for c in range(c0, min(c1, width - 1) + 1):
                    self.at[(r, c)] = rng

    def value(self, rows: list[list[Any]], r: int, c: int) -> Any:
        rng = self.at.get((r, c))
        if rng is None:
            return _cell(rows, r, c)
        return _cell(rows, rng[0][0], rng[0][1])


def _columns_single(rows: list[list[Any]], r: int) -> list[tuple[int, tuple[str, ...], tuple[str, ...], str]]:
    out = []
    for c, v in enumerate(rows[r]):
        if _is_label(v):
            toks = _tokens(v)
            if toks:
                out.append((c, toks, toks, _text(v)))
    return out


def _columns_pair(rows: list[list[Any]], merges: _Merges, r: int, width: int):
    """Column labels of a two-row header: group label above (merged or not) + sub label."""
    out = []
    carry = ""  # group label of an unmerged group cell, carried right over its sub-columns
    for c in range(width):
        top_rng = merges.at.get((r, c))
        if top_rng is not None and top_rng[1][0] > r:  # merged down over both rows: one label
            v = merges.value(rows, r, c)
            carry = ""
            if _is_label(v) and top_rng[0][1] == c:
                toks = _tokens(v)
                out.append((c, toks, toks, _text(v)))
            continue
        top = merges.value(rows, r, c)
        bottom = merges.value(rows, r + 1, c)
        bot_rng = merges.at.get((r + 1, c))
        if bot_rng is not None and bot_rng[0][1] != c:
            bottom = None  # a merged sub label is read once, at its first column
        top_text = _text(top) if _is_label(top) else ""
        bot_text = _text(bottom) if _is_label(bottom) else ""
        if top_rng is None:
            if top_text and bot_text:
                carry = top_text
            elif not top_text and bot_text:
                top_text = carry
            else:
                carry = ""
        elif top_rng[0][1] != c and not bot_text:
            continue  # inside a merged label without a sub label: already read at its first column
        if not top_text and not bot_text:
            continue
        parts = [t for t in (top_text, bot_text) if t]
        sub = bot_text or top_text
        out.append((c, _tokens(" ".join(parts)), _tokens(sub), " - ".join(parts)))
    return out


def _assign(columns) -> tuple[dict[str, int], dict[str, float]]:
    """Give each field at most one column and each column at most one field, best fits first."""
    pairs = []
    for c, col, sub, _ in columns:
        for fld, s in _field_scores(col, sub).items():
            pairs.append((-s, c, FIELDS.index(fld), fld))
    pairs.sort()
    mapping: dict[str, int] = {}
    quality: dict[str, float] = {}
    used: set[int] = set()
    for neg, c, _, fld in pairs:
        if fld in mapping or c in used:
            continue
        mapping[fld] = c
        quality[fld] = -neg
        used.add(c)
    return mapping, quality


def _acceptable(mapping: dict[str, int]) -> bool:
    return "unit_name" in mapping and len(mapping) >= 3


def _row_is_data_like(row: list[Any]) -> bool:
    return sum(map(_is_numeric, row)) >= 2 or _is_number_row(row)


def _find_header(sheet: Sheet):
    """The best header (rows, columns, mapping, quality) in the first HEADER_SEARCH_ROWS rows, or None.

    Every row is a candidate one-row header and, with the row under it, a
    two-row one; the best has the most fields mapped, then the best fit, then
    one row rather than two, then the earliest. Candidates are tried in order
    of how many fields they could map at most, and the search stops at the
    first that could not reach the best found: same answer as trying them
    all, without reading the title and signature rows once the header is known.
    """
    rows = sheet.rows
    limit = min(len(rows), HEADER_SEARCH_ROWS)
    n = min(len(rows), limit + 1)
    width = max((len(rows[r]) for r in range(n)), default=0)
    merges = _Merges(sheet, limit + 1, width)
    label_counts = [sum(map(_str_is_label, [v for v in rows[r] if isinstance(v, str)])) for r in range(n)]
    # A merged range gives at most one column label per row it covers.
    ranges_in_row = [0] * n
    for (r0, _), (r1, _) in set(merges.at.values()):
        for r in range(r0, min(r1, n - 1) + 1):
            ranges_in_row[r] += 1
    # (most fields it could map, row, rows in the header). A one-row header maps
    # at most one field per label cell; a two-row header one per label cell or
    # merged range in either row.
    candidates = []
    for r in range(limit):
        if label_counts[r] >= 3:
            candidates.append((label_counts[r], r, 1))
        if r + 1 < len(rows) and label_counts[r + 1] and (label_counts[r] or ranges_in_row[r]):
            candidates.append((label_counts[r] + ranges_in_row[r] + label_counts[r + 1] + ranges_in_row[r + 1], r, 2))
    candidates.sort(key=lambda t: -t[0])
    best = None
    best_key = None
    for most, r, height in candidates:
        if best_key is not None and most < best_key[0]:
            break  # neither this candidate nor any after it can map as many fields
        if height == 1:
            columns = _columns_single(rows, r)
        elif _row_is_data_like(rows[r + 1]):
            continue  # a header's second row is not data
        else:
            columns = _columns_pair(rows, merges, r, width)
        if len(columns) < 3:
            continue
        mapping, quality = _assign(columns)
        if not _acceptable(mapping):
            continue
        header_rows = list(range(r, r + height))
        key = (len(mapping), round(sum(quality.values()), 6), -height, -r)
        if best_key is None or key > best_key:
            best_key = key
            best = (header_rows, columns, mapping, quality)
    return best


# --------------------------------------------------------------------------- body


def _is_totals(row: list[Any], columns: dict[str, int], span: range) -> bool:
    first = next((c for c, v in enumerate(row[span.start : span.stop], span.start) if not _blank(v)), None)
    for c in (columns.get("unit_name"), columns.get("stt"), first):
        v = _at(row, c)
        if isinstance(v, str) and _TOTAL_RE.match(label_key(v)):
            return True
    return False


def _signature_text(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    key = label_key(v)
    if not key:
        return False
    if any(key == p or key.startswith(p + " ") for p in _SIGNATURE_PREFIXES):
        return True
    return bool(_DATE_LINE_RE.search(key))


def _is_signature(row: list[Any], columns: dict[str, int]) -> bool:
    # A unit row that mentions "xác nhận" or a date in its note still has its counts and its name.
    for fld in ("total_members", "cell_members"):
        if fld in columns and _is_numeric(_at(row, columns[fld])):
            return False
    name = _at(row, columns.get("unit_name"))
    if not _blank(name) and not _signature_text(name):
        return False
    return any(_signature_text(v) for v in row)


def _is_section(row: list[Any], columns: dict[str, int], span: range) -> bool:
    for fld in ("total_members", "cell_members"):
        if fld in columns and _is_numeric(_at(row, columns[fld])):
            return False
    name = _at(row, columns.get("unit_name"))
    texts = [name] if not _blank(name) else [v for c in span if isinstance(v := _at(row, c), str) and v.strip()]
    return bool(texts) and bool(_SECTION_RE.match(label_key(texts[-1])))


def _looks_like_unit(row: list[Any], columns: dict[str, int], span: range) -> bool:
    name = _at(row, columns.get("unit_name"))
    if _blank(name):
        return False
    if _UNIT_PREFIX_RE.match(label_key(name)):
        return True
    return any(_is_numeric(_at(row, c)) for c in span if c != columns.get("unit_name"))


def _body(rows: list[list[Any]], start: int, columns: dict[str, int], span: range):
    data: list[int] = []
    totals: list[int] = []
    r = start
    # The column-number row sits right under the header, possibly after a blank row.
    while r < len(rows) and _all_blank(rows[r][span.start : span.stop]):
        r += 1
    if r < len(rows) and _is_number_row([_cell(rows, r, c) for c in span]):
        r += 1
    blank_run = 0
    for r in range(r, len(rows)):
        row = rows[r]
        if _all_blank(row[span.start : span.stop]):
            blank_run += 1
            continue
        if _is_signature(row, columns):
            break
        if _is_totals(row, columns, span):
            totals.append(r)
            blank_run = 0
            continue
        if _is_section(row, columns, span):
            blank_run = 0
            continue
        ended_block = blank_run >= 2 or (totals and data and totals[-1] > data[-1])
        if ended_block and not _looks_like_unit(row, columns, span):
            break
        data.append(r)
        blank_run = 0
    return data, totals


def _pick_totals(rows: list[list[Any]], totals: list[int], columns: dict[str, int], span: range) -> int | None:
    """Of several total-like rows (sub-totals by type, then a grand total), keep the grand total."""
    if not totals:
        return None
    grand = re.compile(r"^(tong cong( toan .*)?|tong so|tong|cong|cong chung|toan .*)$")
    for r in reversed(totals):
        for c in [columns.get("unit_name"), columns.get("stt"), *span]:
            if c is not None and isinstance(_cell(rows, r, c), str) and grand.match(label_key(rows[r][c])):
                return r
    # A sub-total of one type ("Cộng xã") covers only its group: without a grand
    # total there are no declared totals for the whole return.
    others = [r for r in totals if not _is_subtotal(rows[r], columns, span)]
    return others[0] if others else None


def _is_subtotal(row: list[Any], columns: dict[str, int], span: range) -> bool:
    for c in [columns.get("unit_name"), columns.get("stt"), *span]:
        v = _at(row, c)
        if isinstance(v, str) and v.strip():
            return bool(_SUBTOTAL_RE.match(label_key(v)))
    return False


def _title_lines(rows: list[list[Any]], end: int) -> list[str]:
    lines = []
    for r in range(end):
        parts = [_text(v) for v in rows[r] if v is not None and not (isinstance(v, str) and not v.strip())]
        if parts:
            lines.append(" ".join(parts))
    return lines


# --------------------------------------------------------------------------- API


def find_layout(sheet: Sheet) -> Layout | None:
    """Locate the table on one sheet; None when no row looks like the return's header."""
    found = _find_header(sheet)
    if found is None:
        return None
    header_rows, columns, mapping, quality = found
    label_cols = [c for c, *_ in columns]
    span = range(min(label_cols), max(label_cols) + 1)
    mapped = set(mapping.values())
    extra = [(c, label) for c, _, _, label in columns if c not in mapped]
    data, totals = _body(sheet.rows, header_rows[-1] + 1, mapping, span)
    totals_row = _pick_totals(sheet.rows, totals, mapping, span)
    ordered = {f: mapping[f] for f in FIELDS if f in mapping}
    return Layout(
        header_rows=header_rows,
        columns=ordered,
        extra_columns=extra,
        data_rows=data,
        totals_row=totals_row,
        title_lines=_title_lines(sheet.rows, header_rows[0]),
        score=round(sum(quality.values()), 3),
    )


def choose_sheet(sheets: list[Sheet]) -> tuple[Sheet, Layout] | None:
    """The sheet holding the return: best header among sheets with data rows.

    A sheet with a header but no rows (a blank template left in the workbook) is
    returned only when no sheet has rows, so the caller can say "no units" rather
    than "no header".
    """
    best = None
    best_key = None
    for i, sheet in enumerate(sheets):
        layout = find_layout(sheet)
        if layout is None:
            continue
        key = (bool(layout.data_rows), layout.score, len(layout.data_rows), -i)
        if best_key is None or key > best_key:
            best_key, best = key, (sheet, layout)
    return best


def missing_required(layout: Layout) -> list[str]:
    """Required fields the header does not provide, in template order."""
    return [f for f in REQUIRED_FIELDS if f not in layout.columns]
