"""Chunks: pieces of one document sized in embedder tokens, each knowing its paragraphs."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .documents import Document, Paragraph
from .language import detect_language
from .text import SENTENCE_MARKS

# Paragraph breaks first, then sentence ends (CJK full-width ones included), then clauses.
SEPARATORS = ["\n", *SENTENCE_MARKS, "；", "; ", "，", ", ", " ", ""]


# A document is chunked in runs of whole paragraphs of about this many characters, so that a
# huge one shows progress as it goes; chunks do not overlap across such a boundary (no
# document under this size is affected).
SECTION_CHARS = 1 << 16


@dataclass(frozen=True)
class Chunk:
    file: str
    first: int  # number (¶) of the first paragraph it covers
    last: int  # number (¶) of the last paragraph it covers
    text: str
    language: str  # detected per chunk: a document may mix languages
    # The first and last paragraph pieces it covers (rag.documents.Paragraph.piece): how its
    # paragraphs are looked up, a long paragraph being several pieces under one number.
    first_piece: int
    last_piece: int


@dataclass(frozen=True)
class ChunkingSettings:
    size: int  # embedder tokens per chunk, at most
    overlap: int  # embedder tokens shared by neighbouring chunks

    def to_json(self) -> dict:
        return {
            "unit": "embedder tokens",
            "size": self.size,
            "overlap": self.overlap,
            "separators": SEPARATORS,
            "section_chars": SECTION_CHARS,
        }


def _sections(paragraphs: tuple[Paragraph, ...]) -> Iterator[tuple[Paragraph, ...]]:
    """Runs of whole paragraphs of about SECTION_CHARS characters each."""
    start = size = 0
    for end, paragraph in enumerate(paragraphs):
        size += len(paragraph.text) + 1
        if size >= SECTION_CHARS:
            yield paragraphs[start : end + 1]
            start, size = end + 1, 0
    if start < len(paragraphs):
        yield paragraphs[start:]


def chunk_document(
    document: Document,
    settings: ChunkingSettings,
    count_tokens: Callable[[str], int],
    progress: Callable[[int], None] | None = None,
) -> list[Chunk]:
    """Split one document; chunks never cross files, and may span several short paragraphs.
    `progress` gets the number of characters chunked, section by section."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        keep_separator="end",
        chunk_size=settings.size,
        chunk_overlap=settings.overlap,
        length_function=count_tokens,
    )
    chunks = []
    for section in _sections(document.paragraphs):
        text = "\n".join(p.text for p in section)
        # Character offset where each paragraph starts in `text`, to map chunks back to paragraphs.
        starts, offset = [], 0
        for paragraph in section:
            starts.append(offset)
            offset += len(paragraph.text) + 1
        start = -1
        for part in splitter.split_text(text):
            # Chunks come in order, so each starts after the previous one. (The splitter's own
            # add_start_index subtracts the overlap in tokens from character offsets: wrong here.)
            start = text.find(part, start + 1)
            end = start + len(part) - 1
            first, last = section[bisect_right(starts, start) - 1], section[bisect_right(starts, end) - 1]
            chunks.append(
                Chunk(document.file, first.number, last.number, part, detect_language(part), first.piece, last.piece)
            )
        if progress:
            progress(offset)
    return chunks
