"""Register loading and validation (pipeline/register.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.register import UNIT_TYPES, load_register

REGISTER = PROJECT_ROOT / "data/reference/units.csv"
HEADER = "district_code,district_name,unit_code,unit_name,unit_type,gso_unit_type,note\n"


def write(tmp_path: Path, body: str, name: str = "units.csv") -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def reg():
    return load_register(REGISTER)


def test_real_register_shape(reg):
    raw = pd.read_csv(REGISTER, dtype=str, keep_default_na=False)
    assert len(reg.units) == len(raw)
    assert set(reg.units["unit_type"]) <= set(UNIT_TYPES)
    assert list(reg.districts.columns) == [
        "district_code", "district_name", "district_kind", "short_name", "committee_title", "units_expected",
    ]
    assert reg.districts["district_code"].is_unique
    assert reg.districts["units_expected"].sum() == len(reg.units)
    assert set(reg.districts["district_code"]) == set(raw["district_code"])
    # Codes stay text.
    assert all(isinstance(c, str) for c in reg.units["unit_code"])


def test_district_parts_derived_from_name(reg):
    for row in reg.districts.itertuples():
        prefix = {"huyen": "Huyện", "thi_xa": "Thị xã", "thanh_pho": "Thành phố"}[row.district_kind]
        assert row.district_name == f"{prefix} {row.short_name}"
        word = {"huyen": "HUYỆN ỦY", "thi_xa": "THỊ ỦY", "thanh_pho": "THÀNH ỦY"}[row.district_kind]
        assert row.committee_title == f"{word} {row.short_name.upper()}"
    by_kind = reg.districts.set_index("district_name")
    # Spot checks against the wording of real title blocks.
    assert by_kind.at["Huyện Chư Păh", "committee_title"] == "HUYỆN ỦY CHƯ PĂH"
    assert by_kind.at["Thị xã An Khê", "committee_title"] == "THỊ ỦY AN KHÊ"
    assert by_kind.at["Thành phố Pleiku", "committee_title"] == "THÀNH ỦY PLEIKU"


def test_units_expected_counts_units(reg):
    counts = reg.units.groupby("district_code").size()
    for row in reg.districts.itertuples():
        assert row.units_expected == counts[row.district_code]


def test_default_aliases_beside_register_are_loaded(reg):
    assert {"district_code", "alias", "unit_code", "note"} <= set(reg.aliases.columns)
    assert set(reg.aliases["unit_code"]) <= set(reg.units["unit_code"])


def test_leading_zeros_and_optional_columns(tmp_path):
    p = write(
        tmp_path,
        "district_code,district_name,unit_code,unit_name,unit_type\n"
        "001,Quận Ba Đình,00001,Phúc Xá,phuong\n"
        "001,Quận Ba Đình,00004,Trúc Bạch,phuong\n"
        "018,Huyện Gia Lâm,00499,Yên Viên,thi_tran\n",
    )
    reg = load_register(p)
    assert list(reg.units["unit_code"]) == ["00001", "00004", "00499"]
    assert list(reg.districts["district_code"]) == ["001", "018"]
    assert list(reg.units["gso_unit_type"]) == ["phuong", "phuong", "thi_tran"]
    assert reg.districts.iloc[0]["committee_title"] == "QUẬN ỦY BA ĐÌNH"
    assert reg.districts.iloc[1]["short_name"] == "Gia Lâm"
    assert reg.aliases.empty


@pytest.mark.parametrize(
    "body, message",
    [
        ("district_code,district_name,unit_code,unit_type\n1,Huyện A,00001,xa\n", "missing required column"),
        (HEADER + "001,Huyện A,00001,X,xa,xa,\n001,Huyện A,00001,Y,xa,xa,\n", "duplicate unit_code"),
        (HEADER + "001,Huyện A,00001,X,commune,xa,\n", "unit_type must be one of"),
        (HEADER + "001,Huyện A,00001,X,xa,town,\n", "gso_unit_type must be one of"),
        (HEADER + "001,Huyện A,,X,xa,xa,\n", "blank unit_code"),
        (HEADER + "001,Huyện A,00001,X,xa,xa,\n001,Huyện B,00002,Y,xa,xa,\n", "more than one district_name"),
        (HEADER + "001,Vùng A,00001,X,xa,xa,\n", "cannot derive its kind"),
        (HEADER, "no units"),
    ],
)
def test_invalid_register_is_refused(tmp_path, body, message):
    with pytest.raises(ValueError, match=message):
        load_register(write(tmp_path, body))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_register(tmp_path / "nope.csv")


SMALL = HEADER + "001,Huyện A,00001,Hra,xa,xa,\n001,Huyện A,00002,Kon Thụp,xa,xa,\n002,Huyện B,00003,Ia Ka,xa,xa,\n"


def test_aliases_loaded_and_blank_district_allowed(tmp_path):
    p = write(tmp_path, SMALL)
    a = write(tmp_path, "district_code,alias,unit_code,note\n001,Hà Ra,00001,x\n,Ia Kà Mới,00003,\n", "al.csv")
    reg = load_register(p, a)
    assert list(reg.aliases["alias"]) == ["Hà Ra", "Ia Kà Mới"]
    assert list(reg.aliases["district_code"]) == ["001", ""]


@pytest.mark.parametrize(
    "aliases, message",
    [
        ("district_code,alias,unit_code,note\n001,Hà Ra,99999,\n", "not in the register"),
        ("district_code,alias,unit_code,note\n002,Hà Ra,00001,\n", "does not match the unit's district"),
        ("district_code,alias,unit_code,note\n001,Kon Thup,00001,\n", "is the name of unit"),
        ("district_code,alias,unit_code,note\n001,,00001,\n", "blank alias"),
        ("alias,unit_code\nHà Ra,00001\n", "missing required column"),
    ],
)
def test_invalid_aliases_are_refused(tmp_path, aliases, message):
    p = write(tmp_path, SMALL)
    a = write(tmp_path, aliases, "al.csv")
    with pytest.raises(ValueError, match=message):
        load_register(p, a)


def test_settings_paths_are_used(tmp_path, monkeypatch):
    from pipeline.register import default_register

    p = write(tmp_path, SMALL)
    write(tmp_path, "district_code,alias,unit_code,note\n001,Hà Ra,00001,\n", "aliases.csv")
    monkeypatch.setenv("PIPELINE_REGISTER", str(p))
    monkeypatch.delenv("PIPELINE_ALIASES", raising=False)
    reg = default_register()
    assert list(reg.units["unit_code"]) == ["00001", "00002", "00003"]
    assert list(reg.aliases["alias"]) == ["Hà Ra"]


def test_a_context_is_loaded_again_only_when_the_register_changes(tmp_path):
    import dataclasses
    import shutil

    from pipeline import flow
    from tests.conftest import ALIASES, REGISTER, make_settings

    register, aliases = tmp_path / "units.csv", tmp_path / "aliases.csv"
    shutil.copyfile(REGISTER, register)
    shutil.copyfile(ALIASES, aliases)
    settings = dataclasses.replace(make_settings(tmp_path), register=register, aliases=aliases)
    first = flow.make_context(settings)
    assert flow.make_context(settings) is first  # unchanged files: kept

    text = register.read_text(encoding="utf-8")
    register.write_text(text.replace(",Yên Đỗ,", ",Yên Đỗ Mới,", 1), encoding="utf-8")
    renamed = flow.make_context(settings)
    assert renamed is not first and renamed.register_fingerprint != first.register_fingerprint
    assert "Yên Đỗ Mới" in set(renamed.register.units["unit_name"])

    aliases.unlink()  # a missing aliases file means no aliases, as the fingerprint says
    bare = flow.make_context(settings)
    assert bare is not renamed and bare.register.aliases.empty
