"""Cross-lingual retrieval on the real seeds: a question finds its paragraph in another language."""

import pytest

from rag.language import detect_language


@pytest.mark.parametrize(
    "question, file, evidence",
    [
        # English question, Korean paragraph
        (
            "Which outlet were Mark Chen's internal Slack messages leaked to?",
            "003_15cb4250a3f963ee.txt",
            "Wired에 유출된 내부 Slack 메시지",
        ),
        # Korean question, Indonesian paragraph
        (
            "Codex 제품은 몇 주 만에 만들어져 출시되었나요?",
            "000_25ef5ea761165839.txt",
            "Produk lengkap dibangun dan diluncurkan dalam 7 minggu",
        ),
        # Chinese question, English paragraph
        (
            "OpenAI 首席技术官 Mira Murati 是哪天晚上宣布辞职的?",
            "002_ac4bfb2122ab1026.txt",
            "On Wednesday night, September 25th",
        ),
        # Indonesian question naming its source, Chinese paragraph
        (
            "Menurut ringkasan berbahasa Mandarin, dengan berapa perusahaan AI Gregg melakukan wawancara?",
            "004_0d217c6e9b2bf852.txt",
            "在与26家人工智能公司面试后",
        ),
    ],
)
def test_question_finds_its_paragraph_in_another_language(assistant, question, file, evidence):
    hits = assistant.retrieve(question, k=5)
    found = [hit.chunk for hit in hits if hit.chunk.file == file and evidence in hit.chunk.text]
    assert found, [(h.chunk.file, h.chunk.first) for h in hits]
    # Across languages: the chunk holding the evidence (not its file, which may open with a
    # title in another language) is in another language than the question.
    assert detect_language(question) not in {chunk.language for chunk in found}


def test_modes_rank_differently_and_report_their_scores(assistant):
    question = "OpenAI의 최고 연구 책임자 Mark Chen은 무엇을 표현했나요?"
    dense = assistant.retrieve(question, k=5, mode="dense")
    keyword = assistant.retrieve(question, k=5, mode="keyword")
    hybrid = assistant.retrieve(question, k=5, mode="hybrid")
    assert all(h.dense is not None for h in dense) and all(h.keyword for h in keyword)
    assert all(h.dense is None for h in keyword)
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert keyword[0].chunk.file == "003_15cb4250a3f963ee.txt"
