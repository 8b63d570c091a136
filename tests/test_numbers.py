"""delfverify.numbers: one strict rule for every number read from text (CSV cells, JSON numbers, options), and
errors.shorten, the one helper that shortens values quoted in messages."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delfverify.errors import DelfverifyError, shorten
from delfverify.numbers import NumberError, load_json, parse_number

#: Text Python's float() or int() reads but the rule refuses: other scripts' digits, underscores, words, hex.
LOOKALIKES = ["0.7_5", "1_000", "٠٫٥", "٣", "０.５", "３", "۳", "१", "nan", "NaN", "inf", "-inf", "Infinity",
              "0x1", "1e", ".", "+", "0.5x", "x0.5", "0. 5", "0,5", "½", "\u20070.5", "0.5\u00a0", "𝟎.𝟓", ""]
#: The same characters and ASCII, mixed, for drawn text.
ALPHABET = st.sampled_from(list("0123456789.+-eE_ x,") + ["٣", "３", "\u00a0", "\t", "nan", "inf", "½", "\x00"])
TEXT = st.lists(ALPHABET, max_size=12).map("".join) | st.text(max_size=12)


@pytest.mark.parametrize("text", LOOKALIKES)
def test_text_python_would_read_is_refused_unless_ascii_decimal(text):
    with pytest.raises(NumberError, match="is not a number written in ASCII decimal"):
        parse_number(text)


@pytest.mark.parametrize("text, value", [("0.75", 0.75), (" 0.75\t", 0.75), ("1e-05", 1e-05), (".5", 0.5),
                                         ("5.", 5.0), ("+0.5", 0.5), ("-0", -0.0), ("1E3", 1000.0)])
def test_ascii_decimal_reads_as_python_reads_it(text, value):
    assert parse_number(text) == value == float(text)


@pytest.mark.parametrize("text, integer, low, high, message", [
    ("1e400", False, None, None, "'1e400' is out of range: it must be a finite number"),
    ("-1e400", False, 0, 1, "'-1e400' is out of range: it must be a number in [0, 1]"),
    ("1.5", False, 0, 1, "'1.5' must be a number in [0, 1]"),
    ("-0.1", False, 0, 1, "'-0.1' must be a number in [0, 1]"),
    ("0", True, 1, None, "'0' must be an integer >= 1"),
    ("3.0", True, None, None, "'3.0' is not an integer written in ASCII digits (such as 3)"),
    ("1" * 21, True, None, None, f"'{'1' * 21}' is an integer of 21 digits, out of range (at most 20 digits)"),
    ("0." + "1" * 200, False, None, None, "is a number of 202 characters, too long to read (at most 100)"),
])
def test_out_of_range_numbers_say_what_they_must_be(text, integer, low, high, message):
    with pytest.raises(NumberError) as caught:
        parse_number(text, integer=integer, low=low, high=high)
    assert str(caught.value).endswith(message)


def test_a_million_digit_integer_is_refused_at_once_and_quoted_short():
    with pytest.raises(NumberError) as caught:
        parse_number("9" * 1_000_000, integer=True)
    assert len(str(caught.value)) < 200 and "1000000 digits" in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(text=TEXT, integer=st.booleans())
def test_any_text_is_a_number_by_the_rule_or_a_number_error(text, integer):
    try:
        value = parse_number(text, integer=integer, low=0, high=1)
    except NumberError as exc:
        assert isinstance(exc, DelfverifyError) and len(str(exc)) < 200
        return
    written = text.strip(" \t\n\r\x0b\x0c")
    assert re.fullmatch(r"[+-]?[0-9.eE]+", written)  # ASCII only
    assert math.isfinite(value) and 0 <= value <= 1 and type(value) is (int if integer else float)


@settings(max_examples=200, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**19, 10**19))
def test_every_number_python_writes_reads_back_equal(value):
    assert parse_number(repr(value), integer=isinstance(value, int)) == value


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-10**19, 10**19) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=15)


@settings(max_examples=150, deadline=None)
@given(doc=json_documents)
def test_load_json_reads_every_finite_document_as_json_loads_does(doc):
    text = json.dumps(doc)
    assert load_json(text) == json.loads(text)


@pytest.mark.parametrize("text, message", [
    ('{"bands": [{"k": NaN}]}', "policy.bands[0].k: 'NaN' is not a number"),
    ('{"a": 1, "b": [0, -Infinity]}', "policy.b[1]: '-Infinity' is not a number"),
    ('{"x": 1e400}', "policy.x: '1e400' is out of range"),
    ('{"seed": ' + "7" * 5000 + "}", "policy.seed: '777"),
    ("NaN", "policy: 'NaN'"),
])
def test_load_json_refuses_nan_infinity_and_huge_numbers_naming_the_field(text, message):
    with pytest.raises(NumberError) as caught:
        load_json(text, "policy")
    assert str(caught.value).startswith(message)


def test_load_json_names_the_first_refused_number_in_document_order():
    with pytest.raises(NumberError, match=r"^a\.b\[1\]: 'NaN'"):
        load_json('{"a": {"b": [1, NaN]}, "c": Infinity}')
    with pytest.raises(NumberError, match=r"^the document: 'Infinity'"):
        load_json("Infinity")


def test_shorten_keeps_short_text_and_cuts_long_text_to_the_limit():
    assert shorten("abc") == "abc"
    assert shorten("x" * 80) == "x" * 80
    assert shorten("x" * 1_000_000) == "x" * 79 + "…"
    assert len(shorten("é" * 500, 20)) == 20
