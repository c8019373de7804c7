"""Cross-lingual retrieval on the real seeds: a question finds its paragraph in another language."""

import pytest

from rag.keywords import tokenize
from rag.language import detect_language, named_language


@pytest.mark.parametrize("question, file, evidence", [
    # English question, Korean paragraph
    ("Which outlet were Mark Chen's internal Slack messages leaked to?", "003_15cb4250a3f963ee.txt",
     "Wired에 유출된 내부 Slack 메시지"),
    # Korean question, Indonesian paragraph
    ("Codex 제품은 몇 주 만에 만들어져 출시되었나요?", "000_25ef5ea761165839.txt",
     "Produk lengkap dibangun dan diluncurkan dalam 7 minggu"),
    # Chinese question, English paragraph
    ("OpenAI 首席技术官 Mira Murati 是哪天晚上宣布辞职的?", "002_ac4bfb2122ab1026.txt",
     "On Wednesday night, September 25th"),
    # Indonesian question naming its source, Chinese paragraph
    ("Menurut ringkasan berbahasa Mandarin, dengan berapa perusahaan AI Gregg melakukan wawancara?",
     "004_0d217c6e9b2bf852.txt", "在与26家人工智能公司面试后"),
])
def test_question_finds_its_paragraph_in_another_language(assistant, question, file, evidence):
    hits = assistant.retrieve(question, k=5)
    ranks = [rank for rank, hit in enumerate(hits, 1) if hit.chunk.file == file and evidence in hit.chunk.text]
    assert ranks, [(h.chunk.file, h.chunk.first) for h in hits]
    assert detect_language(question) != assistant.index.files[file]["language"] or file.startswith("002")


def test_modes_rank_differently_and_report_their_scores(assistant):
    question = "OpenAI의 최고 연구 책임자 Mark Chen은 무엇을 표현했나요?"
    dense = assistant.retrieve(question, k=5, mode="dense")
    keyword = assistant.retrieve(question, k=5, mode="keyword")
    hybrid = assistant.retrieve(question, k=5, mode="hybrid")
    assert all(h.dense is not None for h in dense) and all(h.keyword for h in keyword)
    assert all(h.dense is None for h in keyword)
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert keyword[0].chunk.file == "003_15cb4250a3f963ee.txt"


def test_keyword_tokens_work_without_spaces_and_with_particles():
    assert {"团队", "altman"} <= set(tokenize("创始团队出走殆尽、Altman孤家寡人"))
    assert "만에" in tokenize("7주 만에 MVP") and "830000" in tokenize("830.000 pull request")
    assert tokenize("🙂🙂") == []


def test_a_named_source_language_is_recognised():
    assert named_language("According to the Korean summary, when did he leave?") == "ko"
    assert named_language("인도네시아어 기사에 따르면 몇 명인가요?") == "id"
    assert named_language("韩文报道称,员工每周工作多少小时?") == "ko"
    assert named_language("Menurut tulisan asli berbahasa Inggris, berapa?") == "en"
    assert named_language("Who is Mark Chen?") is None
