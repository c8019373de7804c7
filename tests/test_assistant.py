"""The Assistant's own logic with the fakes: models passed in, events in order, follow-ups.

Answers from the real models are tested in the full layer (tests/test_evaluation.py,
tests/test_ui_api.py, tests/test_injection.py)."""

import math

import pytest

from rag.assistant import Done, Retrieved

from .fakes import FakeEmbedder, FakeLLM, StandInLLM, fake_assistant


def test_models_passed_in_are_used_and_none_is_loaded(tmp_path):
    embedder = FakeEmbedder()
    assistant = fake_assistant(tmp_path, embedder=embedder)
    # Loading a real model here would fail the test (tests/conftest.py).
    assert assistant.embedder is embedder and isinstance(assistant.llm, FakeLLM)
    assert assistant.index.files.keys() == {"tea.txt", "rice.md", "ships.txt"}


def test_retrieve_only_streams_the_hits_then_the_answer_and_asks_no_llm(tmp_path):
    assistant = fake_assistant(tmp_path)
    events = list(assistant.stream("Who founded Zorblax Analytics?", retrieve_only=True))
    assert [type(e) for e in events] == [Retrieved, Done]
    assert events[0].hits[0].chunk.file == "tea.txt"
    answer = events[-1].answer
    assert answer.text is None and answer.hits == events[0].hits and "retrieve" in answer.timings_ms
    assert assistant.llm.calls == []


def test_a_follow_up_is_made_standalone_through_the_assistants_llm(tmp_path):
    assistant = fake_assistant(tmp_path, reply="Dewi Kartika")
    history = [("Who founded Zorblax Analytics?", "Dewi Kartika [1].")]
    rewrite = assistant.standalone_question(history, "Where did she study?")
    assert rewrite.rewritten and "Dewi Kartika" in rewrite.standalone
    assert len(assistant.llm.calls) == 1
    for turns, question in (([], "Where did she study?"), (history, "Who founded Zorblax Analytics?")):
        assert assistant.standalone_question(turns, question).standalone == question
    assert len(assistant.llm.calls) == 1  # no history, or not a follow-up: the LLM is not asked


def test_terminal_escape_sequences_leave_a_question_whole():
    from rag.assistant import clean_question

    pasted = (
        "Which\x07 company did\x1b[31m Calvin\u200b French-Owen\u202e co-found\x7f before\x1b]0;t\x07 joining OpenAI?"
    )
    assert clean_question(pasted) == "Which company did Calvin French-Owen co-found before joining OpenAI?"


def test_an_answer_copied_from_its_passage_is_shown_with_the_sentence_it_stands_in(tmp_path):
    assistant = fake_assistant(tmp_path, reply="[2] Dewi Kartika", min_similarity=-1.0)
    answer = assistant.ask("Who founded Zorblax Analytics?")
    assert not answer.abstained and answer.text == "Dewi Kartika [1]" and answer.copied == "Dewi Kartika"
    assert answer.citations[0].quote == "The company was founded in Bandung in 2031 by Dewi Kartika."
    assert "p1" in assistant.llm.calls[0]["grammar"]  # the reply was held to the passages' text


def test_a_reply_not_copied_from_the_passage_is_never_shown(tmp_path):
    """A backend that ignores the grammar may write anything, the system prompt included."""
    from rag import prompts

    for reply in (f"[2] {prompts.SYSTEM}", "[2] Bandung in 2032", "[2] Zorblax Analytics"):
        answer = fake_assistant(tmp_path, reply=reply, min_similarity=-1.0).ask("Who founded Zorblax Analytics?")
        assert answer.abstained and answer.citations == [] and prompts.SYSTEM not in answer.text, reply


def test_an_index_built_with_another_embedder_is_refused_then_rebuilt(tmp_path):
    import pytest

    from rag.errors import RagError

    fake_assistant(tmp_path).index  # noqa: B018 -- built with the 64-dimension stand-in
    other = fake_assistant(tmp_path, embedder=FakeEmbedder(dim=32))
    with pytest.raises(RagError, match=r"built with embedder fake-embedder-64, not fake-embedder-32; run `rag index`"):
        other.retrieve("Who founded Zorblax Analytics?")
    report = other.update_index()
    assert report.rebuilt_reason == "embedder changed from fake-embedder-64 to fake-embedder-32"
    assert other.retrieve("Who founded Zorblax Analytics?")[0].chunk.file == "tea.txt"


class SecondPassageLLM(StandInLLM):
    """Chooses the last passage it is offered, then copies the name both documents state."""

    def choose(self, messages, prefix, options):
        return {option: (0.9 if option == options[-1] else 0.1 / (len(options) - 1)) for option in options}

    def stream(self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None):
        yield " Dewi Kartika"  # as copied from either passage


def test_a_single_citation_is_numbered_one_in_text_and_citations(tmp_path):
    from rag.assistant import Assistant
    from rag.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Dewi Kartika founded Zorblax Analytics in Bandung.\n", encoding="utf-8")
    (docs / "b.txt").write_text("Zorblax Analytics was founded by Dewi Kartika in 2031.\n", encoding="utf-8")
    settings = load_settings(environ={}, docs_dir=docs, index_dir=tmp_path / "index", min_similarity=-1.0)
    assistant = Assistant(settings, log=lambda m: None, embedder=FakeEmbedder(), llm=SecondPassageLLM())
    answer = assistant.ask("Who founded Zorblax Analytics?")
    assert len(answer.passages) >= 2 and not answer.abstained, (answer.why, answer.unsupported)
    assert answer.text.endswith("[1]") and [c.n for c in answer.citations] == [1], answer.text


class YearLLM(StandInLLM):
    """Splits its choice between the two passages (`shares`) and copies the year of the passage
    it is given."""

    def __init__(self, shares=(0.6, 0.4)):
        self.shares, self.copied_from = shares, []

    def choose(self, messages, prefix, options):
        return {option: ([0.0, *self.shares, 0.0, 0.0][int(option)]) for option in options}

    def stream(self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None):
        import re

        self.copied_from.append(prefix)
        yield " " + re.search(r"\d{4}", copy_from.text).group()


def _bakery(tmp_path, second_year: str, llm=None, **settings):
    from rag.assistant import Assistant
    from rag.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    (docs / "a.txt").write_text("The Orion bakery opened in Leeds in 1998.\n", encoding="utf-8")
    (docs / "b.txt").write_text(f"The Orion bakery first opened its doors in {second_year}.\n", encoding="utf-8")
    llm = llm or YearLLM()
    settings = load_settings(environ={}, docs_dir=docs, index_dir=tmp_path / "index", min_similarity=-1.0, **settings)
    return Assistant(settings, log=lambda m: None, embedder=FakeEmbedder(), llm=llm)


def test_another_source_that_says_otherwise_is_shown_beside_the_answer_with_its_own_citation(tmp_path):
    answer = _bakery(tmp_path, "2001").ask("When did the Orion bakery open?")
    first, other = answer.citations
    years = {c.file: "1998" if c.file == "a.txt" else "2001" for c in answer.citations}
    assert answer.text == f"{years[first.file]} [1]" and first.file != other.file and other.n == 2
    assert answer.disagreements == [(years[other.file], 2)]
    assert answer.shown == f"{years[first.file]} [1] Another source says otherwise: «{years[other.file]}» [2]"
    assert years[other.file] in other.quote and answer.to_json()["disagreements"][0]["citation"] == 2


def test_sources_that_agree_or_that_the_model_did_not_choose_add_nothing(tmp_path):
    agreeing = _bakery(tmp_path / "agree", "1998").ask("When did the Orion bakery open?")
    assert agreeing.disagreements == [] and len(agreeing.citations) == 1 and agreeing.shown == agreeing.text
    assistant = _bakery(tmp_path / "sure", "2001", llm=YearLLM((0.9, 0.1)))
    sure = assistant.ask("When did the Orion bakery open?")
    assert sure.disagreements == [] and assistant.llm.copied_from == ["[1]"]  # the other passage was not read


class UnsureLLM(YearLLM):
    """YearLLM whose copy from the first passage it is offered is unsure (`first` per token)."""

    def __init__(self, first: float, shares=(0.55, 0.45)):
        super().__init__(shares)
        self.first = first

    def stream(self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None):
        yield from super().stream(messages, max_tokens, temperature, grammar, prefix, copy_from)
        copy_from.logprobs.append(math.log(self.first if prefix == "[1]" else 0.9))


@pytest.mark.parametrize(
    "first, shares, copy_weight, copied_from, answered_from",
    [
        # 0.55 * 0.3² < 0.45 * 0.35 * 0.9²: the next passage's copy wins (and, disagreeing, the first is not copied again)
        (0.3, (0.55, 0.45), 2.0, ["[1]", "[2]"], 2),
        (0.3, (0.55, 0.45), 0.0, ["[1]", "[2]"], 1),  # no weight: the first copy stands ([2]: the disagreement's copy)
        (0.2, (0.8, 0.2), 2.0, ["[1]", "[2]"], 2),  # 0.8 * 0.2² < 0.2 * 0.35 * 0.9²
        (0.9, (0.8, 0.2), 2.0, ["[1]"], 1),  # sure enough that the next copy could not win: it is not made
    ],
)
def test_a_copy_the_model_is_unsure_of_gives_way_to_the_next_passages(
    tmp_path, first, shares, copy_weight, copied_from, answered_from
):
    assistant = _bakery(tmp_path, "2001", UnsureLLM(first, shares), copy_weight=copy_weight)
    answer = assistant.ask("When did the Orion bakery open?")
    year = "1998" if answer.passages[answered_from - 1].file == "a.txt" else "2001"
    assert answer.text == f"{year} [1]" and answer.copy_probability == pytest.approx(
        first if answered_from == 1 else 0.9
    )
    assert assistant.llm.copied_from == copied_from
    assert answer.to_json()["choice_probabilities"] == {
        "0": 0.0,
        "1": shares[0],
        "2": shares[1],
    }  # as the model gave them


def test_differ_compares_without_case_spacing_or_punctuation():
    from rag.assistant import differ

    assert not differ("7 weeks", "7 Weeks.") and not differ("Leeds", "in Leeds") and differ("50 days", "7 weeks")
    assert not differ("", "7 weeks")
    # The same number in other words, across languages; a different one still differs.
    assert not differ("120 million", "1.2亿") and not differ("1억 2천만", "120 juta") and differ("120 million", "120亿")


def test_mentions_leave_the_question_before_any_rewrite_and_join_the_settings_scope(tmp_path):
    from rag.scope import Scope

    assistant = fake_assistant(tmp_path)
    question, scope = assistant.without_mentions("@tea.txt who founded  it?")
    assert question == "who founded it?" and scope == Scope(("tea.txt",))
    assert assistant.without_mentions("who founded it?", Scope(("rice.md",))) == (
        "who founded it?",
        Scope(("rice.md",)),
    )


def test_the_passage_prior_weighs_the_retrievers_order_against_the_models_choice():
    from rag.assistant import ranked_choices

    probabilities = {"0": 0.1, "1": 0.3, "2": 0.4, "3": 0.2}
    assert ranked_choices(probabilities, 3, 1.0) == ["2", "1", "3"]  # the model's own order
    assert ranked_choices(probabilities, 3, 0.5) == ["1", "2", "3"]  # 0.3 > 0.4 * 0.5 > 0.2 * 0.25


def test_the_search_language_is_that_of_most_documents_searched_when_the_questions_is_few():
    from rag.assistant import search_language

    files = {
        "a.txt": {"language": "en", "chunks": 6},
        "b.txt": {"language": "id", "chunks": 3},
        "c.txt": {"language": "ko", "chunks": 2},
    }
    assert search_language("en", files) is None  # the documents' own language
    assert search_language("ko", files) == "en" and search_language("zh", files) == "en"
    assert search_language("ko", files, frozenset({"b.txt", "c.txt"})) == "id"  # of the documents searched
    assert search_language("id", files, frozenset({"b.txt", "c.txt"})) is None
    assert search_language("ko", {"a.txt": {"language": "en", "chunks": 0}}) is None  # nothing to search


def test_a_question_in_a_language_few_documents_are_in_is_also_searched_in_theirs(tmp_path):
    """The model's translation finds what the question's own words miss; the question is still
    answered as asked, from the union of both searches' hits."""

    def reply(messages):
        if messages[-1]["content"].startswith("Translate this question into English"):
            return "Who founded the company?"
        return "[1] Dewi Kartika"

    assistant = fake_assistant(tmp_path, reply=reply, min_similarity=-1.0, k=1)
    answer = assistant.ask("조르블락스 애널리틱스는 누가 세웠나요?")  # no word shared with any document
    assert answer.searched_as == "Who founded the company?"
    assert answer.language == "ko" and answer.question == "조르블락스 애널리틱스는 누가 세웠나요?"
    assert "founded" in answer.passages[0].text and answer.copied == "Dewi Kartika"
    assert "translate_question" in answer.timings_ms
    off = fake_assistant(tmp_path / "off", reply=reply, min_similarity=-1.0, k=1, search_translation="off")
    assert off.ask("조르블락스 애널리틱스는 누가 세웠나요?").searched_as is None  # the question alone, sooner
    calls = len(assistant.llm.calls)
    assert assistant.ask("Who founded Zorblax Analytics?").searched_as is None  # English: the documents' own
    assert not any("Translate this question" in c["messages"][-1]["content"] for c in assistant.llm.calls[calls:])


class TranslatingLLM(StandInLLM):
    """Copies "Maret 1998" from the passage and translates it as "March 1998" (or `translation`),
    giving its translation `probability` per token."""

    def __init__(self, probability: float, translation: tuple[str, ...] = ("March", " 1998")):
        self.probability = probability
        self.translation = translation

    def choose(self, messages, prefix, options):
        return {option: (0.9 if option == "1" else 0.1 / (len(options) - 1)) for option in options}

    def stream(self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None):
        if copy_from is not None:
            yield " Maret 1998"
            return
        for piece in self.translation:
            if logprobs is not None:
                logprobs.append(math.log(self.probability))
            yield piece


@pytest.mark.parametrize("probability, shown", [(0.4, "Maret 1998 [1]"), (0.6, "March 1998 («Maret 1998» [1])")])
def test_a_translation_the_model_is_unsure_of_leaves_the_copy_alone(tmp_path, probability, shown):
    from rag.assistant import Assistant
    from rag.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(
        "Toko roti Orion dibuka di kota Bandung pada bulan Maret 1998 oleh keluarga Santoso.\n", encoding="utf-8"
    )
    settings = load_settings(
        environ={}, docs_dir=docs, index_dir=tmp_path / "index", min_similarity=-1.0, min_translated=0.5
    )
    assistant = Assistant(settings, log=lambda m: None, embedder=FakeEmbedder(), llm=TranslatingLLM(probability))
    answer = assistant.ask("When did the Orion bakery open its doors to customers?")
    assert answer.text == shown, (answer.text, answer.why)
    assert answer.translation_probability == pytest.approx(probability)
    assert answer.to_json()["translation"] == (None if probability < 0.5 else "March 1998")


@pytest.mark.parametrize("translation, shown", [(("March", " 1988"), "Maret 1998 [1]"), (("1998年3月",), "1998年3月")])
def test_a_translation_that_changes_a_number_leaves_the_copy_alone(tmp_path, translation, shown):
    """A sure translation that states another number than the copy ("120亿" for "120 million")
    is not shown; one that writes the same numbers otherwise is."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(
        "Toko roti Orion dibuka di kota Bandung pada bulan Maret 1998 oleh keluarga Santoso.\n", encoding="utf-8"
    )
    settings = load_settings(environ={}, docs_dir=docs, index_dir=tmp_path / "index", min_similarity=-1.0)
    llm = TranslatingLLM(0.99, translation)
    assistant = Assistant(settings, log=lambda m: None, embedder=FakeEmbedder(), llm=llm)
    answer = assistant.ask("When did the Orion bakery open its doors to customers?")
    assert answer.text.startswith(shown), (answer.text, answer.why)


def test_the_recording_processor_reads_the_probability_of_each_token_taken():
    import numpy as np

    from rag.llm import _recording

    logprobs: list[float] = []
    process = _recording(logprobs, prompt_tokens=2)
    scores = np.log(np.array([0.5, 0.25, 0.25]))
    assert process([7, 8], scores) is scores  # the prompt's last step: the scores pass unchanged
    process([7, 8, 1], np.log(np.array([0.1, 0.1, 0.8])))  # token 1 was taken at 0.25
    process([7, 8, 1, 2], scores)  # token 2 at 0.8
    assert logprobs == pytest.approx([math.log(0.25), math.log(0.8)])


class GainLLM(YearLLM):
    """YearLLM sure of its first passage (P 0.9) that scores its copy `asked` nats per token
    after the real question and `free` after a question that asks nothing."""

    def __init__(self, asked: float, free: float):
        super().__init__((0.9, 0.1))
        self.asked, self.free, self.scored = asked, free, []

    def choose(self, messages, prefix, options):
        return {option: {"0": 0.1, "1": 0.8}.get(option, 0.1 / (len(options) - 2)) for option in options}

    def score(self, messages, prefix, text):
        question = messages[-1]["content"].rsplit("Question: ", 1)[1]
        self.scored.append((question, prefix, text))
        return [self.free if question in ("N/A", "") else self.asked] * 3


@pytest.mark.parametrize(
    "asked, free, gain_weight, shown",
    [
        (-0.1, -4.0, 0.15, True),  # the question makes the year 11.7 nats likelier: confidence 0.98
        (-1.0, -1.0, 0.15, False),  # as likely whatever was asked: 0.9 alone is under 0.909
        (-0.1, -4.0, 0.0, False),  # no weight: the model's 0.9 alone decides
    ],
)
def test_a_copy_the_question_does_not_make_likelier_is_refused(tmp_path, asked, free, gain_weight, shown):
    llm = GainLLM(asked, free)
    bakery = _bakery(tmp_path, "1998", llm, gain_weight=gain_weight, min_confidence=0.909)
    answer = bakery.ask("When did the Orion bakery open?")
    assert answer.question_gain == pytest.approx(3 * (asked - free))
    assert answer.confidence is not None and (answer.confidence >= 0.909) == shown
    assert answer.abstained != shown and (answer.text == "1998 [1]" if shown else answer.reason == "not_found")
    # Scored after the question to weigh it against another copy (the same "1998" here, so not
    # scored), then after each question that asks nothing and the question itself (its KV cache last).
    question = "When did the Orion bakery open?"
    assert [q for q, _, _ in llm.scored] == [question, "N/A", "", question]
    assert {(prefix, text) for _, prefix, text in llm.scored} == {("[1]", " 1998")}
    assert answer.to_json()["question_gain"] == pytest.approx(3 * (asked - free), abs=1e-3)


class StartsLLM(GainLLM):
    """GainLLM that copies the year greedily and, told to start at its second likeliest first
    word, the word before "in <year>"; after the question it scores that word `other` nats per
    token and the year -1."""

    def __init__(self, other: float):
        super().__init__(-1.0, -4.0)
        self.other = other

    def stream(self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None):
        import re

        self.copied_from.append((prefix, copy_from.start_rank))
        word, year = re.search(r"(\w+) in (\d{4})", copy_from.text).groups()
        yield " " + (word if copy_from.start_rank else year)

    def score(self, messages, prefix, text):
        scores = super().score(messages, prefix, text)
        asked = messages[-1]["content"].rsplit("Question: ", 1)[1]
        return [self.other] * 3 if text != " 1998" and asked not in ("N/A", "") else scores


@pytest.mark.parametrize("other, likelier", [(-0.5, True), (-2.0, False)])
def test_of_two_copies_from_the_passage_the_one_likelier_as_a_whole_is_shown(tmp_path, other, likelier):
    llm = StartsLLM(other)
    answer = _bakery(tmp_path, "1998", llm, min_confidence=0.0).ask("Where did the Orion bakery open?")
    assert (answer.copied != "1998") == likelier and answer.text == f"{answer.copied} [1]"
    assert answer.copied in answer.citations[0].quote
    assert llm.copied_from == [("[1]", 0), ("[1]", 1)]  # the greedy copy, then one from the next first word
    # The gate weighs the copy shown: its gain after the question against after "N/A" and "".
    assert answer.question_gain == pytest.approx(3 * ((other if likelier else -1.0) + 4.0))
