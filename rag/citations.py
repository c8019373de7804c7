"""From the [n] markers in a generated answer to checked file + paragraph citations.

A citation must support its sentence: the numbers and names the sentence states appear
in the cited paragraph, or the two mean the same (embedding similarity, which also
works across languages). A marker that fails is replaced by a passage that does
support the sentence, or removed; sentences left without support are reported.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

# A citation marker group: [1], [1, 3], [1，2] (the only place this pattern is written).
MARKER_GROUP = re.compile(r"\[\s*\d+(?:\s*[,，、;]\s*\d+)*\s*\]")
_NUMBER = re.compile(r"\d+")
# A sentence ends at . ! ? (ASCII followed by space or end) or a CJK full stop, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")
# Numbers and Latin-script names (capitalised words): what a claim must not invent.
_ANCHOR = re.compile(r"\d+(?:[.,]\d{3})*(?:\.\d+)?|\b[A-Za-z]*[A-Z][A-Za-z0-9-]*")
# Cosine similarity above which a paragraph is taken to say what the sentence says.
SUPPORT_SIMILARITY = 0.86


class Source(Protocol):
    """What a marker [n] points to: one paragraph (see rag.passages.Passage)."""

    file: str
    paragraph: int
    text: str
    quote: str


@dataclass(frozen=True)
class Citation:
    n: int  # the marker number in the answer text
    file: str
    paragraph: int
    text: str  # the paragraph's exact text
    quote: str  # the sentence of the paragraph that best matches the question

    def to_json(self) -> dict:
        return asdict(self)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def markers(text: str) -> list[int]:
    """Marker numbers in order of first appearance: "[1] … [2, 3]" gives [1, 2, 3]."""
    seen: list[int] = []
    for group in MARKER_GROUP.findall(text):
        for number in map(int, _NUMBER.findall(group)):
            if number not in seen:
                seen.append(number)
    return seen


def strip_markers(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", MARKER_GROUP.sub("", text)).strip()


def _normal(text: str) -> str:
    return re.sub(r"(?<=\d)[.,](?=\d{3}\b)", "", unicodedata.normalize("NFKC", text)).casefold()


def anchors(text: str) -> set[str]:
    """Numbers (thousands separators dropped) and names; a sentence's first word is no name."""
    text = unicodedata.normalize("NFKC", strip_markers(text))
    return {_normal(m.group()) for m in _ANCHOR.finditer(text)
            if m.group()[0].isdigit() or text[:m.start()].strip()}


def _contains(haystack: str, anchor: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(anchor)}(?![a-z0-9])", haystack) is not None


def states_anchors_of(sentence: str, paragraph: str, given: str = "") -> bool | None:
    """True if every number and name of the sentence not already in `given` (the question)
    is in the paragraph, False if one is missing, None if it states none."""
    found = anchors(sentence) - anchors(given)
    if not found:
        return None
    haystack = _normal(paragraph)
    return all(_contains(haystack, anchor) for anchor in found)


def invents_numbers(sentence: str, paragraph: str, given: str = "") -> bool:
    """A number in the sentence that neither the paragraph nor the question contains.

    Names may be transliterated across languages ("Mark Chen", "마크 첸"), so a missing
    name only lowers confidence; a missing number is never a translation."""
    haystack = _normal(paragraph)
    return any(anchor[0].isdigit() and not _contains(haystack, anchor)
               for anchor in anchors(sentence) - anchors(given))


def restates(claim: str, question: str) -> bool:
    """True if the claim adds no number, word or character pair that the question lacks
    (single characters, such as a Korean particle, add nothing)."""
    from .keywords import tokenize

    added = set(tokenize(strip_markers(claim))) - set(tokenize(question))
    return all(len(token) < 2 and not token.isdigit() for token in added)


@dataclass(frozen=True)
class Checked:
    text: str  # the answer with failing markers replaced or removed
    unsupported: list[str]  # sentences no passage supports


def check(answer: str, question: str, sources: Sequence[Source],
          similarity: Callable[[str, list[str]], list[float]]) -> Checked:
    """Keep each sentence's markers that support it; else cite the best supporting source."""
    out, unsupported = [], []
    for sentence in split_sentences(answer):
        claim = strip_markers(sentence)
        if not claim:
            continue
        cited = [n for n in markers(sentence) if 1 <= n <= len(sources)]
        if restates(claim, question):  # an echo of the question answers nothing
            unsupported.append(claim)
            continue
        lexical = [states_anchors_of(claim, s.text, question) for s in sources]
        need_similarity = [i for i, verdict in enumerate(lexical)
                           if verdict is not True and not invents_numbers(claim, sources[i].text, question)]
        scores = dict(zip(need_similarity, similarity(claim, [sources[i].text for i in need_similarity])))
        supporting = [i + 1 for i, verdict in enumerate(lexical)
                      if verdict is True or scores.get(i, 0.0) >= SUPPORT_SIMILARITY]
        keep = [n for n in cited if n in supporting]
        if not keep and supporting:
            # Prefer the source the lexical check agrees with, then the most similar one.
            keep = [max(supporting, key=lambda n: (lexical[n - 1] is True, scores.get(n - 1, 1.0)))]
        if not keep:
            unsupported.append(claim)
        out.append(claim + "".join(f" [{n}]" for n in keep))
    return Checked(" ".join(out), unsupported)


def resolve(text: str, sources: Sequence[Source], paragraph_text: Callable[[str, int], str]) -> list[Citation]:
    """One citation per valid marker, in order of appearance."""
    return [Citation(n, sources[n - 1].file, sources[n - 1].paragraph,
                     paragraph_text(sources[n - 1].file, sources[n - 1].paragraph), sources[n - 1].quote)
            for n in markers(text) if 1 <= n <= len(sources)]
