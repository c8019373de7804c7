"""Chunks: pieces of one document sized in embedder tokens, each knowing its paragraphs."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from .documents import Document
from .language import detect_language

# Paragraph breaks first, then sentence ends (CJK full-width ones included), then clauses.
SEPARATORS = ["\n", "。", "！", "？", ". ", "! ", "? ", "；", "; ", "，", ", ", " ", ""]


@dataclass(frozen=True)
class Chunk:
    file: str
    first: int  # first paragraph number it covers
    last: int  # last paragraph number it covers
    text: str
    language: str  # detected per chunk: a document may mix languages


@dataclass(frozen=True)
class ChunkingSettings:
    size: int  # embedder tokens per chunk, at most
    overlap: int  # embedder tokens shared by neighbouring chunks

    def to_json(self) -> dict:
        return {"unit": "embedder tokens", "size": self.size, "overlap": self.overlap,
                "separators": SEPARATORS}


def chunk_document(document: Document, settings: ChunkingSettings,
                   count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Split one document; chunks never cross files, and may span several short paragraphs."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS, keep_separator="end", chunk_size=settings.size,
        chunk_overlap=settings.overlap, length_function=count_tokens)
    text = "\n".join(p.text for p in document.paragraphs)
    # Character offset where each paragraph starts in `text`, to map chunks back to paragraphs.
    starts, offset = [], 0
    for paragraph in document.paragraphs:
        starts.append(offset)
        offset += len(paragraph.text) + 1
    chunks, start = [], -1
    for piece in splitter.split_text(text):
        # Chunks come in order, so each starts after the previous one. (The splitter's own
        # add_start_index subtracts the overlap in tokens from character offsets: wrong here.)
        start = text.find(piece, start + 1)
        end = start + len(piece) - 1
        chunks.append(Chunk(document.file, bisect_right(starts, start), bisect_right(starts, end), piece,
                            detect_language(piece)))
    return chunks
