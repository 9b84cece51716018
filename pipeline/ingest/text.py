"""Vietnamese text normalisation for district returns.

District workbooks come in several encodings, often mixed within one file:

* Unicode, NFC or decomposed (NFD / the "tổ hợp" keyboard form, whose
  combining marks may come in a non-canonical order);
* TCVN3 (ABC) legacy text, stored as Latin-1 lookalike characters and shown
  through ``.Vn*`` fonts (``.Vn*H`` fonts show the lowercase codes as capitals);
* VNI-Windows text (``VNI-*`` fonts), where many letters are two characters,
  a base letter followed by a mark character;
* UTF-8 bytes misread as Windows-1252 / Latin-1 ("mojibake"), sometimes with
  the bytes that cp1252 leaves undefined lost or replaced.

The decision is per string: a font name wins when the reader has one, else the
characters themselves are the evidence.  Latin-1-only strings can be genuine
Unicode ("Hoà", "An Khê") as well as legacy text, so each reading is scored for
plausibility (stray symbols, mixed case inside a word, two tone marks in one
syllable, impossible rhymes) and Unicode is kept unless another reading is
clearly better.  ``decode_cells`` lets the workbook's majority settle the
strings that stay ambiguous on their own.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ENCODINGS", "decode_cells", "decode_text", "detect_encoding", "nfc"]

ENCODINGS = ("unicode", "tcvn3", "tcvn3_upper", "vni", "mojibake")

_CHARMAP_PATH = Path(__file__).with_name("vn_legacy_charmap.json")


def _load_charmap() -> tuple[list[str], list[str], list[str]]:
    data = json.loads(_CHARMAP_PATH.read_text(encoding="utf-8"))
    u, t, v = data["U"], data["T"], data["V"]
    if not (len(u) == len(t) == len(v)):
        raise ValueError("vn_legacy_charmap.json: U, T and V must be aligned lists")
    return u, t, v


_U, _T, _V = _load_charmap()
VN_LETTERS = frozenset(_U)

# --- combining marks -------------------------------------------------------
_TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"
# Vowel modifiers must sit next to the base letter, before the tone, or NFC
# cannot compose e.g. "a + acute + breve" (both marks have combining class 230,
# so canonical reordering leaves a tone-first sequence alone).
_MODIFIER_MARKS = "\u0302\u0306\u031b"
_COMBINING_RUN_RE = re.compile("[\u0300-\u036f]{2,}")
_HAS_COMBINING_RE = re.compile("[\u0300-\u036f]")

# Characters that can only come from Unicode Vietnamese text (none of them is a
# Latin-1 lookalike or a cp1252 character), hence proof the string is Unicode.
_UNICODE_ONLY_RE = re.compile(
    "[\u0102\u0103\u0110\u0111\u0128\u0129\u0168\u0169\u01a0\u01a1\u01af\u01b0"
    "\u1ea0-\u1ef9\u0300-\u036f]"
)


def _mark_rank(ch: str) -> int:
    return 0 if ch in _MODIFIER_MARKS else 1


def _reorder_marks(m: re.Match[str]) -> str:
    return "".join(sorted(m.group(), key=_mark_rank))


def nfc(s: str) -> str:
    """NFC as written (tone placement is not changed), NBSP as space, stripped."""
    if s.isascii():
        return s.strip()
    if "\xa0" in s or "\u202f" in s:
        s = s.replace("\xa0", " ").replace("\u202f", " ")
    if _HAS_COMBINING_RE.search(s):
        s = unicodedata.normalize("NFD", s)
        s = _COMBINING_RUN_RE.sub(_reorder_marks, s)
        s = unicodedata.normalize("NFC", s)
    elif not unicodedata.is_normalized("NFC", s):
        s = unicodedata.normalize("NFC", s)
    return s.strip()


# --- legacy decoders -------------------------------------------------------
def _build_decoder(table: dict[str, str]) -> tuple[re.Pattern[str], dict[str, str]]:
    # Longest keys first so "ôù" (ớ) wins over "ô" (ơ), "Aµ" (À) over "µ" (à).
    keys = sorted(table, key=len, reverse=True)
    return re.compile("|".join(re.escape(k) for k in keys)), table


_TCVN3_TABLE = dict(zip(_T, _U))
_VNI_TABLE = dict(zip(_V, _U))
# Excel's UPPER/PROPER and hand edits can leave a base letter and its VNI mark
# in different cases ("Aù"); the base letter decides the case of the result.
for _v, _u in list(_VNI_TABLE.items()):
    if len(_v) == 2:
        _alt = _v[0] + _v[1].swapcase()
        if _alt not in _VNI_TABLE and _alt[1] != _v[1]:
            _VNI_TABLE[_alt] = _u
_TCVN3_RE, _ = _build_decoder(_TCVN3_TABLE)
_VNI_RE, _ = _build_decoder(_VNI_TABLE)
_TCVN3_CHARS = frozenset("".join(_T)) - frozenset(map(chr, range(128)))
_VNI_CHARS = frozenset("".join(_V)) - frozenset(map(chr, range(128)))
_LATIN1_HIGH_RE = re.compile("[\xa1-\xff]")


def _decode_tcvn3(s: str) -> str:
    return _TCVN3_RE.sub(lambda m: _TCVN3_TABLE[m.group()], s)


def _decode_vni(s: str) -> str:
    return _VNI_RE.sub(lambda m: _VNI_TABLE[m.group()], s)


def _leftover(s: str, decoded_re: re.Pattern[str]) -> int:
    """Latin-1 letters/symbols the legacy table could not consume."""
    return len(_LATIN1_HIGH_RE.findall(decoded_re.sub("", s)))


def _auto_upper(decoded: str) -> str:
    # Text typed for a .Vn*H font keeps lowercase codes for the accented
    # letters while plain letters are usually typed in capitals ("HUYÖN").
    # Capitalise when every ASCII letter is a capital and some word switches
    # from a lowercase letter back to a capital; names like "SRó" or "AL Bá"
    # (capitals then lowercase) stay as they are.
    if decoded == decoded.upper() or any("a" <= ch <= "z" for ch in decoded):
        return decoded
    if not any("A" <= ch <= "Z" for ch in decoded):
        return decoded
    for word in _WORD_RE.findall(decoded):
        seen_lower = False
        for ch in word:
            if ch.islower():
                seen_lower = True
            elif seen_lower and ch.isupper():
                return decoded.upper()
    return decoded


# --- mojibake --------------------------------------------------------------
_CP1252_UNDEFINED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
_CHAR_TO_BYTE: dict[str, int] = {}
for _b in range(0x80, 0xA0):
    try:
        _CHAR_TO_BYTE[bytes([_b]).decode("cp1252")] = _b
    except UnicodeDecodeError:
        pass
_BACKSLASH_RE = re.compile(r"\\x([89][0-9a-fA-F])")
# A lead byte (as cp1252/Latin-1 text) followed by a continuation character:
# cheap pre-filter before trying the byte-level decode.
_MOJIBAKE_HINT_RE = re.compile(
    "[\xc2-\xf4][\x80-\xbf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039"
    "\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153"
    "\u017e\u0178\udc80-\udcbf\ufffd]|[\xc2-\xf4](?=[\\s\\x00-\\x7f]|$)"
)
_VN_DECODABLE = VN_LETTERS | set(_TONE_MARKS) | set(_MODIFIER_MARKS)
_UNKNOWN = -1  # a byte replaced by U+FFFD
_DROPPED = -2  # a byte lost without trace
_QUESTION = -3  # a "?": a replaced byte inside a sequence, else a question mark


def _to_bytes(s: str, question_marks: bool = False) -> list[int] | None:
    out = []
    for ch in s:
        o = ord(ch)
        if question_marks and ch == "?":
            out.append(_QUESTION)
        elif o < 0x100:
            out.append(o)
        elif ch in _CHAR_TO_BYTE:
            out.append(_CHAR_TO_BYTE[ch])
        elif 0xDC80 <= o <= 0xDCFF:  # errors="surrogateescape"
            out.append(o - 0xDC00)
        elif o == 0xFFFD:  # errors="replace"
            out.append(_UNKNOWN)
        else:
            return None
    return out


def _seq_len(b: int) -> int:
    if 0xC2 <= b <= 0xDF:
        return 1
    if 0xE0 <= b <= 0xEF:
        return 2
    if 0xF0 <= b <= 0xF4:
        return 3
    return 0


@functools.lru_cache(maxsize=4096)
def _guesses(lead: int, known: tuple[int, ...], missing_at: int) -> tuple[str, ...]:
    """Vietnamese characters a sequence can be when one cp1252-undefined byte is lost."""
    found = []
    for b in _CP1252_UNDEFINED:
        seq = list(known)
        seq.insert(missing_at, b)
        try:
            ch = bytes([lead, *seq]).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if ch in _VN_DECODABLE:
            found.append(ch)
    # Most frequent first so ties in context fall on the likeliest letter.
    order = "ờọềỏỐÁÍÝĐ\u0301"
    return tuple(sorted(found, key=lambda c: order.index(c) if c in order else 99))


def _unmojibake(s: str) -> tuple[str, int, int, int] | None:
    """Decode cp1252/Latin-1-read UTF-8.

    Returns (text, exact multibyte sequences, guessed sequences, invalid
    sequences), or None when the string has characters no byte explains.
    """
    if "\\x" in s:
        s = _BACKSLASH_RE.sub(lambda m: chr(int(m.group(1), 16)), s)
    res = _unmojibake_bytes(s, False)
    if "?" in s:
        # Some converters write "?" for the bytes cp1252 leaves undefined
        # ("Ä?ak" for "Đak").  A "?" is read as a byte only where a sequence
        # lacks one, and only when every sequence then decodes: a question
        # mark after a complete letter stays one.
        alt = _unmojibake_bytes(s, True)
        if alt is not None and alt[3] == 0 and (alt[1] or alt[2]):
            return alt
    return res


def _unmojibake_bytes(s: str, question_marks: bool) -> tuple[str, int, int, int] | None:
    bs = _to_bytes(s, question_marks)
    if bs is None:
        return None
    if _UNKNOWN not in bs and _QUESTION not in bs:
        try:
            text = bytes(bs).decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return text, sum(1 for ch in text if ord(ch) > 0x7F), 0, 0
    pieces: list[str | tuple[str, ...]] = []
    exact = guessed = invalid = 0
    i, n = 0, len(bs)
    while i < n:
        b = bs[i]
        if 0 <= b < 0x80 or b == _QUESTION:
            pieces.append(s[i])
            i += 1
            continue
        need = _seq_len(b) if b >= 0 else 0
        if not need:
            invalid += 1
            pieces.append(s[i])
            i += 1
            continue
        cont: list[int] = []
        j = i + 1
        while len(cont) < need:
            if j < n and (bs[j] in (_UNKNOWN, _QUESTION) or 0x80 <= bs[j] <= 0xBF):
                cont.append(bs[j])
                j += 1
            else:
                cont.append(_DROPPED)
        cont = [_UNKNOWN if x == _QUESTION else x for x in cont]
        holes = [k for k, x in enumerate(cont) if x < 0]
        if not holes:
            try:
                pieces.append(bytes([b, *cont]).decode("utf-8"))
                exact += 1
                i = j
                continue
            except UnicodeDecodeError:
                cands: tuple[str, ...] = ()
        elif len(holes) == 1:
            known = tuple(x for x in cont if x >= 0)
            cands = _guesses(b, known, holes[0])
        else:
            cands = ()
        if cands:
            guessed += 1
            pieces.append(cands if len(cands) > 1 else cands[0])
            i = j
        else:
            invalid += 1
            pieces.append(s[i])
            i += 1
    if any(isinstance(p, tuple) for p in pieces):
        pieces = _resolve_guesses(pieces)
    return "".join(pieces), exact, guessed, invalid  # type: ignore[arg-type]


_CONT = "[\x80-\xbf" + "".join(_CHAR_TO_BYTE) + "\udc80-\udcbf]"
_EXACT_SEQ_RE = re.compile(f"[\xc2-\xdf]{_CONT}|\xe1{_CONT}{{2}}")


def _repair_seq(m: re.Match[str], *, lookalikes: bool = False) -> str:
    piece = m.group()
    # "Ã" + NBSP is the mojibake of "à" but also a genuine capital Ã before a
    # no-break space ("XÃ\u00a0IA KA"): such pieces, made only of letters and
    # spaces Vietnamese uses, are repaired only in the second pass below.
    if not lookalikes and _is_lookalike(piece):
        return piece
    res = _unmojibake(piece)
    if res is not None and res[1] == 1 and res[3] == 0 and res[0] in _VN_DECODABLE:
        return res[0]
    return piece


def _is_lookalike(piece: str) -> bool:
    return all(ch in VN_LETTERS or ch.isspace() for ch in piece)


# A no-break space that separates nothing (at the end, before a space or a
# sign) after a lead-byte letter is the second byte of "à", "Ġ"…, not a space.
_DANGLING_NBSP_RE = re.compile("[\xc2-\xdf]\xa0(?![^\\W_])")


def _raw_penalty(s: str) -> int:
    """Plausibility of a string as it stands, when weighed against its mojibake decoding."""
    return _penalty(s) + len(_DANGLING_NBSP_RE.findall(s))


def _repair_partial(s: str) -> str:
    """Fix mojibake pieces inside otherwise Unicode text ("Chư PÄƒh").

    Pieces that read as Vietnamese letters themselves are repaired only when
    that makes the whole string read as better Vietnamese.
    """
    out = _EXACT_SEQ_RE.sub(_repair_seq, s)
    if not any(_is_lookalike(m.group()) for m in _EXACT_SEQ_RE.finditer(out)):
        return out
    full = _EXACT_SEQ_RE.sub(functools.partial(_repair_seq, lookalikes=True), out)
    return full if _penalty(nfc(full)) < _raw_penalty(out) else out


def _resolve_guesses(pieces: list) -> list[str]:
    """Pick, for each ambiguous lost byte, the letter that makes its word most plausible."""
    flat = [p if isinstance(p, str) else p[0] for p in pieces]
    for k, p in enumerate(pieces):
        if isinstance(p, str):
            continue
        lo = k
        while lo > 0 and not flat[lo - 1].isspace():
            lo -= 1
        hi = k + 1
        while hi < len(flat) and not flat[hi].isspace():
            hi += 1
        best = min(
            p,
            key=lambda c: _penalty(
                unicodedata.normalize("NFC", "".join(flat[lo:k]) + c + "".join(flat[k + 1 : hi]))
            ),
        )
        flat[k] = best
    return flat


# --- plausibility ----------------------------------------------------------
_WORD_RE = re.compile(r"[^\W\d_]+")
_TONED = frozenset(
    c for c in _U if any(m in unicodedata.normalize("NFD", c) for m in _TONE_MARKS)
)
_STRIP_TONES = str.maketrans(
    {
        c: unicodedata.normalize(
            "NFC", "".join(m for m in unicodedata.normalize("NFD", c) if m not in _TONE_MARKS)
        )
        for c in _U
    }
)
_VOWELS = frozenset("aăâeêioôơuưy")
_CLUSTERS = frozenset(
    "a ă â e ê i o ô ơ u ư y ai ao au ay âu ây eo êu ia iê iu oa oă oe oi oo ôi ơi ua uâ uê "
    "ui uô uơ uy ưa ưi ươ ưu yê iêu oai oay oao oeo uây uôi uya uyê uyu ươi ươu yêu".split()
)
_NO_FINAL = frozenset(
    "ai ao au ay âu ây eo êu iu oi ôi ơi ui ưi ưu oai oay oao oeo uây uôi uya uyu ươi ươu iêu "
    "yêu ia ua ưa".split()
)
_NEED_FINAL = frozenset("ă â iê yê uô ươ uâ oă uyê".split())
# h, k, r, l, s close syllables in the Bahnar/Jrai spellings of Gia Lai names.
_FINALS = frozenset(["", "c", "ch", "m", "n", "ng", "nh", "p", "t", "h", "k", "r", "l", "s"])
_NEUTRAL_RE = re.compile("[\x00-\x7f\xa0\xb0\u2000-\u206f\u20ac\u2116]")


_FREE_TONE = frozenset("oa oe uy uê oo".split())  # "hoà" and "hòa" are both in use


def _tone_ok(cluster: str, final: str, pos: int) -> bool:
    if len(cluster) == 1:
        return pos == 0
    if len(cluster) == 2:
        if cluster in _FREE_TONE:
            return pos == 1 if final and cluster != "oo" else True
        return pos == (0 if cluster in _NO_FINAL else 1)
    return pos == (2 if cluster == "uyê" else 1)


def _syllable_cost(word: str) -> int:
    """0 for a well-formed syllable, 1 for an odd shape, 2 for a misplaced tone.

    Lenient on onsets and on the finals of Bahnar/Jrai spellings: it only has
    to rank readings of the same characters against each other.
    """
    lw = word.lower()
    w = lw.translate(_STRIP_TONES)
    i = 0
    while i < len(w) and w[i] not in _VOWELS:
        i += 1
    if i == len(w):
        return 0  # abbreviations such as "HD", "BTCTW"
    onset = w[:i]
    j = i
    while j < len(w) and w[j] in _VOWELS:
        j += 1
    cluster, final = w[i:j], w[j:]
    if final not in _FINALS:
        return 1
    tone_at = next((k - i for k in range(i, j) if lw[k] in _TONED), None)
    options = [(cluster, 0)]
    if len(cluster) > 1 and (
        (onset.endswith("q") and cluster[0] == "u")
        or (onset.endswith("g") and cluster[0] == "i")
        or (not onset and cluster[0] == "y")
    ):
        options.append((cluster[1:], 1))
    # Vowel runs Vietnamese never writes ("aâ", "uù", "ei") are what VNI
    # base+mark pairs and TCVN3 codes look like when read as Unicode: they
    # cost as much as a misplaced tone, a merely odd final costs less.
    cost = 2
    for c, shift in options:
        if c not in _CLUSTERS:
            continue
        cost = min(cost, 1)
        if final and c in _NO_FINAL:
            continue
        if not final and c in _NEED_FINAL:
            continue
        if final in ("ch", "nh") and c[-1] not in "aêiy":
            continue
        # "ơng" is no Vietnamese rhyme but Gia Lai names use it (Kông Lơng Khơng).
        if final in ("ng", "c") and (c[-1] in "iy" or c in ("ê", "uê") or (c == "ơ" and final == "c")):
            continue
        if tone_at is not None and not _tone_ok(c, final, tone_at - shift):
            cost = 2
            continue
        return 0
    return cost


def _penalty(text: str) -> int:
    bad = 0
    for ch in _NEUTRAL_RE.sub("", text):
        if ch not in VN_LETTERS:
            bad += 1
    return 10 * bad + sum(map(_word_score, _WORD_RE.findall(text)))


@functools.lru_cache(maxsize=65536)
def _word_score(word: str) -> int:
    """A word's part of ``_penalty``. Remembered: the same syllables recur in every reading
    of every string (a return's strings hold a few hundred words, mostly the same ones)."""
    score = 0 if word.islower() or word.isupper() or word.istitle() else 3
    if sum(1 for ch in word if ch in _TONED) > 1:
        return score + 3
    return score + _syllable_cost(word)


_TONE_COST = {"\u0300": 1, "\u0301": 1, "\u0323": 1, "\u0309": 2, "\u0303": 3}
_LETTER_COST = {
    c: sum(_TONE_COST.get(m, 0) for m in unicodedata.normalize("NFD", c)) for c in _U
}


def _prior(text: str) -> int:
    """Rarer tones cost more: breaks ties between legacy readings ("Chö" is VNI "Chư" before TCVN3 "Chử")."""
    return sum(_LETTER_COST.get(ch, 0) for ch in text)


class _Verdict(tuple):
    """(choice, plausible readings, definite?) for one string."""

    __slots__ = ()

    def __new__(cls, choice: str | None, plausible: frozenset[str], definite: bool):
        return super().__new__(cls, (choice, plausible, definite))

    choice = property(lambda self: self[0])
    plausible = property(lambda self: self[1])
    definite = property(lambda self: self[2])


_NEUTRAL = _Verdict(None, frozenset(), False)
_UNICODE = _Verdict("unicode", frozenset({"unicode"}), True)


@functools.lru_cache(maxsize=65536)
def _evaluate(s: str) -> _Verdict:
    if s.isascii():
        return _NEUTRAL
    if _UNICODE_ONLY_RE.search(s):
        return _UNICODE
    scores: dict[str, int] = {"unicode": _penalty(s)}
    if _MOJIBAKE_HINT_RE.search(s):
        # The Unicode reading includes repairing mojibake pieces in it.
        raw = scores["unicode"] + len(_DANGLING_NBSP_RE.findall(s))
        scores["unicode"] = min(scores["unicode"], _penalty(_repair_partial(s)))
        res = _unmojibake(s)
        if res is not None and res[3] == 0 and (res[1] or res[2]):
            score = _penalty(nfc(res[0]))
            if res[1] and score < raw and score <= scores["unicode"] + 2:
                # Genuine Vietnamese text almost never holds a valid UTF-8
                # sequence in Latin-1 lookalikes (a letter right before a
                # cp1252 symbol), so an exact one settles it when the decoded
                # text reads better than the string as it stands: "Ã" + NBSP
                # is "à" in "ThÃ\u00a0nh" but a capital Ã in "XÃ\u00a0IA".
                return _Verdict("mojibake", frozenset({"mojibake"}), True)
            scores["mojibake"] = score
    if _LATIN1_HIGH_RE.search(s):
        scores["tcvn3"] = _penalty(_auto_upper(_decode_tcvn3(s))) + 10 * _leftover(s, _TCVN3_RE)
        scores["vni"] = _penalty(_decode_vni(s)) + 10 * _leftover(s, _VNI_RE)
    if len(scores) == 1:
        return _NEUTRAL  # only punctuation beyond ASCII: every reading is the same text
    best = min(scores.values())
    # A margin of one: a single odd rhyme (Bahnar/Jrai spellings) must not
    # turn genuine Unicode, or one legacy reading, into another.
    plausible = frozenset(enc for enc, sc in scores.items() if sc <= best + 1)
    if "unicode" in plausible:
        return _Verdict("unicode", plausible, plausible == {"unicode"})
    if len(plausible) == 1:
        return _Verdict(next(iter(plausible)), plausible, True)
    decoded = {"tcvn3": _decode_tcvn3, "vni": _decode_vni, "mojibake": lambda x: (_unmojibake(x) or (x,))[0]}
    choice = min(plausible, key=lambda enc: (2 * scores[enc] + _prior(decoded[enc](s)), enc))
    return _Verdict(choice, plausible, False)


# --- fonts -----------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def font_encoding(font: str | None) -> str | None:
    """Encoding implied by a font name, or None when the font says nothing."""
    if not font:
        return None
    name = font.strip()
    low = name.lower()
    if low.startswith(("vni-", "vni ")):
        return "vni"
    if low.startswith(".vn"):
        return "tcvn3_upper" if name.endswith("H") else "tcvn3"
    return None


@functools.lru_cache(maxsize=65536)
def _apply(s: str, enc: str | None, *, guess_case: bool = False) -> str:
    if enc == "tcvn3":
        out = _decode_tcvn3(s)
        return nfc(_auto_upper(out) if guess_case else out)
    if enc == "tcvn3_upper":
        return nfc(_decode_tcvn3(s)).upper()
    if enc == "vni":
        return nfc(_decode_vni(s))
    if enc in ("unicode", None) and _MOJIBAKE_HINT_RE.search(s):
        return nfc(_repair_partial(s))
    if enc == "mojibake":
        res = _unmojibake(s)
        return nfc(res[0]) if res is not None else nfc(s)
    return nfc(s)


# --- public API ------------------------------------------------------------
def detect_encoding(s: str, font: str | None = None) -> str | None:
    """Encoding this one string shows evidence of; None when neutral or ambiguous.

    A ``.Vn*``/``VNI-*`` font wins over the characters, except that letters
    which exist only in Unicode (ư, ơ, đ, ạ…, combining marks) prove Unicode.
    A string that reads as Unicode and as something else ("Hoà": Unicode, or
    VNI "Hồ") gives None; one that is clearly legacy but could be either
    TCVN3 or VNI gives the likelier of the two.
    """
    if not isinstance(s, str):
        return None
    fenc = font_encoding(font)
    if s.isascii():
        if fenc == "tcvn3_upper" and s != s.upper():
            return "tcvn3_upper"
        return None
    if fenc is not None and not _UNICODE_ONLY_RE.search(s):
        return fenc
    v = _evaluate(s)
    if v.definite or v.choice != "unicode":
        return v.choice
    return None


def decode_text(s: str, font: str | None = None, hint: str | None = None) -> str:
    """One string to NFC Unicode (stripped, NBSP as space).

    ``hint`` is an encoding decided for the whole workbook; it settles strings
    that are ambiguous on their own (e.g. "Hoà" is Unicode "Hoà" or VNI "Hồ")
    but never overrides a string's own clear evidence.  Non-strings are
    returned unchanged.
    """
    if not isinstance(s, str):
        return s
    fenc = font_encoding(font) if font else None
    if s.isascii():
        if fenc == "tcvn3_upper":
            return s.strip().upper()
        return s.strip()
    if hint is not None and hint not in ENCODINGS:
        raise ValueError(f"unknown encoding hint {hint!r}; expected one of {ENCODINGS}")
    return _decode_cached(s, fenc, hint)


def _family(enc: str) -> str:
    return "tcvn3" if enc == "tcvn3_upper" else enc


@functools.lru_cache(maxsize=65536)
def _decode_cached(s: str, fenc: str | None, hint: str | None) -> str:
    if _UNICODE_ONLY_RE.search(s):
        return nfc(_repair_partial(s) if _MOJIBAKE_HINT_RE.search(s) else s)
    if fenc is not None:
        return _apply(s, fenc)
    v = _evaluate(s)
    enc = v.choice
    if not v.definite and hint is not None and _family(hint) in v.plausible:
        enc = hint
    return _apply(s, enc, guess_case=True)


Position = tuple[Hashable, int, int]

# How far (in cells) neighbours count as evidence for an ambiguous string:
# far enough to reach past a blank or numeric cell or two, near enough to
# stay inside the block (template headings or typed-in data) it belongs to.
_RADIUS_GRID = 3
_RADIUS_LIST = 4


def decode_cells(
    values: Sequence[Any],
    fonts: Sequence[str | None] | None = None,
    positions: Sequence[Position] | None = None,
) -> list[Any]:
    """Decode a whole workbook's strings; neighbours, then the majority, settle ambiguous ones.

    Strings with clear evidence (or a legacy font) vote.  An ambiguous string
    ("Hoà": Unicode, or VNI "Hồ") takes the encoding its nearest voting
    neighbours agree on, else the workbook's majority, when it reads
    plausibly in it: a template typed in one encoding and data typed in
    another are settled block by block.  Neighbours are cells within
    ``_RADIUS_GRID`` rows/columns when ``positions`` gives each value's
    ``(sheet, row, column)``, else values within ``_RADIUS_LIST`` places in
    the list (give the values row by row).

    ``fonts`` (aligned with ``values``) are the cells' font names when the
    workbook uses legacy fonts: ``.Vn*``/``VNI-*`` decide the cell, any other
    named font (Times New Roman, Arial…) is evidence of Unicode that keeps a
    plausible Unicode string as it is, and None leaves the cell to its text.

    Non-strings pass through untouched, so raw cell values can be given as-is.
    """
    n = len(values)
    if fonts is not None and len(fonts) != n:
        raise ValueError("fonts must be aligned with values")
    if positions is not None and len(positions) != n:
        raise ValueError("positions must be aligned with values")
    if fonts is None:
        settled = _decode_by_majority(values)
        if settled is not None:
            return settled
    strong: Counter[str] = Counter()
    weak: Counter[str] = Counter()
    fencs: list[str | None] = [None] * n
    verdicts: list[_Verdict | None] = [None] * n
    ambiguous: list[int] = []
    for idx, s in enumerate(values):
        font = fonts[idx] if fonts is not None else None
        fenc = font_encoding(font) if font else None
        fencs[idx] = fenc
        if not isinstance(s, str) or s.isascii():
            continue
        if fenc is not None and not _UNICODE_ONLY_RE.search(s):
            v = _Verdict(fenc, frozenset({_family(fenc)}), True)
        else:
            v = _evaluate(s)
            if font and fenc is None and not v.definite and "unicode" in v.plausible:
                # A Unicode font shows legacy codes as gibberish, so whoever
                # typed the cell saw Unicode (or mojibake, also in such fonts).
                kept = v.plausible & {"unicode", "mojibake"}
                v = _Verdict("unicode", kept, kept == {"unicode"})
        verdicts[idx] = v
        if v.definite:
            strong[_family(v.choice)] += 1
        elif v.choice is not None:
            ambiguous.append(idx)
            if v.choice != "unicode":
                weak[v.choice] += 1
    votes = strong or weak
    majority = votes.most_common(1)[0][0] if votes else None
    local: dict[str, str | None] = {}
    if len(strong) > 1 and ambiguous:  # with one kind of evidence the neighbours say what the majority says
        local = _local_choices(values, verdicts, positions, ambiguous)
    out: list[Any] = []
    for idx, s in enumerate(values):
        v, fenc = verdicts[idx], fencs[idx]
        if not isinstance(s, str):
            out.append(s)
        elif v is None:
            out.append(s.strip().upper() if fenc == "tcvn3_upper" else s.strip())
        elif v.definite:
            out.append(_apply(s, v.choice, guess_case=fenc is None))
        else:
            enc = v.choice
            near = local.get(s)
            if near is not None and near in v.plausible:
                enc = near
            elif majority is not None and majority in v.plausible:
                enc = majority
            out.append(_apply(s, enc, guess_case=True))
    return out


def _decode_by_majority(values: Sequence[Any]) -> list[Any] | None:
    """``decode_cells`` without fonts when the clear evidence names one encoding at most
    (the usual workbook), else None: then neighbours play no part and each string's
    reading depends only on itself and the workbook's majority, so it is remembered."""
    verdicts = [_evaluate(s) for s in values if isinstance(s, str) and not s.isascii()]
    strong: Counter[str] = Counter(_family(v.choice) for v in verdicts if v.definite)
    if len(strong) > 1:
        return None
    # Counted in the order decode_cells counts them, so ties fall the same way.
    votes = strong or Counter(v.choice for v in verdicts if not v.definite and v.choice not in (None, "unicode"))
    majority = votes.most_common(1)[0][0] if votes else None
    return [_settle_alone(s, majority) if isinstance(s, str) else s for s in values]


@functools.lru_cache(maxsize=65536)
def _settle_alone(s: str, majority: str | None) -> str:
    """One string as decode_cells settles it without fonts and without neighbours' votes."""
    if s.isascii():
        return s.strip()
    v = _evaluate(s)
    if v.definite:
        return _apply(s, v.choice, guess_case=True)
    enc = majority if majority is not None and majority in v.plausible else v.choice
    return _apply(s, enc, guess_case=True)


def _local_choices(
    values: Sequence[Any],
    verdicts: list[_Verdict | None],
    positions: Sequence[Position] | None,
    ambiguous: list[int],
) -> dict[str, str | None]:
    """Per ambiguous string, the encoding the voting cells around its occurrences agree on."""
    where: dict[int, Hashable] = {}
    voters: dict[Hashable, str] = {}
    rank = 0
    for idx, v in enumerate(verdicts):
        if v is None:
            continue
        # Without positions, distance counts only the strings that can carry
        # evidence: codes and numbers typed as text sit between them.
        where[idx] = positions[idx] if positions is not None else rank
        rank += 1
        if v.definite:
            voters[where[idx]] = _family(v.choice)
    local: dict[str, str | None] = {}
    # Two rounds: strings settled by their neighbours in the first ("xã",
    # "có" in every data row) then vote for the rest, such as the first data
    # row right under headings typed in another encoding.
    for _round in range(2):
        # The same string is typed the same way throughout a workbook, so the
        # neighbours of all its occurrences vote together.
        weights: dict[str, dict[str, float]] = {}
        for idx in ambiguous:
            _local_weights(voters, where[idx], weights.setdefault(values[idx], {}))
        settled: dict[str, str] = {}
        for s, weight in weights.items():
            near = _leader(weight)
            if near is not None:
                settled[s] = near
            elif weight.get("unicode", 0.0) >= 1.0:
                # Unicode right next to it, legacy text too: a string that
                # reads as valid Unicode is kept rather than handed to the
                # workbook's majority.
                near = "unicode"
            local[s] = near
        if _round == 0:
            voters = dict(voters)
            for idx in ambiguous:
                fam = settled.get(values[idx])
                if fam is not None and fam in verdicts[idx].plausible:  # type: ignore[union-attr]
                    voters[where[idx]] = fam
    return local


def _local_weights(voters: dict[Hashable, str], at: Hashable, weight: dict[str, float]) -> None:
    """Add the votes of the cells around ``at`` to ``weight``, nearer ones weighing more."""
    if isinstance(at, int):
        for d in range(1, _RADIUS_LIST + 1):
            for key in (at - d, at + d):
                fam = voters.get(key)
                if fam is not None:
                    weight[fam] = weight.get(fam, 0.0) + 1.0 / d
        return
    sheet, row, col = at  # type: ignore[misc]
    for dr in range(-_RADIUS_GRID, _RADIUS_GRID + 1):
        for dc in range(-_RADIUS_GRID, _RADIUS_GRID + 1):
            if dr or dc:
                fam = voters.get((sheet, row + dr, col + dc))
                if fam is not None:
                    weight[fam] = weight.get(fam, 0.0) + 1.0 / max(abs(dr), abs(dc))


def _leader(weight: dict[str, float]) -> str | None:
    if not weight:
        return None
    ranked = sorted(weight.items(), key=lambda kv: kv[1], reverse=True)
    best, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    # One adjacent cell, or two a step further, and a clear lead.
    return best if top >= 1.0 and top > 1.5 * runner_up else None
