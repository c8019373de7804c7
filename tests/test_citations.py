"""Citations, the grounding of a copied answer, the copy grammar and the injection screen.

Fast: real seed paragraphs and the injection fixtures; no model.
"""

import json
import re
from dataclasses import dataclass

import pytest

from rag.citations import location, markers, strip_markers
from rag.grounding import problem_with_quote, problem_with_span, quote_of
from rag.injection import instructs
from rag.prompts import fence, grammar, span_grammar
from rag.text import split_sentences, units

from .conftest import ROOT, SEEDS

INDONESIAN = "000_25ef5ea761165839.txt"
FIXTURE = ROOT / "tests" / "fixtures" / "injection"
ATTACKS = [json.loads(line) for line in (FIXTURE / "attacks.jsonl").read_text(encoding="utf-8").splitlines()]
INNOCENT = [json.loads(line) for line in (FIXTURE / "innocent.jsonl").read_text(encoding="utf-8").splitlines()]


@dataclass(frozen=True)
class Paragraph:
    file: str
    paragraph: int
    text: str


def seed(file: str, number: int) -> str:
    return (SEEDS / file).read_text(encoding="utf-8").split("\n")[number - 1]


def copies(grammar_text: str, rule: str = "root") -> set[str]:
    """Every text the span grammar accepts (it is small enough to enumerate): a start unit
    followed by any number of the units after it."""
    rules = dict(line.split(" ::= ", 1) for line in grammar_text.strip().split("\n"))
    literal = r'"((?:[^"\\]|\\.)*)"'
    unquote = lambda s: json.loads(f'"{s}"')
    starts = [(unquote(m.group(1)), m.group(2)) for m in re.finditer(literal + r" ([\w-]+)", rules[rule])]
    found = set()
    for text, follow in starts:
        found.add(text)
        while (step := re.fullmatch(r"\(" + literal + r" ([\w-]+)\)\?", rules[follow])) is not None:
            text, follow = text + unquote(step.group(1)), step.group(2)
            found.add(text)
    return found


def test_markers_in_order_of_appearance():
    assert markers("A [2]. B [1, 3] and [2][4]") == [2, 1, 3, 4]
    assert strip_markers("Seven weeks [1] .") == "Seven weeks ."
    assert split_sentences("첫 문장입니다. Second one! 第三句。Fourth") == [
        "첫 문장입니다.",
        "Second one!",
        "第三句。",
        "Fourth",
    ]


def test_a_pdf_paragraph_is_cited_with_its_page():
    assert location("report.pdf", 12, 3) == "report.pdf p.3 ¶12"
    assert location("scan.pdf", 1, 1, ocr=True) == "scan.pdf p.1 ¶1 (OCR)"
    assert location("notes.txt", 4) == "notes.txt ¶4"


def test_copy_units_keep_numbers_dates_and_names_whole():
    text = "Pada 2019.3~2021.11, 3.000 karyawan GPT-4o; 她在2019年加入。"
    assert [text[slice(*u)] for u in units(text)] == [
        "Pada",
        "2019.3~2021.11",
        ",",
        "3.000",
        "karyawan",
        "GPT-4o",
        ";",
        "她",
        "在",
        "2019",
        "年",
        "加",
        "入",
        "。",
    ]


def test_the_span_grammar_accepts_exactly_the_runs_of_the_passage():
    passage = 'Calvin "C" French-Owen ikut mendirikan Segment; 她在2019年加入。'
    accepted = copies(span_grammar(passage))
    assert {"Segment", 'Calvin "C" French-Owen', "mendirikan Segment;", "2019年", "她在2019年加入。"} <= accepted
    assert all(a in fence(passage) for a in accepted)  # every copy stands in the passage as read
    assert not any(a.startswith((";", '"', "。")) for a in accepted)  # a copy starts at a word


def test_the_whole_reply_grammar_ties_each_number_to_its_passage():
    text = grammar(["Segment didirikan 2011.", "OpenAI 3.000 karyawan."])
    root = text.split("\n")[0]
    assert root == 'root ::= "[0]" | "[1]" p1 | "[2]" p2'
    assert "Segment" in copies(text, "p1") and "Segment" not in copies(text, "p2")


def test_a_copy_is_quoted_with_the_sentence_it_stands_in():
    paragraph = seed(INDONESIAN, 5)
    sentence = next(s for s in split_sentences(paragraph) if "7 minggu" in s)
    assert quote_of("7 minggu", paragraph) == sentence
    assert quote_of("ribuan galaksi", paragraph) is None
    # Across a sentence end, the run of sentences that holds it, verbatim from the paragraph.
    paragraph = "Segment didirikan pada 2011. Calvin pergi ke OpenAI.  Ia bertahan 14 bulan."
    assert quote_of("2011. Calvin", paragraph) == "Segment didirikan pada 2011. Calvin pergi ke OpenAI."


def test_a_copy_that_only_repeats_the_question_is_no_answer():
    assert problem_with_span("Calvin French-Owen", "Siapa Calvin French-Owen?") is not None
    assert problem_with_span("메타의 새 '초지능' 팀에", "메타의 새 '초지능' 팀에 합류한 사람은?") is not None
    assert problem_with_span("…", "Siapa Calvin French-Owen?") is not None
    assert problem_with_span("Segment", "Siapa Calvin French-Owen?") is None


@pytest.mark.parametrize("attack", ATTACKS, ids=[a["text"][:30] for a in ATTACKS])
def test_every_attack_is_an_instruction_and_no_copy_from_it_is_shown(attack):
    assert instructs(attack["text"])
    assert problem_with_quote(attack["text"]) is not None


@pytest.mark.parametrize("fact", INNOCENT, ids=[f["text"][:30] for f in INNOCENT])
def test_no_innocent_fact_is_lost(fact):
    assert not instructs(fact["text"])
    assert problem_with_quote(fact["text"]) is None
