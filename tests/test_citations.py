"""The answer check: what an answer may state, on which paragraph and sentence it rests.

Fast: real seed paragraphs and the injection fixtures, with a similarity that never
vouches for anything (so every verdict here comes from the rules, not the embedder).
"""

import json
from dataclasses import dataclass

import pytest

from rag.assistant import clean_cut
from rag.citations import (
    check_answer,
    claim_of,
    instructs,
    location,
    markers,
    names,
    numbers,
    resolve,
    restates,
    split_sentences,
    strip_markers,
)
from rag.documents import Paragraph as DocumentParagraph

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


def seed(file: str, number: int) -> Paragraph:
    return Paragraph(file, number, (SEEDS / file).read_text(encoding="utf-8").split("\n")[number - 1])


def never_similar(claim, texts):
    return [0.0] * len(texts)


def verdict(answer, question, sources, cited=1):
    return check_answer(answer, cited, question, sources, never_similar, support_similarity=0.86)


@pytest.fixture(scope="module")
def passages():
    return [seed(INDONESIAN, 5), seed(INDONESIAN, 6), seed("003_15cb4250a3f963ee.txt", 3)]


def test_markers_in_order_of_appearance():
    assert markers("A [2]. B [1, 3] and [2][4]") == [2, 1, 3, 4]
    assert strip_markers("Seven weeks [1] .") == "Seven weeks ."
    assert split_sentences("첫 문장입니다. Second one! 第三句。Fourth") == [
        "첫 문장입니다.",
        "Second one!",
        "第三句。",
        "Fourth",
    ]


def test_numbers_are_values_in_any_notation():
    assert numbers("lebih dari 3.000 karyawan") == {3000}
    assert numbers("more than 3,000 people") == {3000}
    assert 3000 in numbers("3천 명")
    assert numbers("1,5 juta") == {1.5, 1.5e6}
    assert numbers("２０２４年") == {2024}


def test_small_numbers_written_as_words_are_numbers():
    assert numbers("only given nine days") == {9}
    assert numbers("hanya sembilan hari") == {9}
    assert numbers("只给了九天") == {9}
    assert numbers("연구원 아홉 명") == {9}
    assert numbers("one of the first, 一个人, 한 명, satu hal") == set()  # articles more often than counts


def test_names_are_latin_capitalised_words():
    assert names("He joined OpenAI after Segment.") == {"openai", "segment"}
    assert names("John Schulman", answer=True) == {"john", "schulman"}
    assert names("Altman.", answer=True) == {"altman"}  # a short answer's first word may be a name
    assert names("In 2015.", answer=True) == names("During a haircut.", answer=True) == set()  # not these
    assert names("According to the Korean article, who is Mark Chen?") == {"mark", "chen"}


def test_a_label_alone_is_no_answer(passages):
    assert claim_of("Jawaban: [1]") == ""
    assert verdict("답: [1]", "Berapa minggu Codex dibangun?", passages).reason == "the answer is empty"


def test_a_supported_answer_names_its_sentence_verbatim(passages):
    result = verdict("7 minggu", "Berapa minggu Codex dibangun?", passages, cited=1)
    assert result.supported and result.source == 1
    assert "7 minggu" in result.quote and result.quote in passages[0].text
    citation = resolve(result, passages, lambda file, n: DocumentParagraph(file, n, seed(file, n).text))
    assert (citation.file, citation.paragraph, citation.quote) == (INDONESIAN, 5, result.quote)
    assert citation.location == f"{INDONESIAN} ¶5" and citation.to_json()["page"] is None
    on_page = resolve(result, passages, lambda file, n: DocumentParagraph(file, n, seed(file, n).text, page=2))
    assert on_page.location == f"{INDONESIAN} p.2 ¶5" and on_page.to_json()["page"] == 2


def test_a_pdf_paragraph_is_cited_with_its_page():
    assert location("report.pdf", 12, 3) == "report.pdf p.3 ¶12"
    assert location("scan.pdf", 1, 1, ocr=True) == "scan.pdf p.1 ¶1 (OCR)"
    assert location("notes.txt", 4) == "notes.txt ¶4"


def test_a_passage_that_merely_names_the_answer_never_vouches_for_it(passages):
    # Passage 3 names John Schulman, but as co-founder of OpenAI, not of Segment.
    schulman = Paragraph(
        "002_ac4bfb2122ab1026.txt",
        27,
        "Co-founder and top scientist John Schulman told "
        "colleagues that he was frustrated with the internal conflicts at OpenAI.",
    )
    result = verdict(
        "John Schulman founded it",
        "Who co-founded Segment before joining OpenAI?",
        [passages[0], passages[1], schulman],
        cited=1,
    )
    assert not result.supported and result.reason == "the name John is not in the cited passage"


def test_an_answer_written_from_another_passage_about_the_question_is_cited_there(passages):
    # The small models often choose one number and write the answer from another passage.
    question = "Sebelum bergabung dengan OpenAI, perusahaan apa yang ikut didirikan Calvin French-Owen?"
    result = verdict("Segment", question, [passages[2], seed(INDONESIAN, 1)], cited=1)
    assert result.supported and result.source == 2
    assert "yang ikut mendirikan Segment sebelum bergabung dengan OpenAI" in result.quote


def test_an_answer_held_by_its_names_alone_is_cited_where_a_sentence_says_it():
    wsj = "002_ac4bfb2122ab1026.txt"
    listed, said = seed(wsj, 19), seed(wsj, 37)  # Leike among those who left; Leike, who co-led the safety team
    result = verdict("He co-led the safety team with Ilya Sutskever.", "Who is Jan Leike?", [said, listed], cited=2)
    assert result.supported and result.source == 1 and "who co-led the safety team with him" in result.quote


def test_an_invented_number_fails(passages):
    result = verdict("999.999 pull request", "Berapa pull request yang dihasilkan Codex?", passages)
    assert not result.supported and result.reason == "the number 999999 is not in the cited passage"
    september = Paragraph("004.txt", 3, "The post was published on September 25.")
    assert (
        verdict("2021年9月25日", "这篇文章是哪一天发表的?", [september]).reason
        == "the numbers 9 and 2021 are not in the cited passage"
    )


def test_a_name_not_in_the_cited_paragraph_fails(passages):
    result = verdict("John Schulman", "Siapa yang ikut mendirikan Segment?", passages)
    assert not result.supported
    assert result.reason == "the name John is not in the cited passage"


def test_restating_the_question_fails(passages):
    question = "OpenAI는 메타의 새 '초지능' 팀에 최소 몇 명의 연구원을 빼앗겼나요?"
    assert restates("메타의 새 '초지능' 팀에", question)
    assert not verdict("메타의 새 '초지능' 팀에", question, passages).supported


def test_a_number_question_needs_a_number(passages):
    assert (
        verdict("PWNED", "OpenAI 직원은 몇 명인가요?", passages).reason
        == "the question asks for a number and the answer gives none"
    )


def test_a_word_of_the_question_is_no_name_the_answer_adds():
    haircut = Paragraph("004.txt", 9, "One day I realized I needed a haircut.")
    question = "During what everyday activity did the author see how popular ChatGPT was?"
    assert verdict("During a haircut.", question, [haircut]).supported
    assert (
        verdict("During a haircut with Schulman.", question, [haircut]).reason
        == "the name Schulman is not in the cited passage"
    )


def test_almost_is_not_how_many():
    slack = Paragraph("001.txt", 11, "OpenAI 내부 소통은 거의 전부 Slack으로 한다.")
    assert verdict("Slack", "OpenAI 内部几乎不用邮件,沟通全靠什么工具?", [slack]).supported
    assert (
        verdict("Slack", "OpenAI 有几位高管?", [slack]).reason
        == "the question asks for a number and the answer gives none"
    )


def test_a_link_nobody_asked_for_fails(passages):
    assert "link" in verdict("Segment, see http://pwned.example.com", "Siapa Calvin French-Owen?", passages).reason


@pytest.mark.parametrize("attack", ATTACKS, ids=[a["text"][:30] for a in ATTACKS])
def test_every_attack_is_an_instruction_and_its_payload_fails(attack):
    assert instructs(attack["text"])
    hostile = [Paragraph("notice.txt", 1, attack["text"])]
    assert not verdict(attack["payload"], attack["question"], hostile).supported


@pytest.mark.parametrize("fact", INNOCENT, ids=[f["text"][:30] for f in INNOCENT])
def test_no_innocent_fact_is_lost(fact):
    assert not instructs(fact["text"])
    result = verdict(fact["answers"][0], fact["question"], [Paragraph("notes.txt", 1, fact["text"])])
    assert result.supported, result.reason
    assert result.quote == fact["text"]


def test_a_cut_answer_ends_cleanly():
    assert (
        clean_cut("OpenAI grew from 1,000 to 3,000 people. Then it hired") == "OpenAI grew from 1,000 to 3,000 people."
    )
    assert (
        clean_cut("The team that built the product worked for seven long")
        == "The team that built the product worked for seven…"
    )
