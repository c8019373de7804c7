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

import json
import re
import unicodedata
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from .text import CJK, without_thousands_separators

_TOKEN = re.compile(
    r"(?P<number>\d+)"
    rf"|(?P<word>[^\W\d_{CJK}]+)"
    rf"|(?P<cjk>[{CJK}]+)"
)


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(without_thousands_separators(unicodedata.normalize("NFKC", text).casefold())):
        if match["number"]:
            tokens.append(match["number"])
        elif match["word"]:
            tokens.append(match["word"])
        else:
            run = match["cjk"]
            tokens.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
    return tokens


def adds_nothing(text: str, asked: set[str]) -> bool:
    """Whether every token of `text` is among `asked` (a question's tokens): a copy that only
    repeats the question, or a paragraph the question already says (a title it quotes)."""
    return not set(tokenize(text)) - asked


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
    """BM25 over chunk texts, saved beside the vectors in the same index folder.

    bm25s computes every (word, chunk) BM25 weight when the index is built and saves them as
    a sparse column matrix (plain .npy files and a JSON vocabulary). A question's scores are
    sums of that matrix's columns, so they are read and summed here with numpy, as bm25s's
    own numpy scorer does: importing bm25s imports scipy, about a second of a cold question.
    """

    # bm25s's file names, and the scoring methods whose weights need no other term.
    FILES = {
        "data": "data.csc.index.npy",
        "indices": "indices.csc.index.npy",
        "indptr": "indptr.csc.index.npy",
        "vocab": "vocab.index.json",
        "params": "params.index.json",
    }
    METHODS = ("lucene", "robertson", "atire")

    def __init__(
        self,
        vocabulary: dict[str, int],
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        rows: int,
        built=None,
    ) -> None:
        self._vocabulary, self._data, self._indices, self._indptr, self._rows = vocabulary, data, indices, indptr, rows
        self._built = built  # the bm25s object of a fresh build, which writes bm25s's files

    @classmethod
    def build(cls, texts: list[str]) -> KeywordIndex:
        """The BM25 weights of `texts` (one row each), computed by bm25s."""
        import bm25s

        bm25 = bm25s.BM25(method="lucene")
        # An empty token list would make bm25s drop the document and shift every row after it.
        bm25.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)
        matrix = bm25.scores  # compressed sparse columns: one column per term
        return cls(
            bm25.vocab_dict,
            *(np.asarray(matrix[key]) for key in ("data", "indices", "indptr")),
            int(matrix["num_docs"]),
            built=bm25,
        )

    def save(self, folder: Path) -> None:
        """Write a fresh build's weights in bm25s's format (what `load` reads)."""
        if self._built is None:
            raise ValueError("only a keyword index just built can be saved")
        self._built.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        params = json.loads((folder / cls.FILES["params"]).read_text(encoding="utf-8"))
        if params.get("method") not in cls.METHODS:
            raise ValueError(f"keyword index method {params.get('method')!r} is not one of {cls.METHODS}")
        vocabulary = json.loads((folder / cls.FILES["vocab"]).read_text(encoding="utf-8"))
        data, indices, indptr = (np.load(folder / cls.FILES[name]) for name in ("data", "indices", "indptr"))
        return cls(vocabulary, data, indices, indptr, int(params["num_docs"]))

    def document_vectors(self) -> list[dict[int, float]]:
        """Each chunk's BM25 weight per term dimension, in row order (bm25s precomputes them)."""
        indptr, rows, weights = self._indptr, self._indices, self._data
        terms = sorted(self._vocabulary, key=self._vocabulary.get)[: len(indptr) - 1]
        dimensions = np.repeat(np.array([term_id(t) for t in terms], dtype=np.int64), np.diff(indptr))
        order = np.argsort(rows, kind="stable")
        bounds = np.searchsorted(rows[order], np.arange(self._rows + 1))
        vectors = []
        for start, end in zip(bounds[:-1], bounds[1:]):
            pairs = zip(dimensions[order[start:end]].tolist(), weights[order[start:end]].tolist())
            vector: dict[int, float] = {}
            for dimension, weight in pairs:  # two terms of one chunk may share a hash: add them
                vector[dimension] = vector.get(dimension, 0.0) + weight
            vectors.append(vector)
        return vectors

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk row for the query (zeros when no token matches); a word
        that occurs twice in the query counts twice, as in bm25s."""
        scores = np.zeros(self._rows, dtype=np.float32)
        for token in tokenize(query):
            column = self._vocabulary.get(token)
            if column is not None:
                start, end = self._indptr[column], self._indptr[column + 1]
                np.add.at(scores, self._indices[start:end], self._data[start:end])
        return scores


def top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """Rows of the n highest positive scores, highest first, ties by row: the positive ones
    among the first n of a stable argsort of -scores, without sorting every row (on a large
    index that sort cost more than the rest of the keyword search)."""
    rows = np.flatnonzero(scores > 0)
    if len(rows) > n:
        threshold = np.partition(scores[rows], len(rows) - n)[len(rows) - n]
        rows = rows[scores[rows] >= threshold]
    return rows[np.lexsort((rows, -scores[rows]))][:n]
