"""Text rules used everywhere, each written once: scripts, sentence ends, a span of text.

Modules that need to know whether a character is Hangul or Han, where a sentence ends, or
how a text divides into the smallest units an answer may be copied in, ask here.
"""

from __future__ import annotations

import re

# Character ranges of the scripts written without spaces between words (or, for Hangul,
# whose syllables are the unit keyword matching and copying work in).
HANGUL = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
KANA = "\u3040-\u30ff"
HAN = "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
CJK = HANGUL + KANA + HAN
CJK_CHAR = re.compile(f"[{CJK}]")
HAN_OR_KANA_CHAR = re.compile(f"[{HAN}{KANA}]")

# A sentence ends at . ! ? followed by white space, at a CJK full stop, or at a line break.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")
# The marks after which a cut text may end cleanly.
SENTENCE_MARKS = ("。", "！", "？", ". ", "! ", "? ")


def split_sentences(text: str) -> list[str]:
    """The sentences of a text, stripped, in order."""
    return [s.strip() for s in SENTENCE_END.split(text) if s and s.strip()]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each sentence in `text`, white space around it excluded."""
    spans, start = [], 0
    for match in [*SENTENCE_END.finditer(text), None]:
        end = match.start() if match else len(text)
        piece = text[start:end]
        if piece.strip():
            left = start + len(piece) - len(piece.lstrip())
            spans.append((left, left + len(piece.strip())))
        start = match.end() if match else end
    return spans


# Text in quotation marks: a title or phrase cited in a question, not the asker's own words.
# A straight single quote counts only as a pair set off by spaces, so "OpenAI's" is no quote.
QUOTED = re.compile(
    "«[^»]*»|“[^”]*”|\"[^\"]*\"|‘[^’]*’|「[^」]*」|『[^』]*』|《[^》]*》|(?:(?<=\\s)|^)'[^']*'(?=[\\s,.?!:;)]|$)"
)


def without_matches(pattern: re.Pattern, text: str) -> str:
    """`text` with what `pattern` matches taken out, or all of it if nothing else has letters."""
    outside = pattern.sub(" ", text)
    return outside if any(char.isalpha() for char in outside) else text


# A thousands separator: "830.000", "830,000", "3'000" are 830000; "5.30" and "7.8" stay decimals.
THOUSANDS_SEPARATOR = re.compile(r"(?<=\d)[.,'’](?=\d{3}(?!\d))")


def without_thousands_separators(text: str) -> str:
    return THOUSANDS_SEPARATOR.sub("", text)


# The units an answer is copied in: a Han or kana character alone (those scripts have no
# spaces), else a run of letters, digits and joining marks ("3.000", "GPT-4o", "2019.3~2021.11"
# stay whole enough for a grammar to copy them), else one other visible character.
_UNIT = re.compile(rf"[{HAN}{KANA}]|[^\s{HAN}{KANA}\W_]+(?:[.,'’:/~\-–][^\s{HAN}{KANA}\W_]+)*|[^\s]")


def units(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the copy units of `text`, in order."""
    return [match.span() for match in _UNIT.finditer(text)]
