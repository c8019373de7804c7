"""From a question to ranked chunks: dense (FAISS), keyword (BM25) or both fused."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunking import Chunk
from .embedding import Embedder
from .index import Index

# How many candidates each side contributes before fusion.
CANDIDATES = 50
# Reciprocal rank fusion constant (Cormack et al. 2009).
RRF_K = 60


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # what the ranking used: cosine (dense), BM25 (keyword) or fused
    dense: float | None = None  # cosine similarity to the question, when known
    keyword: float | None = None  # BM25 score, when the chunk matched any keyword

    def to_json(self) -> dict:
        return {"file": self.chunk.file, "paragraph_start": self.chunk.first,
                "paragraph_end": self.chunk.last, "text": self.chunk.text, "score": round(self.score, 4)}


class Retriever:
    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    def search(self, question: str, k: int, mode: str = "hybrid") -> list[Hit]:
        if not self.index.chunks:
            return []
        dense = keyword = {}
        if mode in ("dense", "hybrid"):
            query = self.embedder.encode_queries([question])[0]
            dense = dict(self.index.search(query, max(k, CANDIDATES)))
        if mode in ("keyword", "hybrid"):
            keyword = self._keyword(question, max(k, CANDIDATES))
        if mode == "dense":
            ranked = sorted(dense.items(), key=lambda item: -item[1])
        elif mode == "keyword":
            ranked = sorted(keyword.items(), key=lambda item: -item[1])
        else:
            ranked = fuse(dense, keyword)
        return [Hit(self.index.chunks[row], score, dense.get(row), keyword.get(row))
                for row, score in ranked[:k]]

    def _keyword(self, question: str, n: int) -> dict[int, float]:
        scores = self.index.keywords.scores(question)
        top = np.argsort(-scores, kind="stable")[:n]
        return {int(row): float(scores[row]) for row in top if scores[row] > 0}


def fuse(dense: dict[int, float], keyword: dict[int, float]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of the two rankings, best first."""
    fused: dict[int, float] = {}
    for ranking in (dense, keyword):
        for rank, row in enumerate(sorted(ranking, key=lambda r: -ranking[r])):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(fused.items(), key=lambda item: -item[1])
