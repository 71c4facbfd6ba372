"""Redaction for the compliance view: what is caught, what is left alone, and properties."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from handrail.audit.redact import (
    DEFAULT_FIELD_PATTERNS,
    FIELD_TOKEN,
    Detector,
    Redactor,
    redact_text,
    redact_value,
)
from handrail.errors import ConfigurationError, HandrailError

# --- what is caught --------------------------------------------------------------------

CAUGHT = [
    # e-mail addresses
    ("contact alice@example.com today", "contact [email] today"),
    ("<bob.smith+tag@mail.example.co.uk>", "<[email]>"),
    ("mailto:carol_99@sub.example.org.", "mailto:[email]."),
    ("José.Müller@exämple.de wrote", "[email] wrote"),
    ("a@b.co, c@d.io", "[email], [email]"),
    # payment cards: Luhn-valid, any common grouping, issuers across networks
    ("card 4242 4242 4242 4242 exp 12/28", "card [card ••••4242] exp 12/28"),
    ("4111-1111-1111-1111", "[card ••••1111]"),
    ("pan=4111111111111111;", "pan=[card ••••1111];"),
    ("MC 5555 5555 5555 4444", "MC [card ••••4444]"),
    ("MC 2-series 2223003122003222", "MC 2-series [card ••••3222]"),
    ("Amex 3782 822463 10005", "Amex [card ••••0005]"),
    ("Discover 6011111111111117.", "Discover [card ••••1117]."),
    ("JCB 3530 1113 3330 0000", "JCB [card ••••0000]"),
    ("Diners 3056 930902 5904", "Diners [card ••••5904]"),
    ("UnionPay 6200000000000005", "UnionPay [card ••••0005]"),
    ("4111 1111 1111 1111 123", "[card ••••1111] 123"),  # card, then a CVV
    ("ref 12 4111 1111 1111 1111", "ref 12 [card ••••1111]"),
    ("5555 5555 5555 4444 4111 1111 1111 1111", "[card ••••4444] [card ••••1111]"),
    ("+12 4111111111111111", "+12 [card ••••1111]"),
    # IBANs: mod-97-valid, printed or compact, several countries
    ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN [iban DE••…3000]."),
    ("DE89370400440532013000", "[iban DE••…3000]"),
    ("GB82 WEST 1234 5698 7654 32", "[iban GB••…5432]"),
    ("FR14 2004 1010 0505 0001 3M02 606", "[iban FR••…2606]"),
    ("fr1420041010050500013m02606", "[iban FR••…2606]"),
    ("NL91ABNA0417164300", "[iban NL••…4300]"),
    ("CH93 0076 2011 6238 5295 7", "[iban CH••…2957]"),
    ("BE68 5390 0754 7034", "[iban BE••…7034]"),
    ("NO93 8601 1117 947", "[iban NO••…7947]"),
    ("ES91 2100 0418 4502 0005 1332", "[iban ES••…1332]"),
    ("IT60 X054 2811 1010 0000 0123 456", "[iban IT••…3456]"),
    ("pay to PL61109010140000071219812874 now", "pay to [iban PL••…2874] now"),
    # phones: international "+" forms
    ("call +1 415 555 2671", "call [phone]"),
    ("+14155552671", "[phone]"),
    ("+44 20 7946 0958", "[phone]"),
    ("+44 (0)20 7946 0958", "[phone]"),
    ("+49 30 12345678", "[phone]"),
    ("+33 1 23 45 67 89", "[phone]"),
    ("+33.1.23.45.67.89", "[phone]"),
    ("+1-415-555-2671.", "[phone]."),
    # phones: national forms
    ("(415) 555-2671", "[phone]"),
    ("415-555-2671", "[phone]"),
    ("415.555.2671", "[phone]"),
    ("415 555 2671", "[phone]"),
    ("1-800-555-1234", "[phone]"),
    ("020 7946 0958", "[phone]"),
    ("030 12345678", "[phone]"),
    ("0171-1234567", "[phone]"),
    ("06 12 34 56 78", "[phone]"),
    ("tel. 089.123.4567", "tel. [phone]"),
    # several kinds at once
    (
        "Refund 4242424242424242 to DE89370400440532013000, mail a@b.com or call +1 415 555 2671",
        "Refund [card ••••4242] to [iban DE••…3000], mail [email] or call [phone]",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CAUGHT)
def test_caught(text: str, expected: str) -> None:
    assert redact_text(text) == expected


# --- what is left alone ----------------------------------------------------------------

NOT_CAUGHT = [
    # Luhn-invalid digit runs are not cards
    "4242 4242 4242 4241",
    "4111-1111-1111-1112",
    "5555555555554445",
    # order numbers, ids, counters
    "order 1234567890123",
    "ORD-2026-000123",
    "invoice INV-000123456",
    "1234567812345670",  # Luhn-valid, but no card network starts with 1
    "ticket 8000000000000000000001",  # too long for a card
    "tracking 1Z999AA10123456784",
    # dates and times
    "2026-11-27",
    "2026-11-27T10:30:00Z",
    "2026-11-27T10:30:00.123456+01:00",
    "2026-11-27 10:30:00",
    "27.11.2026",
    "01.02.2026 10:30",
    "11/27/2026",
    "10:30:00",
    "20261127103000",  # compact timestamp
    "1764239400000",  # epoch milliseconds
    # identifiers, versions, addresses
    "123e4567-e89b-12d3-a456-426614174000",
    "12345678-1234-1234-1234-123456789012",
    "version 1.2.3",
    "v10.200.3000",
    "192.168.100.200",
    "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    # money and plain numbers
    "1,234.56",
    "$1,234,567.89",
    "EUR 1.234.567,89",
    "+1,234.56",
    "12345",
    "total 4111111111111111.00",
    "3.14159265358979",
    # near-misses for IBANs
    "DE89370400440532013001",  # checksum off by one
    "GB82 WEST 1234 5698 7654 33",
    "DE89 3704 0044 0532 0130",  # too short for DE
    "XX89370400440532013000",  # unknown country
    # near-misses for e-mails and phones
    "user@localhost",
    "@handle and @team",
    "foo@bar.123",
    "4155552671",  # unseparated national numbers are not phones
    "0612345678",
    "+12 3",
    "short",
]


@pytest.mark.parametrize("text", NOT_CAUGHT)
def test_not_caught(text: str) -> None:
    assert redact_text(text) == text


def test_tokens_are_not_redacted_again() -> None:
    tokens = "[email] [phone] [card ••••4242] [iban DE••…3000] [redacted]"
    assert redact_text(tokens) == tokens


# --- field rules and JSON-like values --------------------------------------------------


def test_field_rules_redact_whole_values_by_key() -> None:
    value = {
        "user": {
            "name": "Alice",
            "password": "hunter2",
            "apiKey": 12345,
            "X-API-Key": ["a", "b"],
            "Authorization": "Bearer abc.def",
            "ssn": "078-05-1120",
            "access_token": {"nested": "x"},
            "classname": "Widget",  # contains "ssn" as letters, not as a word
            "max_tokens": 512,  # "tokens" is not "token"
        }
    }
    assert redact_value(value) == {
        "user": {
            "name": "Alice",
            "password": FIELD_TOKEN,
            "apiKey": FIELD_TOKEN,
            "X-API-Key": FIELD_TOKEN,
            "Authorization": FIELD_TOKEN,
            "ssn": FIELD_TOKEN,
            "access_token": FIELD_TOKEN,
            "classname": "Widget",
            "max_tokens": 512,
        }
    }


def test_detectors_run_on_nested_values_and_keys() -> None:
    value = {
        "to": ["alice@example.com", {"cc": "bob@example.org"}],
        "note": ("call +44 20 7946 0958",),
        "alice@example.com": "key holds an e-mail",
        "card": 4111111111111111,
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
    }
    assert redact_value(value) == {
        "to": ["[email]", {"cc": "[email]"}],
        "note": ("call [phone]",),
        "[email]": "key holds an e-mail",
        "card": "[card ••••1111]",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
    }


def test_keys_that_redact_alike_stay_apart() -> None:
    out = redact_value({"a@x.com": 1, "b@y.com": 2, "[email]#2": 3})
    assert out == {"[email]": 1, "[email]#2": 2, "[email]#2#2": 3}
    assert redact_value(out) == out


def test_configuration_extra_patterns_paths_and_globs() -> None:
    r = Redactor(extra_field_patterns=["customer.address.*", "*_pin", "notes"])
    value = {
        "customer": {"address": {"street": "Main St 1"}, "name": "A"},
        "card_pin": "1234",
        "Notes": "free text",
        "other": {"customer": {"address": {"street": "kept"}}},  # path is anchored at root
    }
    assert r.redact_value(value) == {
        "customer": {"address": {"street": FIELD_TOKEN}, "name": "A"},
        "card_pin": FIELD_TOKEN,
        "Notes": FIELD_TOKEN,
        "other": {"customer": {"address": {"street": "kept"}}},
    }


def test_path_patterns_skip_list_items() -> None:
    r = Redactor(field_patterns=["users.dob"])
    assert r.redact_value({"users": [{"dob": "1990-01-01", "id": 1}]}) == {
        "users": [{"dob": FIELD_TOKEN, "id": 1}]
    }


def test_replacing_the_default_field_patterns() -> None:
    r = Redactor(field_patterns=["internal"])
    assert r.redact_value({"password": "p", "internal_id": 7}) == {
        "password": "p",
        "internal_id": FIELD_TOKEN,
    }
    assert "password" in DEFAULT_FIELD_PATTERNS


def test_disable_a_detector() -> None:
    r = Redactor(disable=[Detector.PHONE, "email"])
    assert r.detectors == {Detector.CARD, Detector.IBAN}
    text = "a@b.com +1 415 555 2671 4111111111111111"
    assert r.redact_text(text) == "a@b.com +1 415 555 2671 [card ••••1111]"
    assert Redactor(disable=["card"]).redact_value({"n": 4111111111111111}) == {
        "n": 4111111111111111
    }


@pytest.mark.parametrize(
    "kwargs",
    [{"disable": ["ssn"]}, {"extra_field_patterns": [""]}, {"field_patterns": ["--"]}],
)
def test_bad_configuration_is_a_handrail_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        Redactor(**kwargs)
    assert isinstance(info.value, HandrailError)


def test_other_objects_pass_through_and_depth_is_bounded() -> None:
    blob = b"alice@example.com"
    assert redact_value({"raw": blob})["raw"] is blob
    deep: Any = "alice@example.com"
    for _ in range(150):
        deep = [deep]
    out = redact_value(deep)
    for _ in range(100):
        out = out[0]
    assert out == FIELD_TOKEN
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    redact_value(cyclic)  # bounded, does not recurse forever


# --- properties ------------------------------------------------------------------------

FRAGMENTS = [
    " ", "-", ".", ",", "+", "@", "(", ")", ":", "/", "[", "]", "•", "#", "x", "DE", "GB",
    "0", "1", "12", "44", "415", "2671", "4111", "1111", "0958", "2026-11-27", "T10:30:00Z",
    "4242424242424242", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432", "+44 20 7946 0958", "(415) 555-2671", "06 12 34 56 78",
    "alice@example.com", "b.c@d.io", "[email]", "[card ••••4242]", "é", "٣", "%", "_",
    "(000)000.0000", "0612 345 678", "+0000000", "a@b.co",
]  # fmt: skip

tricky_text = st.one_of(
    st.text(),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=16).map("".join),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | tricky_text
    | st.sampled_from([4111111111111111, 378282246310005]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            tricky_text | st.sampled_from(DEFAULT_FIELD_PATTERNS), children, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400)
@given(tricky_text)
def test_redact_text_is_idempotent_and_never_raises(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


@settings(max_examples=300)
@given(json_values)
def test_redact_value_is_idempotent_and_does_not_mutate(value: Any) -> None:
    before = copy.deepcopy(value)
    once = redact_value(value)
    assert value == before
    assert redact_value(once) == once


@given(tricky_text)
def test_idempotent_with_an_email_field_rule(text: str) -> None:
    r = Redactor(extra_field_patterns=["email"])
    once = r.redact_value({text: text, "x": {text: 1}})
    assert r.redact_value(once) == once


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "2720", "34", "37", "6011", "62"]))
    length = draw(st.integers(min_value=max(13, len(prefix) + 2), max_value=19))
    body = prefix + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length - len(prefix) - 1,
                      max_size=length - len(prefix) - 1))
    )  # fmt: skip
    number = body + _luhn_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4)) if sep else number


VALID_IBANS = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "CH9300762011623852957",
    "NO9386011117947",
    "IT60X0542811101000000123456",
]


@st.composite
def ibans(draw: st.DrawFn) -> str:
    compact = draw(st.sampled_from(VALID_IBANS))
    if draw(st.booleans()):
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


emails = st.builds(
    "{}@{}.{}".format,
    st.from_regex(r"[a-z0-9]([a-z0-9._+\-]{0,20}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,10}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["com", "org", "de", "co.uk", "museum"]),
)
surroundings = st.text(max_size=30) | st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join)


@settings(max_examples=300)
@given(surroundings, cards(), surroundings)
def test_a_valid_card_in_random_text_is_removed(left: str, card: str, right: str) -> None:
    assume(card not in left + right)
    out = redact_text(f"{left} {card} {right}")
    assert card not in out


@settings(max_examples=300)
@given(surroundings, ibans(), surroundings)
def test_a_valid_iban_in_random_text_is_removed(left: str, iban: str, right: str) -> None:
    assume(iban.replace(" ", "") not in (left + right).replace(" ", ""))
    out = redact_text(f"{left} {iban} {right}")
    assert iban not in out
    assert iban.replace(" ", "") not in out.replace(" ", "")


@settings(max_examples=300)
@given(surroundings, emails, surroundings)
def test_an_email_in_random_text_is_removed(left: str, email: str, right: str) -> None:
    assume(email not in left + right)
    assert email not in redact_text(f"{left} {email} {right}")
    assert email not in str(redact_value({"deep": [{"to": f"{left} {email} {right}"}]}))


@st.composite
def intl_phones(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(["1", "33", "44", "49", "353", "971"]))
    sizes = draw(st.lists(st.integers(min_value=1, max_value=4), min_size=2, max_size=4))
    assume(7 <= len(country) + sum(sizes) <= 15)
    groups = [draw(st.from_regex(rf"[0-9]{{{n}}}", fullmatch=True)) for n in sizes]
    sep = draw(st.sampled_from([" ", "-", "."]))
    return "+" + country + sep + sep.join(groups)


@settings(max_examples=300)
@given(surroundings, intl_phones(), surroundings)
def test_an_international_phone_in_random_text_is_removed(
    left: str, phone: str, right: str
) -> None:
    assume(phone not in left + right)
    assert phone not in redact_text(f"{left} {phone} {right}")
