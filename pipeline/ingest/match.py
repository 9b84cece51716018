"""Unit and district matching against the register, and suggestions for unknown names.

Names are compared on keys that drop what offices vary freely (case, Unicode
form, diacritics, tone placement, apostrophes, spaces, hyphens, dots, the
"Xã"/"Phường"/"Thị trấn" prefix). Everything district- or unit-specific comes
from the register and its alias file; this module knows only Vietnamese
administrative vocabulary.

Matching is exact on keys (dictionary lookups). Fuzzy similarity is used only
by ``UnitMatcher.suggest`` to propose names in a refusal message.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePath
from typing import Any

from rapidfuzz import fuzz

from pipeline.ingest.memo import recall
from pipeline.register import Register

_APOSTROPHES = "'’‘`´ʼʹ′"
# Everything that separates words in a name as typed: whitespace, dots, hyphens
# of every kind, and punctuation seen around names ("Xã: Ia Ka", "(TT) Phú Túc").
# U+00AD is TCVN3's "ư": text reaching here is already decoded, so a left-over
# soft hyphen is only an invisible break.
_SEP_RE = re.compile(r"[\s.\-‐‑‒–—―_:,;/\\()\[\]{}\u00ad\u200b]+")
_APOS_RE = re.compile(f"[{re.escape(_APOSTROPHES)}]")
# Vietnamese tone marks (grave, acute, tilde, hook above, dot below). The other
# combining marks (breve, circumflex, horn) change the vowel, not the tone.
_TONE_MARKS = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323", "\u0340", "\u0341"}

# Leading words that are not part of a unit's name. Written in their accented
# form; a token matches when it equals that form or is entirely unaccented
# (so "Xà Bang" is never read as "Xã Bang", but "xa Ia Ka" is).
_ORG_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("đảng", "bộ"),
    ("đảng", "ủy"),
    ("đảng", "uỷ"),
    ("đb",),
)
_TYPE_PREFIXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("thị", "trấn"), "thi_tran"),
    (("thịtrấn",), "thi_tran"),
    (("phường",), "phuong"),
    (("xã",), "xa"),
    (("tt",), "thi_tran"),
    (("p",), "phuong"),
    (("x",), "xa"),
)
_DISTRICT_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("ban", "thường", "vụ"),
    ("btv",),
    ("đảng", "bộ"),
    ("huyện", "ủy"),
    ("huyện", "uỷ"),
    ("thị", "ủy"),
    ("thị", "uỷ"),
    ("thành", "ủy"),
    ("thành", "uỷ"),
    ("quận", "ủy"),
    ("quận", "uỷ"),
    ("thị", "xã"),
    ("thành", "phố"),
    ("huyện",),
    ("quận",),
    ("tp",),
    ("tx",),
    ("h",),
)


# --------------------------------------------------------------------------- keys


def _plain(s: str) -> str:
    """Casefolded, without any diacritic, đ → d."""
    decomposed = unicodedata.normalize("NFD", s.casefold())
    out = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return out.replace("đ", "d").replace("ð", "d")


def _toneless(s: str) -> str:
    """Casefolded, tone marks removed but vowel marks and đ kept ("Đắk" → "đăk")."""
    decomposed = unicodedata.normalize("NFD", s.casefold())
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if ch not in _TONE_MARKS))


def _d_aware(s: str) -> str:
    """Like ``_plain`` but keeps đ distinct from d."""
    decomposed = unicodedata.normalize("NFD", s.casefold().replace("ð", "đ"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _has_marks(s: str) -> bool:
    decomposed = unicodedata.normalize("NFD", s)
    return any(unicodedata.combining(ch) for ch in decomposed) or any(ch in "đĐðÐ" for ch in s)


def _tokens(s: Any) -> list[str]:
    """Words of ``s`` as NFC casefolded text, apostrophes joined ("K' Dang" → "k", "dang")."""
    if s is None:
        return []
    if isinstance(s, float) and math.isnan(s):
        return []
    text = unicodedata.normalize("NFC", str(s)).casefold()
    text = _APOS_RE.sub("", text)
    return [t for t in _SEP_RE.split(text) if t]


def _is_word(token: str, word: str) -> bool:
    return token == word or token == _plain(word)


def _starts_with(tokens: list[str], seq: Sequence[str]) -> bool:
    return len(tokens) > len(seq) and all(_is_word(t, w) for t, w in zip(tokens, seq))


def _strip_unit_prefix(tokens: list[str]) -> tuple[list[str], str | None]:
    """Drop one organisation prefix and one type prefix, never the whole name."""
    for seq in _ORG_PREFIXES:
        if _starts_with(tokens, seq):
            tokens = tokens[len(seq):]
            break
    for seq, unit_type in _TYPE_PREFIXES:
        if _starts_with(tokens, seq):
            return tokens[len(seq):], unit_type
    return tokens, None


def _strip_district_prefix(tokens: list[str]) -> list[str]:
    # Repeated: "Ban Thường vụ Huyện ủy Chư Păh", "Đảng bộ huyện KBang".
    changed = True
    while changed:
        changed = False
        for seq in _DISTRICT_PREFIXES:
            if _starts_with(tokens, seq):
                tokens = tokens[len(seq):]
                changed = True
                break
    return tokens


def name_key(s: Any, strip_prefix: bool = True) -> str:
    """Comparison key of a unit name: "Thị trấn Đắk Pơ", "TT.Đak Pơ", "dak po" → "dakpo".

    The type prefix is removed only when it is a separate word (followed by a
    space, dot, …) and something remains, so "Phú Thiện" keeps its "P".
    """
    tokens = _tokens(s)
    if strip_prefix:
        tokens, _ = _strip_unit_prefix(tokens)
    return _plain("".join(tokens))


def unit_type_hint(s: Any) -> str | None:
    """The unit type a name's prefix states ("Phường An Phú" → "phuong"), else None."""
    _, unit_type = _strip_unit_prefix(_tokens(s))
    return unit_type


def district_key(s: Any) -> str:
    """Comparison key of a district name: "Huyện ủy Chư Păh", "H. Chư Pah" → "chupah"."""
    return _plain("".join(_strip_district_prefix(_tokens(s))))


def normalize_code(value: Any, width: int | None = 5) -> str | None:
    """A code as text: 23557.0, " 23 557 ", "3557" (width 5) → "23557"/"03557"; blanks → None.

    Non-numeric text is returned trimmed (it will not be found in the register).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = "".join(str(value).split())
    if not text:
        return None
    m = re.fullmatch(r"(\d+)(?:[.,]0*)?", text)
    if m:
        text = m.group(1)
        if width and len(text) < width:
            text = text.zfill(width)
    return text


# ----------------------------------------------------------------------- results


@dataclass(frozen=True)
class UnitMatch:
    unit_code: str | None
    method: str | None  # 'code' | 'name' | 'alias' | None
    code_conflict: bool = False  # a valid code, but the name is another unit's
    district_code: str | None = None  # district of the matched unit
    candidates: tuple[str, ...] = ()  # unit codes an ambiguous name could be
    code_unknown: bool = False  # a code was written but is not in the register


@dataclass(frozen=True)
class DistrictGuess:
    district_code: str | None
    # Rows matching units of that district only (what mixed-district detection
    # needs: two districts with exclusive rows means two districts' units).
    matched_per_district: dict[str, int]
    ambiguous: bool
    # Rows that could belong to that district, ambiguous names counted for
    # every candidate district (what the choice is made on).
    candidates_per_district: dict[str, int] = field(default_factory=dict)
    rows_matched: int = 0

    @property
    def mixed(self) -> bool:
        return sum(1 for n in self.matched_per_district.values() if n > 0) >= 2


@dataclass(frozen=True)
class _Variant:
    key: str
    toneless: str
    exact: str
    type_hint: str | None


def _variants(name: Any) -> tuple[_Variant, ...]:
    """Keys of a written name: prefix stripped first, then as written."""
    if type(name) is str:
        return _str_variants(name)
    return _build_variants(name)


# The same unit names come back in every period's returns (and twice per row:
# district inference, then matching), so each distinct text is keyed once.
@lru_cache(maxsize=65536)
def _str_variants(name: str) -> tuple[_Variant, ...]:
    return _build_variants(name)


def _build_variants(name: Any) -> tuple[_Variant, ...]:
    tokens = _tokens(name)
    stripped, hint = _strip_unit_prefix(tokens)
    out: list[_Variant] = []
    for toks, h in ((stripped, hint), (tokens, None)):
        joined = "".join(toks)
        v = _Variant(_plain(joined), _toneless(joined), joined, h)
        if v.key and all(v.key != o.key for o in out):
            out.append(v)
    return tuple(out)


# ----------------------------------------------------------------------- matcher


# Bound on each of UnitMatcher's remembered answers (a province has a few thousand distinct names).
_MEMO_SIZE = 50_000


class UnitMatcher:
    """Register lookups for one run: build once, then every match is a dict lookup."""

    def __init__(self, register: Register):
        self.register = register
        units = register.units
        self._district: dict[str, str] = dict(zip(units["unit_code"], units["district_code"]))
        self._name: dict[str, str] = dict(zip(units["unit_code"], units["unit_name"]))
        self._types: dict[str, set[str]] = {
            c: {t, g} for c, t, g in zip(units["unit_code"], units["unit_type"], units["gso_unit_type"])
        }
        codes = list(units["unit_code"])
        self._code_width = len(codes[0]) if codes and all(c.isdigit() and len(c) == len(codes[0]) for c in codes) else None
        dcodes = list(register.districts["district_code"])
        self._district_width = (
            len(dcodes[0]) if dcodes and all(c.isdigit() and len(c) == len(dcodes[0]) for c in dcodes) else None
        )
        self._districts = set(dcodes)

        # Register names are bare by contract, so they are keyed as written.
        self._key: dict[str, str] = {}
        self._toneless: dict[str, str] = {}
        self._exact: dict[str, str] = {}
        self._by_dk: dict[tuple[str, str], list[str]] = {}
        self._by_k: dict[str, list[str]] = {}
        for code, name in self._name.items():
            joined = "".join(_tokens(name))
            k = _plain(joined)
            self._key[code], self._toneless[code], self._exact[code] = k, _toneless(joined), joined
            self._by_dk.setdefault((self._district[code], k), []).append(code)
            self._by_k.setdefault(k, []).append(code)

        self._alias_dk: dict[tuple[str, str], list[str]] = {}
        self._alias_k: dict[str, list[str]] = {}
        for d, alias, code in zip(register.aliases["district_code"], register.aliases["alias"], register.aliases["unit_code"]):
            k = name_key(alias)
            # A blank district means "any district", but the unit still has one.
            for bucket in (self._alias_dk.setdefault((self._district[code], k), []), self._alias_k.setdefault(k, [])):
                if code not in bucket:
                    bucket.append(code)

        self._district_keys: dict[str, str] = {}
        for code, name, short in zip(
            register.districts["district_code"], register.districts["district_name"], register.districts["short_name"]
        ):
            self._district_keys[code] = district_key(short) or district_key(name)
        # Several districts could share a key only in a broken register; such a
        # key is ambiguous and never matches.
        key_counts = Counter(self._district_keys.values())
        self._district_by_key: dict[str, str] = {
            k: d for d, k in self._district_keys.items() if k and key_counts[k] == 1
        }
        self._longest_district_key = max((len(k) for k in self._district_by_key), default=0)
        self._district_d_aware: dict[str, str] = {
            code: _d_aware("".join(_strip_district_prefix(_tokens(short))))
            for code, short in zip(register.districts["district_code"], register.districts["short_name"])
        }
        self._suggest_choices: dict[str, tuple[str, str]] = {
            code: (self._key[code], " ".join(_tokens(name))) for code, name in self._name.items()
        }
        # Answers already given (``memo.recall``): unit names and title lines repeat every period.
        self._unit_matches: dict[tuple, UnitMatch] = {}
        self._text_districts: dict[tuple, str | None] = {}

    def __getstate__(self) -> dict:
        # Sent to every parse worker: the remembered answers stay behind.
        return {**self.__dict__, "_unit_matches": {}, "_text_districts": {}}

    # ------------------------------------------------------------- units

    def normalize_code(self, code: Any) -> str | None:
        return normalize_code(code, self._code_width)

    def _norm_district(self, district_code: Any) -> str | None:
        d = normalize_code(district_code, self._district_width)
        if d is not None and d not in self._districts:
            raise ValueError(f"district_code {district_code!r} is not in the register")
        return d

    def _resolve(self, cands: list[str], v: _Variant) -> list[str]:
        if len(cands) > 1 and v.type_hint:
            typed = [c for c in cands if v.type_hint in self._types[c]]
            if typed:
                cands = typed
        # Names that differ only by diacritics ("Ia Băng" / "Ia Bang" in one
        # district) are told apart by the diacritics as written. An unaccented
        # "Ia Bang" is taken literally: if it really meant Ia Băng, the return
        # then lists Ia Bang twice and misses Ia Băng, which the checks report.
        if len(cands) > 1:
            for attr, value in ((self._toneless, v.toneless), (self._exact, v.exact)):
                narrowed = [c for c in cands if attr[c] == value]
                if len(narrowed) == 1:
                    return narrowed
                if narrowed:
                    cands = narrowed
        return cands

    def _lookup(self, name: Any, district: str | None) -> tuple[list[str], str | None]:
        variants = _variants(name)
        if not variants:
            return [], None
        for method, by_dk, by_k in (("name", self._by_dk, self._by_k), ("alias", self._alias_dk, self._alias_k)):
            for v in variants:
                cands = by_dk.get((district, v.key), []) if district is not None else by_k.get(v.key, [])
                if cands:
                    return self._resolve(list(cands), v), method
        return [], None

    def match_unit(self, name: str | None, code: Any, district_code: str | None) -> UnitMatch:
        """The register unit a row names: by code when it is a register code, else by name.

        Name matching is within ``district_code``; with None it covers the
        province and succeeds only when the name is unambiguous there.
        """
        return recall(self._unit_matches, _MEMO_SIZE, self._match_unit, name, code, district_code)

    def _match_unit(self, name: str | None, code: Any, district_code: str | None) -> UnitMatch:
        district = self._norm_district(district_code)
        c = self.normalize_code(code)
        if c is not None and c in self._district:
            conflict = False
            if name is not None:
                cands, _ = self._lookup(name, district or self._district[c])
                conflict = bool(cands) and c not in cands
            return UnitMatch(c, "code", conflict, self._district[c])
        cands, method = self._lookup(name, district)
        if len(cands) == 1:
            return UnitMatch(cands[0], method, False, self._district[cands[0]], code_unknown=c is not None)
        return UnitMatch(None, None, False, None, tuple(cands), code_unknown=c is not None)

    def infer_district(self, names: Sequence[Any], codes: Sequence[Any]) -> DistrictGuess:
        """The district whose units the rows name; counts let a caller spot a mixed return."""
        inclusive: Counter[str] = Counter()
        exclusive: Counter[str] = Counter()
        rows_matched = 0
        n = max(len(names), len(codes))
        for i in range(n):
            name = names[i] if i < len(names) else None
            code = self.normalize_code(codes[i] if i < len(codes) else None)
            if code is not None and code in self._district:
                districts = {self._district[code]}
            else:
                cands, _ = self._lookup(name, None)
                districts = {self._district[c] for c in cands}
            if not districts:
                continue
            rows_matched += 1
            inclusive.update(districts)
            if len(districts) == 1:
                exclusive.update(districts)
        if not inclusive:
            return DistrictGuess(None, {}, False, {}, 0)
        ranked = sorted(inclusive, key=lambda d: (-inclusive[d], -exclusive[d]))
        best = ranked[0]
        tie = len(ranked) > 1 and (inclusive[ranked[1]], exclusive[ranked[1]]) == (inclusive[best], exclusive[best])
        return DistrictGuess(
            None if tie else best,
            {d: exclusive[d] for d in ranked if exclusive[d] > 0},
            tie,
            {d: inclusive[d] for d in ranked},
            rows_matched,
        )

    # --------------------------------------------------------- districts

    def _district_spans(self, tokens: list[str]) -> list[tuple[int, int, str]]:
        """(start, end, district) where consecutive whole tokens spell a district key."""
        plain = [_plain(t) for t in tokens]
        wanted, longest = self._district_by_key, self._longest_district_key
        spans = []
        for i in range(len(plain)):
            acc = ""
            for j in range(i, len(plain)):
                acc += plain[j]
                if len(acc) > longest:
                    break
                if acc in wanted:
                    spans.append((i, j + 1, wanted[acc]))
        return spans

    @staticmethod
    def _pick(spans: list[tuple[int, int, str]]) -> str | None:
        """The one district left after dropping matches inside a longer one."""
        kept = [
            s
            for s in spans
            if not any(o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)
        ]
        found = {s[2] for s in kept}
        return found.pop() if len(found) == 1 else None

    def _preceded_by_district_word(self, tokens: list[str], start: int) -> bool:
        before = tokens[:start]
        for seq in _DISTRICT_PREFIXES:
            n = len(seq)
            if n <= len(before) and all(_is_word(t, w) for t, w in zip(before[-n:], seq)):
                return True
        return False

    def district_from_text(self, text: Any) -> str | None:
        """The district named in a title line ("HUYỆN ỦY CHƯ PĂH", "Đảng bộ huyện KBang")."""
        return recall(self._text_districts, _MEMO_SIZE, self._district_from_text, text)

    def _district_from_text(self, text: Any) -> str | None:
        tokens = _tokens(text)
        spans = self._district_spans(tokens)
        if not spans:
            return None
        # A name right after "Huyện ủy", "Thị xã", "TP", … is the strongest
        # signal; a bare name ("Chư Păh, ngày …") is used only without one.
        introduced = [s for s in spans if self._preceded_by_district_word(tokens, s[0])]
        if introduced:
            return self._pick(introduced)
        # Bare words are weaker evidence: when the writer typed diacritics, a
        # "d" must not stand for "đ" ("giáo dục cơ sở" is not Đức Cơ).
        bare = [
            s
            for s in spans
            if not _has_marks("".join(tokens[s[0]:s[1]]))
            or _d_aware("".join(tokens[s[0]:s[1]])) == self._district_d_aware[s[2]]
        ]
        return self._pick(bare)

    def district_from_filename(self, file_name: str) -> str | None:
        """The district a file name suggests ("BC CBCQ ChuProng (sua lan 2).xlsx"), if unambiguous."""
        stem = PurePath(str(file_name).replace("\\", "/")).name
        stem = re.sub(r"(\.[A-Za-z0-9]{1,5})+$", "", stem)
        # Digits separate words too: "IaPa_201612", "KBang2016".
        tokens = _tokens(re.sub(r"\d+", " ", stem))
        found = self._pick(self._district_spans(tokens))
        if found is not None:
            return found
        # Run-together names ("BCChuProng"): plain containment, longest wins.
        letters = _plain("".join(tokens))
        spans = []
        for d, k in self._district_keys.items():
            # A substring test first: a national register has hundreds of districts, a name few.
            if not k or k not in letters:
                continue
            start = letters.find(k)
            while start != -1:
                spans.append((start, start + len(k), d))
                start = letters.find(k, start + len(k))  # non-overlapping, as re.finditer
        return self._pick(spans)

    # -------------------------------------------------------- suggestions

    def suggest(self, name: str, district_code: str | None, limit: int = 3) -> list[str]:
        """Register names closest to ``name`` for a refusal message (the district's own when known).

        Never used to match: a suggestion is only shown to a person.
        """
        if not name or limit <= 0:
            return []
        variants = _variants(name)
        if not variants:
            return []
        key = variants[0].key
        display = " ".join(_strip_unit_prefix(_tokens(name))[0])
        try:
            district = self._norm_district(district_code)
        except ValueError:
            district = None

        def score(code: str) -> float:
            k, disp = self._suggest_choices[code]
            return max(fuzz.ratio(key, k), fuzz.ratio(display, disp))

        # A clerk is helped by a close name of their own district, and misled by
        # a far one or one from elsewhere: the district's units only, when known.
        cutoff = 60.0
        pool = [c for c in self._name if district is None or self._district[c] == district]
        scored = [(s, c) for s, c in ((score(c), c) for c in pool) if s >= cutoff]
        scored.sort(key=lambda sc: (-sc[0], sc[1]))
        out: list[str] = []
        for _, c in scored:
            n = self._name[c]
            if n not in out:
                out.append(n)
            if len(out) >= limit:
                break
        return out
