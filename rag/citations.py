"""What a citation is: the paragraph an answer rests on, where it stands in its file, and
the sentence of it the answer was copied from (see rag/grounding.py); and the [n] markers
that point to citations in an answer's text.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Protocol

# A citation marker group: [1], [1, 3], [1，2] (the only place this pattern is written).
MARKER_GROUP = re.compile(r"\[\s*\d+(?:\s*[,，、;]\s*\d+)*\s*\]")
_DIGITS = re.compile(r"\d+")


class Source(Protocol):
    """What a marker [n] points to: one paragraph (see rag.passages.Passage)."""

    file: str
    paragraph: int
    text: str


class Located(Protocol):
    """A paragraph as rag.documents.Paragraph has it."""

    file: str
    number: int
    text: str
    page: int | None
    ocr: bool


def place(paragraph: int, page: int | None = None) -> str:
    """Where a paragraph stands in its file: `¶N`, or `p.PAGE ¶N` for a paged format."""
    return f"p.{page} ¶{paragraph}" if page is not None else f"¶{paragraph}"


def location(file: str, paragraph: int, page: int | None = None, ocr: bool = False) -> str:
    """How a paragraph is cited: `file ¶N`, or `file p.PAGE ¶N` for a paged format."""
    where = f"{file} {place(paragraph, page)}"
    return where + " (OCR)" if ocr else where


@dataclass(frozen=True)
class Citation:
    n: int  # the marker number in the answer text
    file: str
    paragraph: int  # its number in the file (¶); a paragraph cut for length keeps one number
    text: str  # the paragraph's exact text (of the piece of it cited, when it was cut)
    quote: str  # the sentence of the paragraph the answer rests on, verbatim
    page: int | None = None  # from 1 for PDFs, None for formats without pages
    ocr: bool = False  # the paragraph was read by OCR from a scanned page

    @property
    def location(self) -> str:
        return location(self.file, self.paragraph, self.page, self.ocr)

    def to_json(self) -> dict:
        return asdict(self)


def markers(text: str) -> list[int]:
    """Marker numbers in order of first appearance: "[1] … [2, 3]" gives [1, 2, 3]."""
    seen: list[int] = []
    for group in MARKER_GROUP.findall(text):
        for number in map(int, _DIGITS.findall(group)):
            if number not in seen:
                seen.append(number)
    return seen


def strip_markers(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", MARKER_GROUP.sub("", text)).strip()
