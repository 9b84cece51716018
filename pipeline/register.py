"""The unit register (communes, wards, towns by district) and the name aliases.

The register is data: a province, a year or an administrative reform is a
different CSV, never different code. Districts are derived from the units, so
the district table can never disagree with the unit table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

UNIT_TYPES = ("xa", "phuong", "thi_tran")
REQUIRED_COLUMNS = ("district_code", "district_name", "unit_code", "unit_name", "unit_type")
OPTIONAL_COLUMNS = ("gso_unit_type", "note")
ALIAS_COLUMNS = ("district_code", "alias", "unit_code", "note")

# District-level name prefix -> (kind, committee word). Longest prefix first so
# "Thị xã" is not read as something shorter. "Quận" is not used in Gia Lai but
# keeps a city province's register loadable.
_DISTRICT_KINDS = (
    ("Thành phố", "thanh_pho", "Thành ủy"),
    ("Thị xã", "thi_xa", "Thị ủy"),
    ("Huyện", "huyen", "Huyện ủy"),
    ("Quận", "quan", "Quận ủy"),
)


@dataclass(frozen=True)
class Register:
    units: pd.DataFrame  # one row per unit, columns of the CSV, all text
    districts: pd.DataFrame  # district_code, district_name, district_kind, short_name, committee_title, units_expected
    aliases: pd.DataFrame  # district_code ('' = any), alias, unit_code, note

    def unit(self, unit_code: str) -> pd.Series:
        return self.units.set_index("unit_code").loc[unit_code]

    def district_name(self, district_code: str) -> str:
        return str(self.districts.set_index("district_code").at[district_code, "district_name"])

    @cached_property
    def unit_districts(self) -> dict[str, str]:
        """unit_code -> district_code, for plain lookups (what joining core.units gives)."""
        units = self.units.drop_duplicates("unit_code")
        return dict(zip(units["unit_code"].astype(str), units["district_code"].astype(object)))


def _read_text_csv(path: Path, what: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise ValueError(f"{what} file not found: {path}")
    # dtype=str and no NA parsing: codes keep leading zeros and a unit named
    # "NA" or a blank note stays text.
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df.columns = [str(c).strip() for c in df.columns]
    for col in df.columns:
        df[col] = df[col].map(lambda v: " ".join(str(v).split()))
    return df


def _district_parts(name: str) -> tuple[str, str, str]:
    """(kind, short_name, committee_title) from a district name such as "Huyện Chư Păh"."""
    folded = name.casefold()
    for prefix, kind, committee in _DISTRICT_KINDS:
        p = prefix.casefold()
        if folded.startswith(p + " "):
            short = name[len(prefix):].strip()
            return kind, short, f"{committee} {short}".upper()
    raise ValueError(
        f"district name {name!r} does not start with one of "
        f"{', '.join(repr(p) for p, _, _ in _DISTRICT_KINDS)}; cannot derive its kind"
    )


def _build_districts(units: pd.DataFrame) -> pd.DataFrame:
    names = units.groupby("district_code", sort=False)["district_name"].unique()
    bad = {code: list(v) for code, v in names.items() if len(v) > 1}
    if bad:
        raise ValueError(f"district codes with more than one district_name: {bad}")
    rows = []
    counts = units.groupby("district_code", sort=False).size()
    for code, vals in names.items():
        name = vals[0]
        kind, short, title = _district_parts(name)
        rows.append(
            {
                "district_code": code,
                "district_name": name,
                "district_kind": kind,
                "short_name": short,
                "committee_title": title,
                "units_expected": int(counts[code]),
            }
        )
    districts = pd.DataFrame(rows)
    dup_names = districts["district_name"][districts["district_name"].duplicated()]
    if len(dup_names):
        raise ValueError(f"district names used by more than one district_code: {sorted(set(dup_names))}")
    return districts


def _validate_units(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"register {path}: missing required column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise ValueError(f"register {path}: no units")
    for col in REQUIRED_COLUMNS:
        blank = df.index[df[col] == ""]
        if len(blank):
            lines = [int(i) + 2 for i in blank[:10]]  # +2: header line, 1-based
            raise ValueError(f"register {path}: blank {col} on line(s) {lines}")
    dups = df["unit_code"][df["unit_code"].duplicated()]
    if len(dups):
        raise ValueError(f"register {path}: duplicate unit_code(s) {sorted(set(dups))}")
    for col in ("unit_type", "gso_unit_type"):
        if col not in df.columns:
            continue
        bad = df[(df[col] != "") & ~df[col].isin(UNIT_TYPES)]
        if len(bad):
            sample = bad[["unit_code", col]].head(10).values.tolist()
            raise ValueError(f"register {path}: {col} must be one of {list(UNIT_TYPES)}; bad rows (unit_code, {col}): {sample}")
    out = df.copy()
    if "gso_unit_type" not in out.columns:
        out["gso_unit_type"] = out["unit_type"]
    out["gso_unit_type"] = out["gso_unit_type"].where(out["gso_unit_type"] != "", out["unit_type"])
    if "note" not in out.columns:
        out["note"] = ""
    extra = [c for c in out.columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    return out[list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS) + extra].reset_index(drop=True)


def _load_aliases(path: Path | None, units: pd.DataFrame) -> pd.DataFrame:
    empty = pd.DataFrame({c: pd.Series(dtype=str) for c in ALIAS_COLUMNS})
    if path is None or not Path(path).is_file():
        return empty
    df = _read_text_csv(Path(path), "aliases")
    missing = [c for c in ("district_code", "alias", "unit_code") if c not in df.columns]
    if missing:
        raise ValueError(f"aliases {path}: missing required column(s) {missing}; found {list(df.columns)}")
    if "note" not in df.columns:
        df["note"] = ""
    df = df[list(ALIAS_COLUMNS)]
    df = df[(df["alias"] != "") | (df["unit_code"] != "")].reset_index(drop=True)
    if df.empty:
        return empty
    blank = df.index[(df["alias"] == "") | (df["unit_code"] == "")]
    if len(blank):
        raise ValueError(f"aliases {path}: blank alias or unit_code on line(s) {[int(i) + 2 for i in blank[:10]]}")
    unit_district = dict(zip(units["unit_code"], units["district_code"]))
    unknown = sorted(set(df["unit_code"]) - set(unit_district))
    if unknown:
        raise ValueError(f"aliases {path}: unit_code(s) not in the register: {unknown}")
    wrong = df[(df["district_code"] != "") & (df["district_code"] != df["unit_code"].map(unit_district))]
    if len(wrong):
        raise ValueError(
            f"aliases {path}: district_code does not match the unit's district for "
            f"{wrong[['alias', 'district_code', 'unit_code']].values.tolist()}"
        )
    return df


def load_register(path: str | Path, aliases_path: str | Path | None = None) -> Register:
    """Read and validate the register CSV and its aliases.

    ``aliases_path`` defaults to ``aliases.csv`` beside the register; a missing
    aliases file means no aliases. Raises ValueError on anything a maintainer
    must fix in the files.
    """
    path = Path(path)
    units = _validate_units(_read_text_csv(path, "register"), path)
    districts = _build_districts(units)
    if aliases_path is None:
        aliases_path = path.parent / "aliases.csv"
    aliases = _load_aliases(Path(aliases_path), units)
    # Imported here: match.py builds on Register, and alias keys can only be
    # checked against register names with the matcher's own key function.
    from pipeline.ingest.match import name_key

    _check_alias_shadowing(aliases, units, name_key, aliases_path)
    return Register(units=units, districts=districts, aliases=aliases)


def _check_alias_shadowing(aliases: pd.DataFrame, units: pd.DataFrame, key, path) -> None:
    """An alias equal to another unit's name in the same district could never apply; say so."""
    if aliases.empty:
        return
    by_key: dict[tuple[str, str], set[str]] = {}
    for d, n, c in zip(units["district_code"], units["unit_name"], units["unit_code"]):
        by_key.setdefault((d, key(n)), set()).add(c)
    unit_district = dict(zip(units["unit_code"], units["district_code"]))
    problems = []
    for alias, code in zip(aliases["alias"], aliases["unit_code"]):
        k = key(alias)
        if not k:
            problems.append((alias, code, "empty after normalisation"))
            continue
        others = by_key.get((unit_district[code], k), set()) - {code}
        if others:
            problems.append((alias, code, f"is the name of unit(s) {sorted(others)}"))
    if problems:
        raise ValueError(f"aliases {path}: unusable alias(es): {problems}")


def default_register() -> Register:
    """The register named by the settings (PIPELINE_REGISTER / PIPELINE_ALIASES)."""
    from pipeline.config import load_settings

    s = load_settings()
    return load_register(s.register, s.aliases)
