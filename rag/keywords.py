"""Keyword (BM25) search that works for unspaced Chinese and agglutinative Korean.

Tokens: Latin-script words and numbers (thousands separators removed, so "830.000" and
"830,000" meet), and overlapping character bigrams for Hangul, Han and kana runs, which
match Korean words whatever particle is attached and Chinese words without a segmenter.

A store without bm25s (Milvus) keeps the same BM25 as sparse vectors: each chunk's
precomputed per-term BM25 weights, keyed by a hash of the term, so that the inner product
with the question's term counts is the chunk's BM25 score here. Milvus's own BM25
analyzers split on runs of word characters (a whole Chinese sentence is one token) or need jieba, and lost
to these tokens on eval/gold.jsonl (see docs/scaling.md).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

_TOKEN = re.compile(
    r"(?P<number>\d+(?:[.,]\d{3})+(?!\d)|\d+)"
    r"|(?P<word>[^\W\d_\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]+)"
    r"|(?P<cjk>[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]+)"
)


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text).casefold()):
        if match["number"]:
            tokens.append(re.sub(r"[.,]", "", match["number"]))
        elif match["word"]:
            tokens.append(match["word"])
        else:
            run = match["cjk"]
            tokens.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return tokens


# Sparse-vector dimensions must lie in 0 .. 2**32 - 2 (Milvus).
_TERM_IDS = 2**32 - 1


def term_id(token: str) -> int:
    """A term's sparse-vector dimension: stable across processes and builds."""
    return zlib.crc32(token.encode("utf-8")) % _TERM_IDS


def query_vector(question: str) -> dict[int, float]:
    """The question's term counts by dimension (bm25s counts a repeated query term twice)."""
    counts = Counter(term_id(token) for token in tokenize(question))
    return {dimension: float(count) for dimension, count in counts.items()}


class KeywordIndex:
    """BM25 over chunk texts (bm25s), saved beside the vectors in the same index folder."""

    def __init__(self, bm25) -> None:
        self._bm25 = bm25

    @classmethod
    def build(cls, texts: list[str]) -> "KeywordIndex":
        import bm25s

        bm25 = bm25s.BM25()
        # An empty token list would make bm25s drop the document and shift every row after it.
        bm25.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)
        return cls(bm25)

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        import bm25s

        return cls(bm25s.BM25.load(str(folder), show_progress=False, verbosity=0))

    def document_vectors(self) -> list[dict[int, float]]:
        """Each chunk's BM25 weight per term dimension, in row order (bm25s precomputes them)."""
        matrix = self._bm25.scores  # compressed sparse columns: one column per term
        indptr, rows, weights = (np.asarray(matrix[key]) for key in ("indptr", "indices", "data"))
        terms = sorted(self._bm25.vocab_dict, key=self._bm25.vocab_dict.get)[:len(indptr) - 1]
        dimensions = np.repeat(np.array([term_id(t) for t in terms], dtype=np.int64), np.diff(indptr))
        order = np.argsort(rows, kind="stable")
        bounds = np.searchsorted(rows[order], np.arange(matrix["num_docs"] + 1))
        vectors = []
        for start, end in zip(bounds[:-1], bounds[1:]):
            pairs = zip(dimensions[order[start:end]].tolist(), weights[order[start:end]].tolist())
            vector: dict[int, float] = {}
            for dimension, weight in pairs:  # two terms of one chunk may share a hash: add them
                vector[dimension] = vector.get(dimension, 0.0) + weight
            vectors.append(vector)
        return vectors

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk row for the query (zeros when no token matches)."""
        tokens = tokenize(query)
        if not tokens:  # bm25s cannot score an empty query
            return np.zeros(self._bm25.scores["num_docs"], dtype=np.float32)
        return self._bm25.get_scores(tokens)


def top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """Rows of the n highest positive scores, highest first, ties by row: the positive ones
    among the first n of a stable argsort of -scores, without sorting every row (on a large
    index that sort cost more than the rest of the keyword search)."""
    rows = np.flatnonzero(scores > 0)
    if len(rows) > n:
        threshold = np.partition(scores[rows], len(rows) - n)[len(rows) - n]
        rows = rows[scores[rows] >= threshold]
    return rows[np.lexsort((rows, -scores[rows]))][:n]
