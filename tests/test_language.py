"""rag/language.py: the language a question is written in, and the one it names as its source."""

import pytest

from rag.language import detect_language, language_name, named_language


@pytest.mark.parametrize(
    "text, language",
    [
        ("Which company did Calvin French-Owen co-found before joining OpenAI?", "en"),
        ("Calvin French-Owen ikut mendirikan perusahaan apa?", "id"),
        ("OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?", "ko"),
        ("Brendan Gregg 为什么加入 OpenAI?", "zh"),
        ("OpenAIはいつ設立されましたか?", "ja"),
        ("Mark Chen은 누구인가요?", "ko"),  # a Latin name in a Korean sentence
        ("🤖🚀 2024", "en"),  # nothing to tell by: the fallback
    ],
)
def test_detect_language(text, language):
    assert detect_language(text) == language


def test_a_named_source_language_is_recognised():
    assert named_language("According to the Korean summary, when did he leave?") == "ko"
    assert named_language("인도네시아어 기사에 따르면 몇 명인가요?") == "id"
    assert named_language("韩文报道称,员工每周工作多少小时?") == "ko"
    assert named_language("Menurut tulisan asli berbahasa Inggris, berapa?") == "en"
    assert named_language("Who is Mark Chen?") is None
    assert named_language("Compare the Korean and the Chinese articles.") is None  # two: none


def test_language_names_are_for_the_prompt():
    assert language_name("id") == "Indonesian" and language_name("xx") == "xx"
