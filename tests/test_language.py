"""rag/language.py: the language a question is written in, and the one it names as its source."""

import pytest

from rag.language import detect_language, language_name, named_language, question_language


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
        # Short questions with names, which counting common words took for English.
        ("Siapakah Gubernur Sumatera Barat", "id"),
        ("Dimanakah Balawan lahir", "id"),
        ("Dimanakah Olimpiade 2004 diselenggarakan?", "id"),
        ("Who is Mark Chen?", "en"),
        ("What is the genus of the SARS coronavirus?", "en"),
        ("Biaya GPU Mengerdilkan Semua Pengeluaran Lain", "id"),  # a heading
        ("The company was founded in Bandung in 2031 by Dewi Kartika.", "en"),  # names are in no language
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


@pytest.mark.parametrize(
    "question, language",
    [
        ("According to the article 'OpenAI, 메타의 공격적인 재능 공격', how many?", "en"),
        ("Menurut artikel «创始团队出走殆尽、Altman孤家寡人», kapan OpenAI didirikan?", "id"),
        ("根据《Why I Joined OpenAI》，他为什么加入？", "zh"),
        ("“全部”", "zh"),  # nothing but a quote: the quote is the question
        ("What did OpenAI's staff say?", "en"),  # an apostrophe is no quote
        ("Svealand (斯韦阿兰) terletak di negara mana?", "id"),  # a name glossed in brackets
        ("Ortalis vetula(小灰头稚冠雉)는 어느 과에 속하는 새인가요?", "ko"),
        ("(香港杜鹃)", "zh"),  # nothing but the brackets: they are the question
    ],
)
def test_a_question_is_in_the_language_of_its_own_words_not_of_what_it_quotes(question, language):
    assert question_language(question) == language
