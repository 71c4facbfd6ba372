"""Redaction for the compliance view of the audit log.

Whatever is copied from a tool call into the compliance view (the plain-language action, the
data touched, free-text reasons) goes through a :class:`Redactor` first. It applies:

- **field rules**: a value whose key names a secret (``password``, ``api_key``,
  ``Authorization``, ``ssn``, ...) is replaced whole by ``[redacted]``, whatever its type;
- **detectors** on every string (values, dict keys, free text): e-mail addresses,
  phone numbers, payment card numbers (Luhn-checked) and IBANs (mod-97-checked).

Replacement tokens say what was removed and are deterministic, so the same input always
gives the same view: ``[email]``, ``[phone]``, ``[card ••••4242]`` (last four digits
kept), ``[iban DE••…3000]`` (country and last four kept), ``[redacted]``. Redaction is
idempotent: no token is matched by any rule, every detector judges a boundary the same
way, and if a replacement still uncovers a neighbour the text gets one more pass.

The detectors prefer checksums and shapes to guesses. A card is 13-19 digits (single spaces
or dashes between groups) that pass Luhn and start like a real issuer (2200-2204, 2221-2720,
3, 4, 5, 6); an IBAN has a known country, that country's length and a valid mod-97 check.
Phones are ``+``-prefixed international numbers (7-15 digits, E.164) and the common national
shapes: North American ``(415) 555-2671`` / ``415-555-2671`` and trunk-prefixed
``020 7946 0958`` / ``06 12 34 56 78`` (one separator throughout, 9-13 digits). Dates,
ISO timestamps, UUIDs, version strings, amounts and short or unseparated numbers are left
alone; see ``tests/unit/test_redact.py`` for the tables of what is and is not caught.

Not caught, by design: unseparated national phone numbers (``4155552671``, ``0612345678``:
indistinguishable from ids), e-mail addresses without a dotted domain (``root@localhost``),
card numbers from networks outside the prefixes above (UATP ``1...``, some RuPay ``8...``),
and secrets in free text (``password=hunter2``, ``Bearer eyJ...``): field rules look at
keys, so structured data should reach the redactor as data, not as a string. A digit run
that passes Luhn and an issuer prefix is redacted even if it is really an order number
(over-redaction is the safe side).

A redactor is immutable after construction and safe to share between threads.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import translate
from typing import Any, Final

from handrail.errors import ConfigurationError

__all__ = [
    "DEFAULT_FIELD_PATTERNS",
    "FIELD_TOKEN",
    "Detector",
    "Redactor",
    "redact_text",
    "redact_value",
]

FIELD_TOKEN: Final = "[redacted]"
"""What replaces the whole value of a field whose key matches a field rule."""

DEFAULT_FIELD_PATTERNS: Final[tuple[str, ...]] = (
    "access_key",
    "api_key",
    "apikey",
    "authorization",
    "card_number",
    "cookie",
    "credential",
    "credentials",
    "cvc",
    "cvv",
    "iban",
    "passphrase",
    "passwd",
    "password",
    "pin",
    "private_key",
    "secret",
    "secrets",
    "ssn",
    "token",
)
"""Key names whose values are always redacted.

A plain pattern matches a key containing its words in order, whatever the case and style:
``token`` matches ``access_token``, ``refreshToken`` and ``X-Token`` (and also
``token_count``: over-redaction is the safe side), ``api_key`` matches ``apiKey`` and
``X-API-Key``, but ``ssn`` does not match ``classname`` and ``token`` does not match
``max_tokens``.
"""

_MAX_DEPTH: Final = 100
_MAX_PASSES: Final = 4
_EMAIL_TOKEN: Final = "[email]"
_PHONE_TOKEN: Final = "[phone]"


class Detector(enum.StrEnum):
    """A kind of personal data found in free text."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"


# --- detectors -------------------------------------------------------------------------
# Digits are 0-9 only, so the checksums see what a reader sees. "Word" characters in the
# boundary checks are Unicode ones, the same for every detector: a boundary that one
# detector accepts, the others accept too, which keeps redaction idempotent.

_DIGIT: Final = re.compile(r"[0-9]")
_DIGITS: Final = re.compile(r"[0-9]+")
_ASCII_DIGITS: Final = frozenset("0123456789")
# A digit group glued to one of these (or to a letter or digit) is part of something else:
# an identifier, a phone's "+", the digits kept inside a token ("••••4242", "…3000").
_GLUE: Final = frozenset("_+•…")


def _glued(ch: str) -> bool:
    return ch.isalnum() or ch in _GLUE


_EMAIL: Final = re.compile(
    r"(?<![\w.%+\-])"
    r"[\w%+\-](?:[\w.%+\-]*[\w%+\-])?"  # local part, no dot at either end
    r"@(?:[^\W_][\w\-]*\.)+[^\W\d_]{2,63}"  # labels, then a letters-only TLD
    r"(?![\w\-%+])"  # nothing an adjacent address could start with
)

# A maximal run of digit groups joined by one space or dash. Scanning left to right with no
# lookbehind, each match is a whole run; its edges are checked in _find_cards.
_DIGIT_RUN: Final = re.compile(r"[0-9]+(?:[ \-][0-9]+)*")

# The candidate is the longest plausible stretch; its real end comes from the length table.
_IBAN: Final = re.compile(r"(?<![^\W_])[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}")

# International: "+" then digit groups, each either bare or in parentheses, separated by
# one space, dot or dash ("+44 (0)20 7946 0958"). Two bare groups always need a separator,
# so there is one way to split the digits and matching stays linear.
_PHONE_GROUP: Final = re.compile(r"\([0-9]+\)|[0-9]+")
_PHONE_INTL: Final = re.compile(
    r"(?<![\w+])\+[0-9]+(?:(?:[ .\-]|(?=\()|(?<=\)))(?:\([0-9]+\)|[0-9]+))*"
)
_PHONE_NANP: Final = re.compile(
    r"(?<![\w+.\-/(])(?:1[ .\-])?(?:\([0-9]{3}\)[ .\-]?|[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}"
    r"(?![\w/]|[.,:\-(+][0-9])"
)
# Trunk prefix 0, one separator used throughout (so "01.02.2026 10:30" is not a phone).
_PHONE_TRUNK: Final = re.compile(
    r"(?<![\w+.\-/(:,])0[1-9][0-9]{0,4}([ .\-])[0-9]{2,8}(?:\1[0-9]{2,8}){0,4}"
    r"(?![\w/]|[.,:\-(+][0-9])"
)

# IBAN length by country (SWIFT IBAN registry), as "<country><length>" pairs.
_IBAN_REGISTRY: Final = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 "
    "DJ27 DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 "
    "HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 "
    "MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 "
    "RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 "
    "VA22 VG24 XK20 YE30 "
)
_IBAN_LENGTHS: Final[Mapping[str, int]] = {p[:2]: int(p[2:]) for p in _IBAN_REGISTRY.split()}

_Span = tuple[int, int, str]


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    """13-19 digits, an issuer's leading digits, and a valid Luhn check digit."""
    if not 13 <= len(digits) <= 19:
        return False
    first = digits[0]
    if first == "2":
        prefix = int(digits[:4])
        if not (2200 <= prefix <= 2204 or 2221 <= prefix <= 2720):  # Mir, Mastercard 2-series
            return False
    elif first not in "3456":
        return False
    return _luhn_ok(digits)


def _iban_ok(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _apply(text: str, spans: list[_Span]) -> str:
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for start, end, token in spans:
        parts.append(text[pos:start])
        parts.append(token)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _find_emails(text: str) -> list[_Span]:
    return [(m.start(), m.end(), _EMAIL_TOKEN) for m in _EMAIL.finditer(text)]


def _find_ibans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        start = m.start()
        country = text[start : start + 2].upper()
        length = _IBAN_LENGTHS.get(country)
        end = -1
        if length is not None:
            # Walk the candidate until it holds exactly `length` characters.
            seen = 0
            for i in range(start, m.end()):
                if text[i] != " ":
                    seen += 1
                    if seen == length:
                        end = i + 1
                        break
        if end > 0 and (end == len(text) or not text[end].isalnum()):
            compact = text[start:end].replace(" ", "").upper()
            if _iban_ok(compact):
                spans.append((start, end, f"[iban {compact[:2]}••…{compact[-4:]}]"))
                pos = end
                continue
        pos = start + 1
    return spans


def _find_cards(text: str) -> list[_Span]:
    spans: list[_Span] = []
    for run in _DIGIT_RUN.finditer(text):
        if run.end() - run.start() < 13:  # cheap: most runs are dates, amounts, counters
            continue
        groups = [(g.start(), g.end()) for g in _DIGITS.finditer(text, run.start(), run.end())]
        first, last = 0, len(groups)
        start, end = run.start(), run.end()
        # An edge group glued to a word, a "+", or a decimal point/comma ("1.5", "12,00")
        # belongs to something else and is never part of a card.
        if start > 0 and (
            _glued(text[start - 1])
            or (text[start - 1] in ".," and text[start - 2 : start - 1] in _ASCII_DIGITS)
        ):
            first = 1
        if end < len(text) and (
            _glued(text[end]) or (text[end] in ".," and text[end + 1 : end + 2] in _ASCII_DIGITS)
        ):
            last -= 1
        i = first
        while i < last:
            # The longest window of whole groups starting at group i that is a card number
            # (so a card followed by an expiry month or a CVV is still found).
            best = -1
            digits = ""
            for j in range(i, last):
                digits += text[groups[j][0] : groups[j][1]]
                if len(digits) > 19:
                    break
                # Printed cards group digits by 3-8 (the last group may be shorter); this
                # keeps tables of small numbers from adding up to a "card".
                if j > i and not 3 <= groups[j - 1][1] - groups[j - 1][0] <= 8:
                    break
                if _is_card(digits):
                    best = j
            if best < 0:
                i += 1
                continue
            window = "".join(text[a:b] for a, b in groups[i : best + 1])
            spans.append((groups[i][0], groups[best][1], f"[card ••••{window[-4:]}]"))
            i = best + 1
    return spans


def _find_intl_phones(text: str) -> list[_Span]:
    spans: list[_Span] = []
    for m in _PHONE_INTL.finditer(text):
        groups = list(_PHONE_GROUP.finditer(text, m.start() + 1, m.end()))
        sizes = [len(g.group().strip("()")) for g in groups]
        if m.end() < len(text) and _glued(text[m.end()]):
            groups.pop()  # the last group belongs to the word it is glued to
            sizes.pop()
        while sum(sizes) > 15:  # E.164 caps a number at 15 digits
            groups.pop()
            sizes.pop()
        if groups and sum(sizes) >= 7:
            spans.append((m.start(), groups[-1].end(), _PHONE_TOKEN))
    return spans


def _find_national_phones(text: str) -> list[_Span]:
    spans: list[_Span] = [(m.start(), m.end(), _PHONE_TOKEN) for m in _PHONE_NANP.finditer(text)]
    for m in _PHONE_TRUNK.finditer(text):
        if 9 <= sum(ch.isdigit() for ch in m.group()) <= 13 and not any(
            a < m.end() and m.start() < b for a, b, _ in spans
        ):
            spans.append((m.start(), m.end(), _PHONE_TOKEN))
    spans.sort()
    return spans


# Order matters: an e-mail may hold digits, an IBAN holds digit runs a card would claim,
# and a "+" number is a phone before it is anything else.
_PIPELINE: Final[tuple[tuple[Detector, Callable[[str], list[_Span]]], ...]] = (
    (Detector.EMAIL, _find_emails),
    (Detector.IBAN, _find_ibans),
    (Detector.PHONE, _find_intl_phones),
    (Detector.CARD, _find_cards),
    (Detector.PHONE, _find_national_phones),
)


# --- field rules -----------------------------------------------------------------------

_WORD: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_GLOB_CHARS: Final = frozenset("*?[")


def _words(name: str) -> str:
    """``"X-API-Key"`` -> ``" x api key "``: spaces at both ends make word matching a
    substring test."""
    return " " + " ".join(w.lower() for w in _WORD.findall(name)) + " "


class Redactor:
    """Redacts field values by key and personal data in text; never mutates its input.

    ``field_patterns`` replaces the default key patterns, ``extra_field_patterns`` adds to
    them. A pattern is one of:

    - a key name (``"password"``, ``"api_key"``): matches keys holding its words in order,
      in any case or style (``apiKey``, ``X-API-Key``, ``user_api_key_id``);
    - a glob on the key name (``"*_pin"``), case-insensitive;
    - a dotted path glob (``"customer.address.*"``, ``"*.notes"``) on the path of keys
      from the root, case-insensitive; list items add no step to the path, so
      ``"users.ssn"`` matches ``{"users": [{"ssn": ...}]}``.

    ``disable`` turns detectors off, e.g. ``disable=[Detector.PHONE]``.
    """

    def __init__(
        self,
        *,
        field_patterns: Iterable[str] = DEFAULT_FIELD_PATTERNS,
        extra_field_patterns: Iterable[str] = (),
        disable: Iterable[Detector | str] = (),
    ) -> None:
        words: list[str] = []
        key_globs: list[str] = []
        path_globs: list[str] = []
        for pattern in (*field_patterns, *extra_field_patterns):
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigurationError(f"a field pattern must be a non-empty string: {pattern!r}")
            if "." in pattern:
                path_globs.append(translate(pattern.lower()))
            elif _GLOB_CHARS & set(pattern):
                key_globs.append(translate(pattern.lower()))
            elif (w := _words(pattern)).strip():
                words.append(w)
            else:
                raise ConfigurationError(f"field pattern {pattern!r} has no letters or digits")
        off: set[Detector] = set()
        for name in disable:
            try:
                off.add(Detector(name))
            except ValueError:
                known = ", ".join(d.value for d in Detector)
                raise ConfigurationError(
                    f"unknown detector {name!r}; choose from {known}"
                ) from None
        self.detectors: frozenset[Detector] = frozenset(Detector) - off
        """The detectors this redactor runs."""
        self._words = tuple(words)
        self._key_glob = re.compile("|".join(key_globs)) if key_globs else None
        self._path_glob = re.compile("|".join(path_globs)) if path_globs else None
        self._pipeline = tuple(fn for det, fn in _PIPELINE if det in self.detectors)
        self._key_cache: dict[str, bool] = {}

    def sensitive_key(self, key: str) -> bool:
        """Whether a key name matches a key-name rule (path rules need the whole path)."""
        hit = self._key_cache.get(key)
        if hit is None:
            words = _words(key)
            hit = any(w in words for w in self._words) or bool(
                self._key_glob is not None and self._key_glob.match(key.lower())
            )
            if len(self._key_cache) >= 4096:
                self._key_cache.clear()
            self._key_cache[key] = hit
        return hit

    def redact_text(self, text: str) -> str:
        """``text`` with every detected e-mail, phone, card and IBAN replaced by a token."""
        if len(text) < 6:  # shorter than the shortest e-mail ("a@b.co") or phone
            return text
        has_at = "@" in text
        if not has_at and _DIGIT.search(text) is None:
            return text
        # A detector's edge checks can see a neighbour that a later detector replaces by a
        # token; one more pass picks up what that uncovered, so redaction is idempotent.
        for _ in range(_MAX_PASSES):
            before = text
            for find in self._pipeline:
                if find is _find_emails and not has_at:
                    continue
                text = _apply(text, find(text))
            if text == before:
                break
            has_at = "@" in text
        return text

    def redact_value(self, value: Any) -> Any:
        """A redacted copy of JSON-like data (dicts, lists, tuples, strings, numbers).

        Values under sensitive keys become ``[redacted]``; strings (dict keys included) go
        through :meth:`redact_text`; an integer that is a card number becomes its token.
        Other objects are returned as they are. Two keys that redact to the same text are
        kept apart with a suffix (``[email]``, ``[email]#2``). Nesting deeper than 100
        levels is replaced by ``[redacted]``.
        """
        return self._walk(value, "", 0)

    def _walk(self, value: Any, path: str, depth: int) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, bool) or value is None or isinstance(value, float):
            return value
        if depth >= _MAX_DEPTH:
            return FIELD_TOKEN
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for raw_key, item in value.items():
                key = self.redact_text(raw_key) if isinstance(raw_key, str) else raw_key
                if key in out:
                    n = 2
                    while f"{key}#{n}" in out:
                        n += 1
                    key = f"{key}#{n}"
                name = str(key)
                child = f"{path}.{name}" if path else name
                # The redacted name is checked too, so a second pass decides the same way.
                if (
                    self.sensitive_key(name)
                    or (isinstance(raw_key, str) and self.sensitive_key(raw_key))
                    or (self._path_glob is not None and self._path_glob.match(child.lower()))
                ):
                    out[key] = FIELD_TOKEN
                else:
                    out[key] = self._walk(item, child, depth + 1)
            return out
        if isinstance(value, list):
            return [self._walk(item, path, depth + 1) for item in value]
        if isinstance(value, tuple):
            return tuple(self._walk(item, path, depth + 1) for item in value)
        if isinstance(value, int) and Detector.CARD in self.detectors and 10**12 <= value < 10**19:
            digits = str(value)
            if _is_card(digits):
                return f"[card ••••{digits[-4:]}]"
        return value


_DEFAULT: Final = Redactor()


def redact_text(text: str) -> str:
    """:meth:`Redactor.redact_text` with the default rules."""
    return _DEFAULT.redact_text(text)


def redact_value(value: Any) -> Any:
    """:meth:`Redactor.redact_value` with the default rules."""
    return _DEFAULT.redact_value(value)
