"""rag/keywords.py: words and CJK bigrams as tokens; the keyword scores read from an index are
bm25s's own, without importing bm25s."""

from __future__ import annotations

import json

import numpy as np

from rag.keywords import tokenize
from tests.conftest import ROOT


def test_keyword_scores_are_bm25s_scores(seeds_index):
    import bm25s

    from rag.index import KEYWORDS, load_index

    index = load_index(seeds_index)
    theirs = bm25s.BM25.load(str(index.folder / KEYWORDS), show_progress=False, verbosity=0)
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines()]
    for question in questions + ["OpenAI OpenAI GPU", "no such word zzzqx", "?!"]:
        tokens = tokenize(question)
        expected = theirs.get_scores(tokens) if tokens else np.zeros(len(index.chunks))
        assert np.allclose(index.keywords.scores(question), expected, atol=1e-6), question
    assert index.keywords.scores("OpenAI GPU").max() > 0


def test_keyword_tokens_work_without_spaces_and_with_particles():
    assert {"团队", "altman"} <= set(tokenize("创始团队出走殆尽、Altman孤家寡人"))
    assert "만에" in tokenize("7주 만에 MVP") and "830000" in tokenize("830.000 pull request")
    assert tokenize("🙂🙂") == []


def test_numbers_meet_whatever_thousands_separator_they_are_written_with():
    # The rule the answer scoring uses too (rag.text.THOUSANDS_SEPARATOR).
    for written in ("830.000", "830,000", "830'000", "830000"):
        assert tokenize(f"Rp {written} per karung") == ["rp", "830000", "per", "karung"], written
    assert tokenize("5.30 pm, 1.000.000") == ["5", "30", "pm", "1000000"]
