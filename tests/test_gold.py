"""harness/gold.py's helpers (loading and validation are tested through `rag eval` in
test_evaluation.py): evidence matching, format-independent file names, id lists, subsets and
the typical questions the bench times. Fast."""

from __future__ import annotations

import json

import pytest

from harness.gold import (
    FALLBACK_QUESTIONS,
    GoldItem,
    holds,
    parse_ids,
    same_document,
    sample,
    select,
    shorten,
    typical_questions,
)
from rag.errors import RagError


def test_evidence_holds_across_line_breaks_and_missing_spaces():
    assert holds("OpenAI 内部几乎\n不用邮件", "内部 几乎不用")  # a PDF line break between CJK characters
    assert holds("mendirikan\nSegment  sebelum", "mendirikan Segment sebelum")
    assert not holds("mendirikan Segment", "mendirikan Google")


def test_a_gold_file_name_also_names_its_conversion_to_another_format():
    assert same_document("000_a.txt", ["000_a.pdf", "001_b.pdf"]) == "000_a.pdf"
    assert same_document("000_a.txt", ["000_a.txt", "000_a.pdf"]) == "000_a.txt"  # the file itself first
    assert same_document("000_a.txt", ["000_a.pdf", "000_a.docx"]) == "000_a.txt"  # two candidates: none chosen
    assert same_document("sub/000_a.txt", ["000_a.pdf"]) == "sub/000_a.txt"  # the folder counts


def test_shorten_collapses_whitespace_and_marks_a_cut():
    assert shorten("a\n  b", 10) == "a b"
    assert shorten("x" * 12, 10) == "x" * 9 + "…"


def test_ids_come_from_arguments_and_files_with_comments(tmp_path):
    listed = tmp_path / "ids.txt"
    listed.write_text("q003  # a comment\nq004,q005\n\n# q006 left out\n", encoding="utf-8")
    assert parse_ids(["q001,q002", f"@{listed}", "q007"]) == ["q001", "q002", "q003", "q004", "q005", "q007"]
    with pytest.raises(RagError, match="id list not found"):
        parse_ids([f"@{tmp_path / 'none.txt'}"])


def item(qid: str, lang: str) -> GoldItem:
    return GoldItem(qid, f"question {qid}?", lang, "fact", "a.txt", "x", ("x",), int(qid[1:]))


ITEMS = [item(f"q{n:03}", lang) for n, lang in enumerate(["en", "ko", "zh", "id"] * 5, 1)]


def test_a_selection_keeps_file_order_and_refuses_unknown_ids():
    assert [i.id for i in select(ITEMS, ids=["q005", "q001"])] == ["q001", "q005"]
    with pytest.raises(RagError, match="unknown gold ids: q999"):
        select(ITEMS, ids=["q001", "q999"])
    assert len(select(ITEMS, sample_size=4, ids=[i.id for i in ITEMS[:8]])) == 4
    with pytest.raises(RagError, match="--sample must be at least 1"):
        sample(ITEMS, 0)
    assert sample(ITEMS, 100) == ITEMS  # more than there are: all of them


def test_typical_questions_take_the_languages_in_turn_and_skip_unanswerable(tmp_path):
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"question": "en 1", "lang": "en", "answers": ["x"], "kind": "fact"},
        {"question": "en 2", "lang": "en", "answers": ["x"], "kind": "fact"},
        {"question": "en none", "lang": "en", "answers": [], "kind": "unanswerable"},
        {"question": "id 1", "lang": "id", "answers": ["x"], "kind": "cross"},
    ]
    gold.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert typical_questions(gold) == ["en 1", "id 1", "en 2"]
    assert typical_questions(tmp_path / "missing.jsonl") == FALLBACK_QUESTIONS
