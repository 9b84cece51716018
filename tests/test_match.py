"""Unit and district matching (pipeline/ingest/match.py).

Cases are generated from the register wherever possible so that every unit and
district is exercised, not a hand-picked few.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.ingest.match import UnitMatcher, district_key, name_key, normalize_code, unit_type_hint
from pipeline.register import load_register

REGISTER = PROJECT_ROOT / "data/reference/units.csv"
PREFIX = {"xa": ["Xã ", "xã ", "X. ", "Đảng bộ xã "], "phuong": ["Phường ", "P. ", "P.", "Đảng bộ phường "], "thi_tran": ["Thị trấn ", "TT ", "TT. ", "TT.", "Đảng bộ thị trấn "]}


def strip_marks(s: str) -> str:
    s = unicodedata.normalize("NFD", s)
    return "".join(c for c in s if not unicodedata.combining(c)).replace("đ", "d").replace("Đ", "D")


@pytest.fixture(scope="module")
def reg():
    return load_register(REGISTER)


@pytest.fixture(scope="module")
def m(reg):
    return UnitMatcher(reg)


@pytest.fixture(scope="module")
def units(reg):
    return list(reg.units.itertuples(index=False))


@pytest.fixture(scope="module")
def collisions(units):
    """Unit codes whose key is shared with another unit of the same district."""
    groups = defaultdict(list)
    for u in units:
        groups[(u.district_code, name_key(u.unit_name))].append(u.unit_code)
    return {c for codes in groups.values() if len(codes) > 1 for c in codes}


# ---------------------------------------------------------------- name_key


@pytest.mark.parametrize(
    "a, b",
    [
        ("Thị trấn Phú Túc", "Phú Túc"),
        ("TT Phú Túc", "Phú Túc"),
        ("TT. Phú Túc", "Phú Túc"),
        ("tt.Phú Túc", "Phú Túc"),
        ("P. Yên Đỗ", "Yên Đỗ"),
        ("P.Yên Đỗ", "Yên Đỗ"),
        ("Phường Tây Sơn", "Tây Sơn"),
        ("Xã Ia Mơ Nông", "Ia Mơ Nông"),
        ("xa Ia Mo Nong", "Ia Mơ Nông"),
        ("XÃ IA MƠ NÔNG", "Ia Mơ Nông"),
        ("Đảng bộ xã Ia Mơ Nông", "Ia Mơ Nông"),
        ("Nhơn Hòa", "Nhơn Hoà"),
        ("Đăk Pơ", "Đắk Pơ"),
        ("Đak Pơ", "Đắk Pơ"),
        ("KBang", "K'Bang"),
        ("Kbang", "K’Bang"),
        ("K' Dang", "KDang"),
        ("H' Neng", "H'Neng"),
        ("Ia RBol", "IA Rbol"),
        ("Chư-Păh", "Chư Pah"),
        ("Đăk HLơ", "Đak Hlơ"),
    ],
)
def test_name_key_unifies_variants(a, b):
    assert name_key(a) == name_key(b)
    assert name_key(unicodedata.normalize("NFD", a)) == name_key(b)


@pytest.mark.parametrize(
    "name, key",
    [
        ("Phú Thiện", "phuthien"),  # "P" of a name is not the "P." prefix
        ("Phú Túc", "phutuc"),
        ("Xà Bang", "xabang"),  # "Xà" is not "Xã"
        ("Xã Xà Bang", "xabang"),
        ("Thịnh An", "thinhan"),
        ("Phường", "phuong"),  # a bare prefix word is kept rather than emptied
        ("TT", "tt"),
        ("", ""),
        (None, ""),
        ("Tây Sơn", "tayson"),
    ],
)
def test_name_key_does_not_eat_names(name, key):
    assert name_key(name) == key


def test_unit_type_hint():
    assert unit_type_hint("Phường An Phú") == "phuong"
    assert unit_type_hint("P.An Phú") == "phuong"
    assert unit_type_hint("Xã An Phú") == "xa"
    assert unit_type_hint("TT. Phú Túc") == "thi_tran"
    assert unit_type_hint("Phú Túc") is None


@pytest.mark.parametrize(
    "text",
    ["Huyện Chư Păh", "HUYỆN ỦY CHƯ PĂH", "Huyện ủy Chư Pah", "H. Chư Păh", "Đảng bộ huyện Chư Păh", "chu pah", "ChuPah"],
)
def test_district_key(text):
    assert district_key(text) == "chupah"


@pytest.mark.parametrize(
    "value, expected",
    [(23557, "23557"), (23557.0, "23557"), ("23557.0", "23557"), (" 23 557 ", "23557"), ("3557", "03557"),
     (3557.0, "03557"), (None, None), ("", None), (float("nan"), None), ("abc", "abc")],
)
def test_normalize_code(value, expected):
    assert normalize_code(value) == expected


# ---------------------------------------------------------- every register unit


def variants(u):
    n = u.unit_name
    out = [n, n.upper(), n.lower(), unicodedata.normalize("NFD", n), f"  {n}  ", n.replace(" ", "")]
    out += [p + n for p in PREFIX[u.unit_type]]
    out += [p + n for p in PREFIX[u.gso_unit_type]]
    return out


def test_every_unit_matches_by_name_in_its_district(m, units, collisions):
    for u in units:
        for v in variants(u):
            r = m.match_unit(v, None, u.district_code)
            assert (r.unit_code, r.method, r.district_code) == (u.unit_code, "name", u.district_code), v


def test_unaccented_names_match_unless_they_collide(m, units, collisions):
    assert collisions, "register has names that differ only by diacritics; test should cover them"
    names = {u.unit_code: u.unit_name for u in units}
    for u in units:
        for v in (strip_marks(u.unit_name), strip_marks(u.unit_name).upper(), "Xa " + strip_marks(u.unit_name)):
            r = m.match_unit(v, None, u.district_code)
            if u.unit_code not in collisions:
                assert r.unit_code == u.unit_code, v
            elif r.unit_code is not None:
                # Taken literally: only a register name written without
                # diacritics ("Ia Bang") resolves a colliding key.
                assert strip_marks(names[r.unit_code]) == names[r.unit_code], v
            else:
                assert u.unit_code in r.candidates, v


def test_province_wide_match_only_when_unambiguous(m, units):
    by_key = defaultdict(set)
    for u in units:
        by_key[name_key(u.unit_name)].add(u.unit_code)
    for u in units:
        r = m.match_unit(u.unit_name, None, None)
        if len(by_key[name_key(u.unit_name)]) == 1:
            assert r.unit_code == u.unit_code
        else:
            # Accented names differing by diacritics may still resolve; a
            # name shared by several districts never does without a hint.
            same_name = [x for x in units if x.unit_name == u.unit_name]
            if len(same_name) > 1:
                assert r.unit_code is None and u.unit_code in r.candidates


def test_unit_in_other_district_is_not_matched_by_name(m, units, reg):
    d0, d1 = list(reg.districts["district_code"])[:2]
    names_d1 = {name_key(u.unit_name) for u in units if u.district_code == d1}
    for u in units:
        if u.district_code == d0 and name_key(u.unit_name) not in names_d1:
            assert m.match_unit(u.unit_name, None, d1).unit_code is None


def test_cross_district_names_resolved_by_type_prefix(m, units):
    # A name shared by units of different types in different districts: the
    # prefix written in the return picks one.
    by_name = defaultdict(list)
    for u in units:
        by_name[name_key(u.unit_name)].append(u)
    cases = [g for g in by_name.values() if len(g) == 2 and g[0].unit_type != g[1].unit_type]
    assert cases
    for group in cases:
        for u in group:
            prefix = PREFIX[u.unit_type][0]
            assert m.match_unit(prefix + u.unit_name, None, None).unit_code == u.unit_code


# ----------------------------------------------------------- domain variants


@pytest.mark.parametrize(
    "written, district_name, register_name",
    [
        ("Kbang", "Huyện KBang", "KBang"),
        ("K'Bang", "Huyện KBang", "KBang"),
        ("Thị trấn Đắk Pơ", "Huyện Đăk Pơ", "Đak Pơ"),
        ("TT Đăk Pơ", "Huyện Đăk Pơ", "Đak Pơ"),
        ("Đak Đoa", "Huyện Đăk Đoa", "Đăk Đoa"),
        ("Xã Đak Hlơ", "Huyện KBang", "Đăk HLơ"),
        ("IA MƠ NÔNG", "Huyện Chư Păh", "Ia Mơ Nông"),
        ("Ia Rbol", "Thị xã Ayun Pa", "Ia RBol"),
        ("Ia Kdăm", "Huyện Ia Pa", "Ia KDăm"),
        ("KDang", "Huyện Đăk Đoa", "K' Dang"),
        ("H'Neng", "Huyện Đăk Đoa", "H' Neng"),
        ("Nhơn Hòa", "Huyện Chư Pưh", "Nhơn Hoà"),
    ],
)
def test_domain_name_variants(m, reg, written, district_name, register_name):
    d = reg.districts.set_index("district_name").at[district_name, "district_code"]
    expected = reg.units[(reg.units.district_code == d) & (reg.units.unit_name == register_name)].unit_code.item()
    r = m.match_unit(written, None, d)
    assert r.unit_code == expected and r.method == "name"


def test_alias_from_file(m, reg):
    for a in reg.aliases.itertuples():
        assert name_key(a.alias) != name_key(m._name[a.unit_code])  # aliases add what keys cannot
        d = m._district[a.unit_code]
        r = m.match_unit(a.alias, None, d)
        assert (r.unit_code, r.method) == (a.unit_code, "alias")
        assert m.match_unit("Xã " + a.alias, None, None).unit_code == a.unit_code


def test_register_name_wins_over_alias(tmp_path):
    p = tmp_path / "u.csv"
    p.write_text(
        "district_code,district_name,unit_code,unit_name,unit_type\n"
        "001,Huyện A,00001,Hra,xa\n002,Huyện B,00002,Hà Ra,xa\n",
        encoding="utf-8",
    )
    a = tmp_path / "a.csv"
    a.write_text("district_code,alias,unit_code,note\n,Hà Ra,00001,\n", encoding="utf-8")
    mm = UnitMatcher(load_register(p, a))
    assert mm.match_unit("Hà Ra", None, "001").unit_code == "00001"
    assert mm.match_unit("Hà Ra", None, "002").unit_code == "00002"
    assert mm.match_unit("Hà Ra", None, None).unit_code == "00002"  # a name beats an alias


# ------------------------------------------------------------------- codes


def test_code_wins_and_accepts_numbers(m, units):
    u = units[0]
    for code in (u.unit_code, int(u.unit_code), float(u.unit_code), f"{u.unit_code}.0", f" {u.unit_code} "):
        r = m.match_unit(None, code, None)
        assert (r.unit_code, r.method, r.code_conflict) == (u.unit_code, "code", False)
    assert m.match_unit(u.unit_name, u.unit_code, u.district_code).code_conflict is False


def test_code_conflict_when_name_is_another_unit(m, units):
    a, b = units[0], next(x for x in units[1:] if x.district_code == units[0].district_code)
    r = m.match_unit(b.unit_name, a.unit_code, a.district_code)
    assert (r.unit_code, r.method, r.code_conflict) == (a.unit_code, "code", True)
    # An unknown name is not a conflict: the code stands.
    r = m.match_unit("Không có tên này", a.unit_code, a.district_code)
    assert (r.unit_code, r.code_conflict) == (a.unit_code, False)


def test_unknown_code_falls_back_to_name(m, units):
    u = units[5]
    r = m.match_unit(u.unit_name, "99999", u.district_code)
    assert (r.unit_code, r.method, r.code_unknown) == (u.unit_code, "name", True)
    r = m.match_unit("Không có tên này", "99999", u.district_code)
    assert (r.unit_code, r.method, r.code_unknown) == (None, None, True)


def test_short_codes_are_zero_padded(tmp_path):
    p = tmp_path / "u.csv"
    p.write_text(
        "district_code,district_name,unit_code,unit_name,unit_type\n001,Quận Ba Đình,00004,Trúc Bạch,phuong\n",
        encoding="utf-8",
    )
    mm = UnitMatcher(load_register(p))
    assert mm.match_unit(None, 4, None).unit_code == "00004"
    assert mm.match_unit(None, "4.0", 1).unit_code == "00004"
    assert mm.match_unit("P. Trúc Bạch", None, "1").unit_code == "00004"


def test_unknown_district_code_is_an_error(m):
    with pytest.raises(ValueError):
        m.match_unit("Ia Ka", None, "999")


# ------------------------------------------------------------ infer_district


def test_infer_district_for_every_district(m, reg, units):
    for d in reg.districts["district_code"]:
        names = [("Xã " if u.unit_type == "xa" else "") + u.unit_name for u in units if u.district_code == d]
        g = m.infer_district(names, [None] * len(names))
        assert g.district_code == d and not g.ambiguous and not g.mixed
        assert g.rows_matched == len(names)
        assert list(g.matched_per_district) == [d]


def test_infer_district_from_codes_and_unknown_rows(m, units):
    u = [x for x in units if x.district_code == units[-1].district_code]
    g = m.infer_district(["???", None, "Tổng cộng"], [u[0].unit_code, float(u[1].unit_code), None])
    assert g.district_code == u[0].district_code and g.rows_matched == 2


def test_infer_district_shared_names_count_for_every_candidate(m, units):
    by_name = defaultdict(set)
    for x in units:
        by_name[x.unit_name].add(x.district_code)
    shared = next(n for n, ds in by_name.items() if len(ds) == 2)
    g = m.infer_district([shared], [None])
    assert g.district_code is None and g.ambiguous
    assert g.candidates_per_district == {d: 1 for d in by_name[shared]}
    assert g.matched_per_district == {}
    # One exclusive row tips the choice; the shared row counts for both.
    d = sorted(by_name[shared])[0]
    own = next(x.unit_name for x in units if x.district_code == d and len(by_name[x.unit_name]) == 1)
    g = m.infer_district([shared, own], [None, None])
    assert g.district_code == d and not g.ambiguous and not g.mixed
    assert g.candidates_per_district[d] == 2


def test_infer_district_detects_mixed_return(m, reg, units):
    d0, d1 = list(reg.districts["district_code"])[:2]
    names0 = [u.unit_name for u in units if u.district_code == d0]
    count = defaultdict(int)
    for u in units:
        count[name_key(u.unit_name)] += 1
    names1 = [u.unit_name for u in units if u.district_code == d1 and count[name_key(u.unit_name)] == 1]
    g = m.infer_district(names0 + names1[:2], [None] * (len(names0) + 2))
    assert g.district_code == d0 and g.mixed
    assert g.matched_per_district[d1] == 2
    assert m.infer_district([], []).district_code is None


# ------------------------------------------------------- districts in text


def district_texts(row):
    short, name, title = row.short_name, row.district_name, row.committee_title
    word = title[: len(title) - len(short)].strip()
    return [
        title,
        title.title(),
        f"{word.capitalize()} {strip_marks(short)}",
        f"ĐẢNG BỘ {name.upper()}",
        f"BAN THƯỜNG VỤ {title}",
        f"T/M BAN THƯỜNG VỤ {title}",
        unicodedata.normalize("NFD", title),
        f"{short}, ngày 30 tháng 6 năm 2016",
        name,
    ]


def test_district_from_text_every_district(m, reg):
    for row in reg.districts.itertuples():
        for text in district_texts(row):
            assert m.district_from_text(text) == row.district_code, text


@pytest.mark.parametrize(
    "text",
    ["TỈNH ỦY GIA LAI", "BÁO CÁO", "Tình hình thành lập chi bộ cơ quan xã, phường, thị trấn", "", None,
     "nâng cao chất lượng giáo dục cơ sở"],
)
def test_district_from_text_nothing(m, text):
    assert m.district_from_text(text) is None


def test_district_from_text_two_districts_is_ambiguous(m, reg):
    a, b = reg.districts.iloc[0], reg.districts.iloc[-1]
    assert m.district_from_text(f"{a.committee_title} gửi {b.committee_title}") is None


def test_district_from_filename_every_district(m, reg):
    for row in reg.districts.itertuples():
        s = strip_marks(row.short_name)
        names = [
            f"{s}.xlsx",
            f"{row.short_name}.xls",
            f"BC CBCQ {s.replace(' ', '')} (sua lan 2).xlsx",
            f"{s.replace(' ', '')}_201612 (1).xlsx",
            f"{s.lower().replace(' ', '_')}_t6.ods",
            f"bao_cao/{s.upper()}.xlsx",
            f"BC{s.replace(' ', '')}2016.xlsx",
        ]
        for n in names:
            assert m.district_from_filename(n) == row.district_code, n


@pytest.mark.parametrize("name", ["bao cao.xlsx", "Book1.xlsx", "tong hop.ods", ""])
def test_district_from_filename_nothing(m, name):
    assert m.district_from_filename(name) is None


def test_district_from_filename_two_districts_is_none(m, reg):
    a, b = reg.districts.iloc[0].short_name, reg.districts.iloc[1].short_name
    assert m.district_from_filename(f"{a} va {b}.xlsx") is None


# ------------------------------------------------------------- suggestions


def test_suggest_contains_name_for_a_typo(m, units):
    misses = []
    for u in units:
        n = u.unit_name
        if len(n) < 5:
            continue
        i = len(n) // 2
        typo = n[:i] + n[i + 1:]  # one letter dropped
        if n not in m.suggest("Xã " + typo, u.district_code, limit=3):
            misses.append(n)
    assert not misses


def test_suggest_prefers_own_district_and_respects_limit(m, reg, units):
    u = units[0]
    got = m.suggest(strip_marks(u.unit_name), u.district_code, limit=2)
    assert got[0] == u.unit_name and len(got) <= 2
    assert m.suggest("", u.district_code) == []
    # Without a district the whole province is searched.
    assert u.unit_name in m.suggest(u.unit_name.upper(), None)


# ------------------------------------------------------ another province


def test_other_province_register(tmp_path):
    p = tmp_path / "u.csv"
    p.write_text(
        "district_code,district_name,unit_code,unit_name,unit_type\n"
        "001,Quận Ba Đình,00001,Phúc Xá,phuong\n"
        "001,Quận Ba Đình,00004,Trúc Bạch,phuong\n"
        "018,Huyện Gia Lâm,00499,Yên Viên,thi_tran\n"
        "018,Huyện Gia Lâm,00500,Phúc Xá,xa\n",
        encoding="utf-8",
    )
    mm = UnitMatcher(load_register(Path(p)))
    assert mm.match_unit("TT Yên Viên", None, None).unit_code == "00499"
    assert mm.match_unit("Phúc Xá", None, None).unit_code is None
    assert mm.match_unit("Phường Phúc Xá", None, None).unit_code == "00001"
    assert mm.district_from_text("QUẬN ỦY BA ĐÌNH") == "001"
    assert mm.district_from_filename("gia_lam.xlsx") == "018"
    g = mm.infer_district(["Phúc Xá", "Trúc Bạch"], [None, None])
    assert g.district_code == "001"


def test_remembered_answers_are_the_fresh_ones_and_stay_home(reg):
    import pickle

    fresh, warm = UnitMatcher(reg), UnitMatcher(reg)
    rows = [("Phường Tây Sơn", None, None), ("Xã Ia Pa", None, None), (None, 1, None), (None, True, None), (None, 1.0, None)]
    for _ in range(2):  # the second pass answers from memory
        assert [warm.match_unit(*r) for r in rows] == [UnitMatcher(reg).match_unit(*r) for r in rows]
    # 1, 1.0 and True are equal dict keys but different cells.
    assert warm.match_unit(None, 1, None) != warm.match_unit(None, True, None)
    lines = ["HUYỆN ỦY CHƯ PĂH", "Đảng bộ huyện KBang", "Chư Păh, ngày 5 tháng 6 năm 2016"]
    assert [warm.district_from_text(t) for t in lines * 2] == [fresh.district_from_text(t) for t in lines] * 2
    assert warm._unit_matches and warm._text_districts
    assert warm.match_unit(["Xã Ia Pa"], None, None) == fresh.match_unit(["Xã Ia Pa"], None, None)  # unhashable
    sent = pickle.loads(pickle.dumps(warm))  # what a parse worker receives
    assert sent._unit_matches == {} and sent._text_districts == {}
    assert sent.match_unit("Phường Tây Sơn", None, None) == fresh.match_unit("Phường Tây Sơn", None, None)
