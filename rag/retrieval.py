"""From a question to ranked chunks: dense (vectors), keyword (BM25) or both, from either store.

Scores, measured on eval/gold.jsonl (see docs/evaluation.md):
- dense: inner product with language-centred chunk vectors (see rag/index.py, rag/store.py);
- a question that names a source language ("according to the Korean article") lifts
  chunks in that language by NAMED_LANGUAGE_BOOST;
- hybrid adds BM25, max-normalised, with a small weight: keywords decide between close
  dense candidates but can never bury a strong dense hit (reciprocal rank fusion, which
  gives both sides equal say, did worse: docs/evaluation.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunking import Chunk
from .embedding import Embedder
from .language import named_language
from .store import Store

# How many candidates each side contributes before the final ranking.
CANDIDATES = 50
NAMED_LANGUAGE_BOOST = 0.05
KEYWORD_WEIGHT = 0.01


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # what the ranking used
    dense: float | None = None  # cosine similarity to the question, when embedded
    keyword: float | None = None  # BM25 score, when any keyword matched

    def to_json(self) -> dict:
        return {
            "file": self.chunk.file,
            "paragraph_start": self.chunk.first,
            "paragraph_end": self.chunk.last,
            "text": self.chunk.text,
            "score": round(self.score, 4),
        }


class Retriever:
    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def search(
        self,
        question: str,
        k: int,
        mode: str = "hybrid",
        query: np.ndarray | None = None,
        files: frozenset[str] | None = None,
    ) -> list[Hit]:
        """The k best chunks, of `files` only when given (a resolved scope, rag/scope.py: both
        sides search only those, so the scope's own best are ranked); `query` is the
        question's embedding, if the caller has it already."""
        if not self.store.chunk_count:
            return []
        pool = max(k, CANDIDATES)
        keyword = self.store.keyword_search(question, pool, files) if mode != "dense" else {}
        if mode == "keyword":
            ranked = sorted(keyword.items(), key=lambda item: (-item[1], item[0]))[:k]
            chunks = self.store.chunks_at([row for row, _ in ranked])
            return [Hit(chunk, score, keyword=score) for chunk, (_, score) in zip(chunks, ranked)]

        if query is None:
            query = self.embedder.encode_queries([question])[0]
        named = named_language(question)
        candidates = dict(self.store.search(query, pool, files=files))
        if named:
            candidates.update(self.store.search(query, pool, language=named, files=files))
        missing = [row for row in keyword if row not in candidates]
        if missing:
            candidates.update(zip(missing, self.store.centred_scores(query, missing).tolist()))
        chunks = dict(zip(candidates, self.store.chunks_at(list(candidates))))
        top_keyword = max(keyword.values(), default=1.0)
        scores = {
            row: centred
            + (NAMED_LANGUAGE_BOOST if chunks[row].language == named else 0.0)
            + KEYWORD_WEIGHT * keyword.get(row, 0.0) / top_keyword
            for row, centred in candidates.items()
        }
        ranked = sorted(scores, key=lambda row: -scores[row])[:k]
        return [
            Hit(chunks[row], scores[row], self.store.cosine(query, chunks[row], candidates[row]), keyword.get(row))
            for row in ranked
        ]
