"""Vietnamese text decoding: Unicode forms, TCVN3, VNI and mojibake."""

from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import time
import unicodedata
from pathlib import Path

import pytest

from pipeline.ingest import text
from pipeline.ingest.text import decode_cells, decode_text, detect_encoding, nfc

# The project's copy of the shared register (CI's checkout may sit anywhere).
REGISTER = Path(__file__).resolve().parents[1] / "data/reference/units.csv"
CHARMAP = json.loads(Path(text.__file__).with_name("vn_legacy_charmap.json").read_text(encoding="utf-8"))
U, T, V = CHARMAP["U"], CHARMAP["T"], CHARMAP["V"]
TO_T = dict(zip(U, T))
TO_V = dict(zip(U, V))


def to_tcvn3(s: str) -> str:
    return "".join(TO_T.get(c, c) for c in s)


def to_tcvn3_h(s: str) -> str:
    """What a .VnTimeH cell holds: the lowercase codes of the text."""
    return to_tcvn3(s.lower())


def to_vni(s: str) -> str:
    return "".join(TO_V.get(c, c) for c in s)


def mojibake(s: str, errors: str = "replace") -> str:
    return s.encode("utf-8").decode("cp1252", errors=errors)


def mojibake_controls(s: str) -> str:
    """cp1252 with its five undefined bytes kept as the same-valued C1 controls."""
    return "".join(
        bytes([b]).decode("cp1252") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b)
        for b in s.encode("utf-8")
    )


def _names() -> list[str]:
    if REGISTER.exists():
        with REGISTER.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return sorted({r["unit_name"] for r in rows} | {r["district_name"] for r in rows})
    return ["Phù Đổng", "Chư Păh", "Ia Kênh", "An Khê", "Nhơn Hoà", "Đak Pơ", "Kông Lơng Khơng"]


NAMES = _names()
HEADERS = [
    "Tên đơn vị hành chính cấp xã",
    "Tổng số đảng viên của đảng bộ",
    "Đủ điều kiện thành lập",
    "Đã thành lập",
    "Căn cứ thành lập",
    "Ghi chú",
    "Tổng cộng",
]


def test_charmap_is_aligned_and_one_to_one():
    assert len(U) == len(T) == len(V) == 134
    assert len(set(U)) == len(set(T)) == len(set(V)) == 134
    assert all(len(u) == 1 for u in U)
    assert "\xad" in T  # TCVN3 ư is the soft hyphen


@pytest.mark.parametrize("i", range(134))
def test_every_letter_round_trips_in_each_encoding(i):
    u = U[i]
    assert decode_text(T[i], font=".VnTime") == u
    assert decode_text(V[i], font="VNI-Times") == u
    # exact mojibake forms; a lone letter whose byte was lost is a guess (tested in context below)
    assert decode_text(mojibake(u, "surrogateescape")) == u
    assert decode_text(mojibake_controls(u)) == u
    assert decode_text(unicodedata.normalize("NFD", u)) == u
    assert decode_text(T[i], font=".VnTimeH") == u.upper()
    # inside a word, with evidence only
    word = ("KH" + u + "NH") if u.isupper() else ("kh" + u + "nh")
    assert decode_cells([to_tcvn3(word), to_tcvn3("Chư Păh Đổng")])[0] == word
    assert decode_cells([to_vni(word), to_vni("Chư Păh Đổng")])[0] == word


def test_tcvn3_column_agrees_with_glibc_iconv():
    iconv = shutil.which("iconv")
    if iconv is None:
        pytest.skip("iconv not installed")
    singles = [(u, t) for u, t in zip(U, T) if len(t) == 1]
    raw = "\n".join(t for _, t in singles).encode("latin-1")
    proc = subprocess.run([iconv, "-f", "TCVN5712-1", "-t", "UTF-8"], input=raw, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip("iconv lacks TCVN5712-1")
    got = proc.stdout.decode("utf-8").split("\n")
    assert [unicodedata.normalize("NFC", g) for g in got] == [u for u, _ in singles]


def test_plain_ascii_and_unicode_are_unchanged():
    for s in ["", "x", "HD 28-HD/BTCTW", "Ia Grai", "Phù Đổng", "Hoà", "An Khê", "Ia Kênh", "Chư Á"]:
        assert decode_text(s) == s
    assert detect_encoding("Ia Grai") is None
    assert detect_encoding("Phù Đổng") == "unicode"
    assert detect_encoding("Ia Kênh") in (None, "unicode")
    assert detect_encoding("Hoà") is None  # also VNI "Hồ": ambiguous alone


def test_all_register_names_survive_detection_and_decoding():
    for n in NAMES:
        assert decode_text(n) == n
        assert detect_encoding(n) in (None, "unicode")
        assert decode_text(n, hint="unicode") == n
    assert decode_cells(NAMES) == NAMES
    assert decode_cells(NAMES + HEADERS)[: len(NAMES)] == NAMES


def test_nfc_fixes_decomposed_and_mark_order_and_spaces():
    assert nfc(unicodedata.normalize("NFD", "Chư Păh")) == "Chư Păh"
    # "tổ hợp" keyboard output with the tone typed before the vowel modifier
    assert nfc("a\u0301\u0306") == "ắ"
    assert nfc("o\u0309\u0302") == "ổ"
    assert nfc("o\u0300\u031b") == "ờ"
    assert nfc("ó\u0302") == "ố"
    assert nfc("\xa0Ia\xa0Kênh ") == "Ia Kênh"
    assert nfc("Hoà") == "Hoà"  # tone placement is kept as written
    assert nfc("Hòa") == "Hòa"
    assert decode_text("Pha\u0300n\u0323") != ""  # odd input does not crash


def test_tcvn3_names_with_font_and_by_evidence():
    assert decode_text("Ch\xad P¨h") == "Chư Păh"
    assert decode_text("Phï §æng") == "Phù Đổng"
    assert detect_encoding("Phï §æng") == "tcvn3"
    assert decode_text("Ia Kªnh", font=".VnTime") == "Ia Kênh"
    for n in NAMES:
        assert decode_text(to_tcvn3(n), font=".VnTime") == n
        assert decode_text(to_tcvn3(n), font=".VnArial") == n


def test_tcvn3_capitals_fonts():
    assert text.font_encoding(".VnTimeH") == "tcvn3_upper"
    assert text.font_encoding(".VnArial NarrowH") == "tcvn3_upper"
    assert text.font_encoding(".VnTime") == "tcvn3"
    assert decode_text("huyÖn ñy ch\xad p¨h", font=".VnTimeH") == "HUYỆN ỦY CHƯ PĂH"
    # capitals typed as ASCII with lowercase codes, no font known
    assert decode_text("HUYÖN ñY CH\xad P¨H") == "HUYỆN ỦY CHƯ PĂH"
    for n in NAMES:
        assert decode_text(to_tcvn3_h(n), font=".VnTimeH") == n.upper()


def test_vni_names():
    assert decode_text("Chö Paêh", font="VNI-Times") == "Chư Păh"
    assert decode_text("Phuø Ñoång") == "Phù Đổng"
    assert detect_encoding("Phuø Ñoång") == "vni"
    assert decode_text("PHUØ ÑOÅNG") == "PHÙ ĐỔNG"
    assert decode_text("Aù") == "Á"  # mark left in the other case
    for n in NAMES:
        assert decode_text(to_vni(n), font="VNI-Helve") == n


def test_workbook_majority_settles_ambiguous_strings():
    # "Hoà" alone is Unicode; in a VNI workbook it is "Hồ"
    wb = [to_vni(h) for h in HEADERS] + ["Hoà", "x", None, 12]
    out = decode_cells(wb)
    assert out[: len(HEADERS)] == HEADERS
    assert out[len(HEADERS) :] == ["Hồ", "x", None, 12]
    # the same string in a Unicode workbook stays
    assert decode_cells(HEADERS + ["Hoà"])[-1] == "Hoà"
    # a strongly Unicode string is not dragged along by a legacy majority
    assert decode_cells([to_vni(h) for h in HEADERS] + ["Phù Đổng"])[-1] == "Phù Đổng"
    # explicit hint does the same for one string
    assert decode_text("Hoà", hint="vni") == "Hồ"
    assert decode_text("Phù Đổng", hint="vni") == "Phù Đổng"
    with pytest.raises(ValueError):
        decode_text("Hoà", hint="latin9")


def test_fonts_win_over_evidence_but_not_over_unicode_only_letters():
    assert decode_cells(["Hoµ", "Hoà"], fonts=[".VnTime", "VNI-Times"]) == ["Hoà", "Hồ"]
    assert decode_text("Chư Păh", font=".VnTime") == "Chư Păh"
    assert decode_text("Hoà", font="Times New Roman") == "Hoà"
    with pytest.raises(ValueError):
        decode_cells(["a"], fonts=[])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda s: mojibake(s, "replace"), id="replace"),
        pytest.param(lambda s: mojibake(s, "ignore"), id="ignore"),
        pytest.param(lambda s: mojibake(s, "surrogateescape"), id="surrogateescape"),
        pytest.param(lambda s: mojibake(s, "backslashreplace"), id="backslashreplace"),
        pytest.param(mojibake_controls, id="controls"),
        pytest.param(lambda s: s.encode("utf-8").decode("latin-1"), id="latin1"),
    ],
)
def test_mojibake_variants(make):
    assert decode_text(make("Chư Păh")) == "Chư Păh"
    assert detect_encoding(make("Chư Păh")) == "mojibake"
    out = decode_cells([make(n) for n in NAMES])
    assert out == NAMES


def test_mojibake_example_from_brief():
    assert decode_text("ChÆ° PÄƒh") == "Chư Păh"


def test_lost_byte_is_guessed_from_context():
    # ọ and ờ lose the same byte position; the word decides
    assert decode_text(mojibake("Chư Ngọc", "ignore")) == "Chư Ngọc"
    assert decode_text(mojibake("người", "replace")) == "người"
    assert decode_text(mojibake("Đak Pơ", "ignore")) == "Đak Pơ"


def test_genuine_unicode_with_latin1_letters_is_not_read_as_mojibake():
    for s in ["NGÃ BA", "Ý Yên", "Hoà Bình", "ÂU"]:
        assert decode_text(s) == s


def test_property_all_names_all_encodings_at_workbook_level():
    rnd = random.Random(7)
    encoders = {
        "unicode": lambda s: s,
        "nfd": lambda s: unicodedata.normalize("NFD", s),
        "tcvn3": to_tcvn3,
        "vni": to_vni,
        "mojibake": mojibake,
    }
    for name, enc in encoders.items():
        names = NAMES[:]
        rnd.shuffle(names)
        # a realistic workbook: its headers plus the units, in one encoding
        cells = [enc(h) for h in HEADERS] + [enc(n) for n in names]
        assert decode_cells(cells)[len(HEADERS) :] == names, name


def test_fast_path_speed():
    ascii_cells = ["Ia Grai", "x", "HD 28-HD/BTCTW", "12"] * 25_000
    uni_cells = ["Phù Đổng", "Chư Păh", "Tổng cộng", "Xã Ia Mơ Nông"] * 25_000
    t0 = time.perf_counter()
    for s in ascii_cells:
        decode_text(s)
    t1 = time.perf_counter()
    for s in uni_cells:
        decode_text(s)
    t2 = time.perf_counter()
    decode_cells(uni_cells)
    t3 = time.perf_counter()
    # generous bounds (shared CI machine): >200k/s ascii, >100k/s unicode
    assert t1 - t0 < 0.5
    assert t2 - t1 < 1.0
    assert t3 - t2 < 1.5


def test_partial_mojibake_inside_unicode_text_is_repaired():
    assert decode_text("Huyện ChÆ° PÄƒh") == "Huyện Chư Păh"
    assert decode_cells(["Xã Ia MÆ¡ Nông", "Tổng cộng"]) == ["Xã Ia Mơ Nông", "Tổng cộng"]
    assert decode_text("Tổng “cộng”") == "Tổng “cộng”"  # quotes after letters are left alone


def test_nbsp_after_capital_a_tilde_stays_but_dangling_one_is_mojibake():
    assert decode_cells(["XÃ\xa0IA KA", "HUYỆN ỦY IA PA"])[0] == "XÃ IA KA"
    assert decode_text("XÃ\xa0IA KA") == "XÃ IA KA"
    assert decode_text("Huyện XÃ\xa0IA ChÆ° PÄƒh") == "Huyện XÃ IA Chư Păh"
    # the same two characters are "à" where that reads better, or where the NBSP separates nothing
    assert decode_text("ThÃ\xa0nh") == "Thành"
    assert decode_text("HoÃ\xa0 BÃ¬nh") == "Hoà Bình"
    assert decode_text("Ã\xa0") == "à"


def test_question_marks_for_undefined_bytes():
    def mq(s):
        return mojibake(s, "replace").replace("\ufffd", "?")

    for s in ["Đak Pơ", "Chư Ngọc", "người", "Đã thành lập"]:
        assert decode_text(mq(s)) == s
    assert decode_text(mq("Có?")) == "Có?"  # a real question mark after a complete letter
    for s in ["Có?", "XÃ?", "Ch? P?h"]:  # not resolvable: left as it is
        assert decode_text(s) == s


def test_unicode_font_cells_in_legacy_font_workbook_stay():
    heads = [to_tcvn3(h) for h in HEADERS]
    data = ["Xã", "có", "không", "Hoà"]
    out = decode_cells(heads + data, fonts=[".VnTime"] * len(heads) + ["Times New Roman", "Arial", "Calibri", "Arial"])
    assert out == HEADERS + data
    # no font entry: the cell's text and the workbook decide as before
    out = decode_cells(heads + [to_tcvn3("có")], fonts=[".VnTime"] * len(heads) + [None])
    assert out[-1] == "có"
    # a Unicode font does not hide clear legacy evidence
    assert decode_cells(heads + [to_tcvn3("Tổng cộng")], fonts=[".VnTime"] * len(heads) + ["Arial"])[-1] == "Tổng cộng"


def _table(template, data, rows):
    """A return: template headings, then rows of (name, type, flag) typed in another encoding."""
    cells = [template(h) for h in HEADERS]
    for name, kind, flag in rows:
        cells += [data(name), data(kind), "12", data(flag)]
    cells += [template("Người lập biểu"), template("Tổng cộng")]
    return cells


UNITS = [("Xã Ia Kênh", "Xã", "có"), ("Phường Phù Đổng", "Phường", "không"), ("Xã Chư Á", "Xã", "có"),
         ("Xã An Phú", "Xã", "không"), ("Thị trấn Phú Túc", "Thị trấn", "có"), ("Xã Ia Mơ Nông", "Xã", "có")]


def _flat(rows):
    return HEADERS + [x for name, kind, flag in rows for x in (name, kind, "12", flag)] + ["Người lập biểu", "Tổng cộng"]


@pytest.mark.parametrize(
    "template, data",
    [
        pytest.param(to_tcvn3, lambda s: s, id="tcvn3-template-unicode-data"),
        pytest.param(lambda s: s, to_tcvn3, id="unicode-template-tcvn3-data"),
        pytest.param(lambda s: s, to_vni, id="unicode-template-vni-data"),
        pytest.param(to_vni, lambda s: s, id="vni-template-unicode-data"),
        pytest.param(to_tcvn3, to_vni, id="tcvn3-template-vni-data"),
    ],
)
def test_template_and_data_in_different_encodings_settle_block_by_block(template, data):
    cells = _table(template, data, UNITS)
    assert decode_cells(cells) == _flat(UNITS)
    # the same with grid positions: headings on one row, one unit per row below
    positions = [(0, 0, c) for c in range(len(HEADERS))]
    positions += [(0, 1 + r, c) for r in range(len(UNITS)) for c in range(4)]
    positions += [(0, 2 + len(UNITS), 0), (0, 2 + len(UNITS), 3)]
    assert decode_cells(cells, positions=positions) == _flat(UNITS)


def test_ambiguous_heading_follows_its_neighbours_not_the_data():
    # "Ghi chó" is Unicode "Ghi chó" or TCVN3 "Ghi chú": its row is TCVN3 headings
    heads = [to_tcvn3(h) for h in HEADERS[:5]] + [to_tcvn3("Ghi chú")] + [to_tcvn3("Số đảng viên")]
    rows = [x for name, kind, flag in UNITS * 3 for x in (name, kind, flag, "Chưa đủ số đảng viên ở cơ quan")]
    out = decode_cells(heads + rows)
    assert out[5] == "Ghi chú"
    assert out[len(heads):] == rows
    with pytest.raises(ValueError):
        decode_cells(["a"], positions=[])


def test_decoding_without_fonts_by_the_majority_alone_gives_what_the_full_vote_gives():
    """Without fonts and with clear evidence for one encoding at most, decode_cells skips the
    neighbours' vote (it cannot change anything then): the same text as the full path, which
    the same call with every font None takes."""
    words = NAMES[:60] + HEADERS + ["Xã", "Hoà", "có", "x", "  Phường  ", "HD28", "Tổng", "ghi chú"]
    encoded = {"unicode": words, "tcvn3": [*map(to_tcvn3, words)], "vni": [*map(to_vni, words)], "mojibake": [*map(mojibake, words[:20])]}
    rng = random.Random(11)
    took_fast = 0
    for _ in range(400):
        # Workbooks typed in one or two encodings, or in a mix of all.
        pool = [v for enc in rng.sample(sorted(encoded), rng.randint(1, 4)) for v in encoded[enc]] + ["", " ", 12, None]
        values = [rng.choice(pool) for _ in range(rng.randint(1, 40))]
        full = decode_cells(values, fonts=[None] * len(values))
        assert decode_cells(values) == full, values
        took_fast += text._decode_by_majority(values) is not None
    assert 50 < took_fast < 400  # both paths were exercised
