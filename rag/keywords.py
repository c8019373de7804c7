"""Keyword (BM25) search that works for unspaced Chinese and agglutinative Korean.

Tokens: Latin-script words and numbers (thousands separators removed, so "830.000" and
"830,000" meet), and overlapping character bigrams for Hangul, Han and kana runs, which
match Korean words whatever particle is attached and Chinese words without a segmenter.
"""

from __future__ import annotations

import re
import unicodedata
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

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk row for the query (zeros when no token matches)."""
        tokens = tokenize(query)
        if not tokens:  # bm25s cannot score an empty query
            return np.zeros(self._bm25.scores["num_docs"], dtype=np.float32)
        return self._bm25.get_scores(tokens)
