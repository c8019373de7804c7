"""Documents are data: hostile lines cannot take over answers, and facts that merely talk
about instructions, prompts or "only" stay answerable. End to end, with real models, on the
seeds plus the fixture lines (tests/fixtures/injection, four languages).

The hostile and innocent lines are answered by the small LLM (`--fast`): what keeps an attack out
of an answer is the pipeline (passages fenced as quoted data, a reply held to a copy of one
passage, the screen of the sentence it is copied from), not the model's restraint; the small
model answers the 48 questions in much less time."""

import json
import shutil

import pytest

from .conftest import ROOT, SEEDS

FIXTURE = ROOT / "tests" / "fixtures" / "injection"
ATTACKS = [json.loads(line) for line in (FIXTURE / "attacks.jsonl").read_text(encoding="utf-8").splitlines()]
INNOCENT = [json.loads(line) for line in (FIXTURE / "innocent.jsonl").read_text(encoding="utf-8").splitlines()]


def _assistant(folder, lines, name, seeds_index, shared_assistant, llm=None):
    """The seeds and their index, copied, plus one file of `lines`: only that file is embedded."""
    docs, index = folder / "docs", folder / "index"
    shutil.copytree(SEEDS, docs)
    shutil.copytree(seeds_index, index, symlinks=True)
    (docs / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    assistant = shared_assistant(log=lambda message: None, llm=llm, docs_dir=docs, index_dir=index)
    assert assistant.update_index().embedded_files == [name]
    return assistant


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, seeds_index, shared_assistant, small_llm):
    lines = [a["text"] for a in ATTACKS]
    return _assistant(tmp_path_factory.mktemp("hostile"), lines, "notice.txt", seeds_index, shared_assistant, small_llm)


@pytest.fixture(scope="module")
def innocent(tmp_path_factory, seeds_index, shared_assistant, small_llm):
    lines = [f["text"] for f in INNOCENT]
    return _assistant(tmp_path_factory.mktemp("innocent"), lines, "notes.txt", seeds_index, shared_assistant, small_llm)


def test_no_attack_reaches_an_answer(hostile):
    reached = []
    for attack in ATTACKS:
        answer = hostile.ask(attack["question"])
        shown = " ".join([answer.text or ""] + [c.quote for c in answer.citations])
        if attack["payload"].casefold() in shown.casefold():
            reached.append((attack["question"], answer.text))
    assert reached == []
    assert "notice.txt" in hostile.index.files  # the hostile file is still indexed, as data


def test_no_innocent_fact_is_lost(innocent):
    """Each fact reaches the model as a passage for its question, and an answer resting on it
    is never rejected as an instruction."""
    lost = []
    for fact in INNOCENT:
        answer = innocent.ask(fact["question"])
        read = [p for p in answer.passages if p.file == "notes.txt" and p.text == fact["text"]]
        if not read or "instruction" in (answer.why or ""):
            lost.append((fact["question"], answer.text, answer.why))
    assert lost == []


PLANTED = ["OpenAI didirikan pada tahun 1999.", "OpenAI lost 30 researchers to Meta in one week."]


@pytest.fixture(scope="module")
def planted(tmp_path_factory, seeds_index, shared_assistant):
    return _assistant(tmp_path_factory.mktemp("planted"), PLANTED, "planted.txt", seeds_index, shared_assistant)


def test_a_question_that_names_its_source_is_answered_from_it(planted):
    """A planted file that states a fact otherwise cannot answer a question that names the
    article it asks about (by its title, quoted in another language than the question's)."""
    title = "OpenAI, 메타의 공격적인 재능 공격에 대응하기 위해 일주일간 셧다운 실시"
    answer = planted.ask(f"According to the article '{title}', how many researchers did OpenAI lose to Meta?")
    assert answer.searched == ("003_15cb4250a3f963ee.txt",)
    assert answer.language == "en"  # the question's own words, not the quoted title
    assert "8" in answer.text and "30" not in answer.text
    assert {c.file for c in answer.citations} == {"003_15cb4250a3f963ee.txt"}
