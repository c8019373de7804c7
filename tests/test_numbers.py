"""rag/numbers.py: numbers read as values across the four languages' ways of writing them."""

from __future__ import annotations

import pytest

from rag.numbers import keeps_numbers, number_values, same_numbers


@pytest.mark.parametrize(
    "text, values",
    [
        ("120 million litres", [120e6]),
        ("120 Million", [120e6]),
        ("1.2亿升", [120e6]),
        ("120亿", [120e8]),
        ("1억 2천만 원", [120e6]),
        ("2천만", [20e6]),
        ("120 juta", [120e6]),
        ("1,2 juta", [1.2e6]),
        ("120.000.000", [120e6]),
        ("42.000 buku", [42000]),
        ("4만 2천 명", [42000]),
        ("3'000", [3000]),
        ("3.5 km", [3.5]),
        ("a millionaire, 3 times", [3]),  # a word that only starts like a scale word
        ("2019.3~2021.11", [2019.3, 2021.11]),
        ("Python 3.11.7", [3, 11, 7]),  # a version: its parts
        ("twenty", []),  # words without digits are not read
    ],
)
def test_number_values(text, values):
    assert number_values(text) == pytest.approx(values)


def test_a_translation_may_leave_a_number_out_but_never_change_one():
    assert keeps_numbers("1.2亿升", "120 million litres") and keeps_numbers("1억 2천만 리터", "120 million litres")
    assert not keeps_numbers("120亿", "120 million litres")  # 100 times more
    assert not keeps_numbers("120", "120 million")  # the scale dropped
    assert keeps_numbers("2019년 3월~2021년 11월", "2019.3~2021.11")  # a year and month written with a dot
    assert keeps_numbers("42,000 books", "42.000 buku") and keeps_numbers("the library", "42.000 buku")
    assert keeps_numbers("1998年3月", "Maret 1998") and keeps_numbers("1998년 3월", "March 1998")  # month names
    assert not keeps_numbers("1998年5月", "Maret 1998") and not keeps_numbers("3월 5일", "March")


def test_same_numbers_needs_numbers_on_both_sides():
    assert same_numbers("120 million", "1.2亿") and not same_numbers("7 weeks", "50 days")
    assert not same_numbers("Leeds", "Leeds") and not same_numbers("120 million", "Leeds")
