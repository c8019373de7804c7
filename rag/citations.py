"""From the [n] markers in a generated answer to checkable file + paragraph citations."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .retrieval import Hit

_MARKER_GROUP = re.compile(r"\[\s*\d+(?:\s*[,，、;]\s*\d+)*\s*\]")
_NUMBER = re.compile(r"\d+")
# A sentence ends at . ! ? (ASCII followed by space or end) or a CJK full stop, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")


@dataclass(frozen=True)
class Citation:
    n: int  # the marker number in the answer text
    file: str
    paragraph: int
    text: str  # the paragraph's exact text
    quote: str  # the sentence of the paragraph that best supports the citing claim

    def to_json(self) -> dict:
        return asdict(self)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def markers(text: str) -> list[int]:
    """Marker numbers in order of first appearance: "[1] … [2, 3]" gives [1, 2, 3]."""
    seen: list[int] = []
    for group in _MARKER_GROUP.findall(text):
        for number in map(int, _NUMBER.findall(group)):
            if number not in seen:
                seen.append(number)
    return seen


def drop_invalid_markers(text: str, valid: set[int]) -> str:
    """Remove marker numbers that point to no passage (and groups left empty)."""
    def keep(match: re.Match) -> str:
        numbers = [n for n in map(int, _NUMBER.findall(match.group())) if n in valid]
        return f"[{', '.join(map(str, numbers))}]" if numbers else ""

    return re.sub(r"[ \t]{2,}", " ", _MARKER_GROUP.sub(keep, text)).strip()


def strip_markers(text: str) -> str:
    return _MARKER_GROUP.sub("", text).strip()


def resolve(text: str, hits: list[Hit], paragraph_text, best_match) -> list[Citation]:
    """One citation per valid marker, in order of appearance.

    `paragraph_text(file, number)` gives a paragraph's exact text. The cited paragraph and
    its quote are the sentence of the passage that `best_match(claim, candidates)` (the
    index of the candidate that best supports the claim) picks for the sentences citing it.
    """
    citations = []
    sentences = split_sentences(text)
    for n in markers(text):
        if not 1 <= n <= len(hits):
            continue
        chunk = hits[n - 1].chunk
        candidates = [(number, sentence)
                      for number in range(chunk.first, chunk.last + 1)
                      for sentence in split_sentences(paragraph_text(chunk.file, number))]
        claim = " ".join(strip_markers(s) for s in sentences if n in markers(s)) or strip_markers(text)
        chosen = 0 if len(candidates) == 1 else best_match(claim, [c[1] for c in candidates])
        number, quote = candidates[chosen]
        citations.append(Citation(n, chunk.file, number, paragraph_text(chunk.file, number), quote))
    return citations
