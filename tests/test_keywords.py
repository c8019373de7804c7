"""The keyword scores read from an index must be bm25s's own, without importing bm25s."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import ROOT


def test_keyword_scores_are_bm25s_scores(seeds_index):
    import bm25s

    from rag.index import KEYWORDS, load_index
    from rag.keywords import tokenize

    index = load_index(seeds_index)
    theirs = bm25s.BM25.load(str(index.folder / KEYWORDS), show_progress=False, verbosity=0)
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines()]
    for question in questions + ["OpenAI OpenAI GPU", "no such word zzzqx", "?!"]:
        tokens = tokenize(question)
        expected = theirs.get_scores(tokens) if tokens else np.zeros(len(index.chunks))
        assert np.allclose(index.keywords.scores(question), expected, atol=1e-6), question
    assert index.keywords.scores("OpenAI GPU").max() > 0
