"""Citation markers, the support check and resolution to exact paragraphs, on real seed text."""

import pytest

from rag.citations import check, markers, resolve, restates, split_sentences, strip_markers
from rag.passages import Passage

from .conftest import SEEDS

INDONESIAN = "000_25ef5ea761165839.txt"


@pytest.fixture(scope="module")
def similarity(assistant):
    embedder = assistant.embedder

    def cosine(claim, texts):
        return (embedder.encode_passages(texts) @ embedder.encode_queries([claim])[0]).tolist()

    return cosine


@pytest.fixture(scope="module")
def passages(assistant):
    def passage(file, number):
        text = assistant.index.paragraph(file, number).text
        return Passage(file, number, text, split_sentences(text)[0], 0.0, 0.0)

    return [passage(INDONESIAN, 5), passage(INDONESIAN, 6), passage("003_15cb4250a3f963ee.txt", 3)]


def test_markers_in_order_of_appearance():
    assert markers("A [2]. B [1, 3] and [2][4]") == [2, 1, 3, 4]
    assert strip_markers("Seven weeks [1] .") == "Seven weeks ."
    assert split_sentences("첫 문장입니다. Second one! 第三句。Fourth") == ["첫 문장입니다.", "Second one!", "第三句。", "Fourth"]


def test_a_supported_citation_is_kept(passages, similarity):
    checked = check("Codex dibangun dalam 7 minggu [1]", "Berapa minggu Codex dibangun?", passages, similarity)
    assert checked.text == "Codex dibangun dalam 7 minggu [1]"
    assert checked.unsupported == []


def test_a_wrong_citation_is_replaced_by_the_supporting_passage(passages, similarity):
    checked = check("Codex는 7주 만에 만들어졌습니다 [2]", "Codex는 몇 주 만에 만들어졌나요?", passages, similarity)
    assert checked.text.endswith("[1]")


def test_an_invented_number_is_unsupported(passages, similarity):
    checked = check("Codex menghasilkan 999.999 pull request [2]", "Berapa pull request?", passages, similarity)
    assert checked.unsupported == ["Codex menghasilkan 999.999 pull request"]
    assert markers(checked.text) == []


def test_echoing_the_question_is_unsupported(passages, similarity):
    question = "OpenAI는 메타의 새 '초지능' 팀에 최소 몇 명의 연구원을 빼앗겼나요?"
    assert restates("메타의 새 '초지능' 팀에 [3]", question)
    assert check("메타의 새 '초지능' 팀에 [3]", question, passages, similarity).unsupported


def test_resolve_names_the_exact_paragraph(passages):
    text = (SEEDS / INDONESIAN).read_text(encoding="utf-8")
    citations = resolve("7 minggu [1]. 830.000 [2]. [9]", passages, lambda f, n: passages[0].text if n == 5 else passages[1].text)
    assert [(c.n, c.file, c.paragraph) for c in citations] == [(1, INDONESIAN, 5), (2, INDONESIAN, 6)]
    assert all(c.text in text for c in citations)
