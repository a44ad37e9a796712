"""The import's fast paths give exactly what the slow paths give (no database needed):
plain e-mail addresses without email-validator, phones memoised per digit sequence, and the
CSV formula escaping, which must undo exactly."""

from __future__ import annotations

import random
from typing import Any

import pytest

from aisha_server.errors import Invalid
from aisha_server.services.record_io import (
    PhoneCache,
    escape_formula,
    fast_email,
    needs_formula_escape,
    normalised_email,
    unescape_formula,
)
from aisha_server.services.records import normalise_email, to_e164


def slow_email(value: str) -> str | None:
    try:
        return normalise_email(value)
    except Invalid:
        return "<invalid>"


LABEL_PARTS = [
    "a",
    "Z",
    "x1",
    "-",
    "--",
    "xn--",
    "ab--c",
    "9",
    "_",
    "é",
    "mail",
    "b" * 63,
    "c" * 64,
]
TLDS = ["com", "ORG", "test", "local", "localhost", "invalid", "onion", "arpa", "c0m", "1", "x",
        "museum", "d" * 63, "e" * 64, "xn--p1ai", "co.uk"]  # fmt: skip
LOCAL_PARTS = ["ann", "Ann.Lee", "a+b", "a_b-c", ".a", "a.", "a..b", "a b", '"q"', "ä", "x" * 64,
               "y" * 65, "a!b", "a#b", "a%b", "1", "-", "+", "a.b.c.d"]  # fmt: skip


def varied_addresses(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        local = (
            rng.choice(LOCAL_PARTS)
            if rng.random() < 0.5
            else "".join(rng.choice("abcXYZ019._+-!") for _ in range(rng.randint(1, 12)))
        )
        labels = [
            rng.choice(LABEL_PARTS)
            if rng.random() < 0.4
            else "".join(rng.choice("abcXYZ0129-") for _ in range(rng.randint(1, 10)))
            for _ in range(rng.randint(0, 4))
        ]
        domain = ".".join([*labels, rng.choice(TLDS)])
        address = f"{local}@{domain}"
        if rng.random() < 0.05:
            address = address.replace("@", "@@", 1)
        if rng.random() < 0.05:
            address = address + "."
        out.append(address)
    return out


def test_fast_email_is_email_validator_whenever_it_answers() -> None:
    rng = random.Random(20261125)
    inputs = [
        *varied_addresses(rng, 20_000),
        "person1@example.com", "Ann.Lee+crm@Mail.Example.CO", "a@b.co", "x@localhost",
        "x@host.local", "x@a.invalid", "x@sub.example.test", "x@a--b.com", "x@xn--bcher-kva.ch",
        "x@-a.com", "x@a-.com", "x@123.com", "x@a.123", ("l" * 64) + "@x.com",
        ("l" * 65) + "@x.com", "a@" + ".".join(["d" * 63] * 4) + ".com",
    ]  # fmt: skip
    answered = 0
    for value in inputs:
        fast = fast_email(value)
        if fast is not None:
            answered += 1
            assert fast == slow_email(value), value
    # the fast path is not vacuous: it takes the common addresses
    assert answered > 1_000
    assert fast_email("person1@example.com") == "person1@example.com"
    assert fast_email("Ann.Lee+crm@Mail.Example.CO") == "ann.lee+crm@mail.example.co"
    # and leaves the special and international ones to email-validator
    for value in ("x@localhost", "x@a.invalid", "x@xn--bcher-kva.ch", "ä@example.com"):
        assert fast_email(value) is None


def test_normalised_email_keeps_the_api_errors() -> None:
    assert normalised_email("  Ann@Example.com ") == "ann@example.com"
    assert normalised_email("   ") is None
    with pytest.raises(Invalid):
        normalised_email("not-an-email")
    with pytest.raises(Invalid):
        normalised_email("x@localhost")
    assert normalised_email("x@sub.example.test") == "x@sub.example.test"


NUMBERS = {
    "US": ["2125550100", "12125550100", "011442079460958", "5550100", "911", "2005550100",
           "212555010", "21255501001", "8005550100", "0", "12"],
    "GB": ["02079460958", "07700900123", "00442079460958", "442079460958", "2079460958", "999"],
    "DE": ["030123456", "01511234567", "004930123456", "4930123456", "0049"],
    "IT": ["0612345678", "3123456789", "00390612345678", "390612345678"],
    "BR": ["11987654321", "011987654321", "5511987654321"],
    "JP": ["0312345678", "09012345678", "81312345678"],
}  # fmt: skip


def spellings(rng: random.Random, digits: str, count: int) -> list[str]:
    out = [digits, "+" + digits]
    for _ in range(count):
        parts = []
        for d in digits:
            if rng.random() < 0.35:
                parts.append(rng.choice([" ", "-", ".", "(", ")", "  ", " (", ") ", "-("]))
            parts.append(d)
        if rng.random() < 0.3:
            parts.append(rng.choice([" ", ")", "-", "."]))
        text = "".join(parts)
        if rng.random() < 0.3:
            text = rng.choice(["(", " ", "-", "."]) + text
        if rng.random() < 0.4:
            text = "+" + text
        out.append(text)
    return out


def test_phone_cache_is_to_e164_for_every_spelling() -> None:
    rng = random.Random(7)
    checked = 0
    for region, numbers in NUMBERS.items():
        for digits in numbers:
            cache = PhoneCache(region)
            for text in spellings(rng, digits, 60):
                assert cache.e164(text) == to_e164(text, region), (region, text)
                checked += 1
            # the first spelling seeds the memo; a fresh cache must agree in any order
            fresh = PhoneCache(region)
            for text in reversed(spellings(rng, digits, 20)):
                assert fresh.e164(text) == to_e164(text, region), (region, text)
    assert checked > 1_900
    # random digit strings in every region too
    for region in ("US", "GB", "FR", "IN", "AU"):
        cache = PhoneCache(region)
        for _ in range(300):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 16)))
            for text in spellings(rng, digits, 3):
                assert cache.e164(text) == to_e164(text, region), (region, text)


def test_phone_cache_falls_back_for_other_spellings() -> None:
    cache = PhoneCache("US")
    for text in ("212 555 0100 x12", "+1 212 555 0100 ext. 5", "tel:+1-212-555-0100",
                 "after 5pm", "(212) 555-0100 / 0101", "\uff11\uff12\uff11\uff12\uff15\uff15\uff15\uff10\uff11\uff10\uff10", None, ""):  # fmt: skip
        assert cache.e164(text) == to_e164(text, "US"), text
    assert cache.e164("(212) 555-0100") == "+12125550100"


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("+1 212 555 0100", "+1 212 555 0100"),
        ("+44 (20) 7946-0958", "+44 (20) 7946-0958"),
        ("-12.50", "-12.50"),
        ("-", "'-"),
        ("+", "'+"),
        ("'=x", "''=x"),
        ("'plain", "'plain"),
        ("'+1 212", "'+1 212"),
        ("plain = text", "plain = text"),
        ("", ""),
    ],
)
def test_formula_escape_and_its_inverse(value: str, escaped: str) -> None:
    assert escape_formula(value) == escaped
    assert unescape_formula(escape_formula(value)) == value


def test_formula_unescape_is_exact_on_random_cells() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        value = "".join(rng.choice("'=@+-\t\r 0123.()aZ|!") for _ in range(rng.randint(0, 6)))
        exported = escape_formula(value)
        assert unescape_formula(exported) == value, repr(value)
        assert not needs_formula_escape(exported) or exported.startswith("'"), repr(value)


def test_memoised_json_is_the_column_serialiser() -> None:
    """Records' JSON columns stay bit for bit what the ORM stores, memo or not: equal values
    of other types ([1], [1.0], [True]) and other key orders get their own text."""
    import json

    from aisha_server.services.record_io import _memoised_json

    process = _memoised_json(json.dumps)
    values: list[Any] = [
        [], {}, ["a", "b"], ["b", "a"], ["a;b"], ["é", "x\"y"], {"k": "v"}, {"k": "v", "j": "w"},
        {"j": "w", "k": "v"}, [1], [1.0], [True], ["1"], {"k": 1}, {"k": True}, {"k": ["v"]},
        [["a"]], None, "text", 3,
    ]  # fmt: skip
    for _ in range(2):  # second round: from the memo
        for value in values:
            assert process(value) == json.dumps(value), value
    words = [[f"tag{i}"] for i in range(10_000)]  # the memo is bounded and stays exact
    assert [process(w) for w in words] == [json.dumps(w) for w in words]


def test_gc_paused_nests_and_restores_the_collector() -> None:
    import gc
    import threading

    from aisha_server.services.record_io import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        inner_left = threading.Event()

        def other_import() -> None:
            with gc_paused():
                assert not gc.isenabled()
            inner_left.set()

        worker = threading.Thread(target=other_import)
        worker.start()
        worker.join()
        assert inner_left.is_set() and not gc.isenabled()  # still held here
    assert gc.isenabled()
    gc.disable()  # someone else turned it off: it stays off
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("an import fails")
    assert gc.isenabled()
