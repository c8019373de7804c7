"""Numbers in text read as values, so that texts in different languages can be held to the
same numbers: digits with a decimal part and thousands separators (rag.text's rule), times
the scale words of the four languages (data/numbers.json): `120 million`, `1.2亿`,
`1억 2천만`, `120 juta` and `120.000.000` are one value. A year and month written with a dot
(`2025.6`, `2019.3~2021.11`) is also read as its parts, a version (`3.11.7`) as its parts, and
a month name as its number where a translation is checked (`Maret 1998` is `1998年3月`).
Numbers written as words without digits ("twenty", "两千") are not read.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

from .text import without_thousands_separators

_DATA = Path(__file__).with_name("data") / "numbers.json"


@functools.cache
def _vocabulary() -> tuple[dict[str, float], re.Pattern, dict[str, int], re.Pattern]:
    """Each scale word (case-folded) with its factor, the pattern of a number with them, each
    month name with its number, and the pattern of a month name."""
    data = json.loads(_DATA.read_text(encoding="utf-8"))
    scales = {word.casefold(): float(factor) for words in data["scales"].values() for word, factor in words.items()}
    # Longest first, so that a word is not read as its own start; a Latin-script word must end
    # there ("millionaire" is no scale), a CJK one needs no boundary ("2천만", "120亿").
    alternatives = "|".join(
        re.escape(word) + (r"(?![^\W\d_])" if word.isascii() else "") for word in sorted(scales, key=len, reverse=True)
    )
    number = re.compile(rf"(?<![\d.,])(\d+(?:[.,]\d+)*)((?:\s?(?:{alternatives}))*)", re.IGNORECASE)
    months = {name.casefold(): n for names in data["months"].values() for n, name in enumerate(names, 1)}
    month = re.compile(r"\b(" + "|".join(sorted(months, key=len, reverse=True)) + r")\b", re.IGNORECASE)
    return scales, number, months, month


def _parts(digits: str) -> tuple[float | None, list[float]]:
    """The value of a digit run after thousands separators are gone (None for a version such as
    3.11.7), and the integers it is also read as: a year and month (2025.6) or a version's parts."""
    pieces = re.split(r"[.,]", digits)
    if len(pieces) == 1:
        return float(digits), []
    if len(pieces) > 2:  # a version or a date: no one value
        return None, [float(p) for p in pieces]
    whole, fraction = pieces
    value = float(f"{whole}.{fraction}")
    if len(whole) == 4 and len(fraction) <= 2 and 1 <= int(fraction) <= 12:  # year.month
        return value, [float(whole), float(fraction)]
    return value, []


def number_values(text: str) -> list[float]:
    """The numbers `text` states, each with its scale, in order; a scaled number followed by a
    smaller one is their sum (`1억 2천만` is 120,000,000)."""
    return [value for value, _ in _read(text)]


def _read(text: str) -> list[tuple[float, list[float]]]:
    """(value, the integers it may also stand for) for each number of `text`."""
    scales, number, _, _ = _vocabulary()
    text = without_thousands_separators(text)
    found: list[tuple[float, list[float]]] = []
    previous_scale, previous_end = None, 0
    for match in number.finditer(text):
        value, parts = _parts(match.group(1))
        if value is None:  # a version: its parts
            found.extend((part, []) for part in parts)
            previous_scale = None
            continue
        scale = math.prod(scales[word] for word in _scale_words(match.group(2), scales))
        value *= scale
        if previous_scale is not None and value < previous_scale and not text[previous_end : match.start()].strip():
            found[-1] = (found[-1][0] + value, [])  # `1억 2천만`: one number
        else:
            found.append((value, parts if scale == 1 else []))
        previous_scale, previous_end = (scale if scale > 1 else None), match.end()
    return found


def _scale_words(run: str, scales: dict[str, float]) -> list[str]:
    """The scale words of the run after a number, case-folded (`천만` is 천 then 만)."""
    words, rest = [], run.strip().casefold()
    ordered = sorted(scales, key=len, reverse=True)
    while rest:
        word = next(w for w in ordered if rest.startswith(w))
        words.append(word)
        rest = rest[len(word) :].lstrip()
    return words


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def keeps_numbers(translation: str, source: str) -> bool:
    """Whether every number `translation` states is one `source` states (or one of its parts,
    for a year and month, or a month it names): a translation may leave a number out, never
    change one."""
    _, _, months, month = _vocabulary()
    readings = [reading for value, parts in _read(source) for reading in (value, *parts)]
    readings += [float(months[name.casefold()]) for name in month.findall(source)]
    return all(any(_same(value, reading) for reading in readings) for value in number_values(translation))


def same_numbers(one: str, other: str) -> bool:
    """Whether two texts state numbers, and the same ones (`120 million` and `1.2亿`)."""
    a, b = number_values(one), number_values(other)
    return bool(a and b) and all(any(_same(x, y) for y in b) for x in a) and all(any(_same(y, x) for x in a) for y in b)
