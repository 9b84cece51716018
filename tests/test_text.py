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

REFERENCE = Path("/work/shared/reference")
REGISTER = REFERENCE / "gialai_units_2015.csv"
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
