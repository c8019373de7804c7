"""The `ask` and `rag` commands as a user runs them: real models, real files, one-line errors."""

import json
import subprocess
import sys

import pytest

from rag.settings import DEFAULT_LLM_FILE

from .conftest import ROOT, SEEDS

pytestmark = pytest.mark.full  # every test runs the commands in a child process


def run(program, *args, stdin=None, timeout=600):
    """A command in a child process, as from a shell; returns (exit status, stdout, stderr)."""
    code = f"import sys; from rag.cli import {program}_main; sys.exit({program}_main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    return result.returncode, result.stdout, result.stderr


def assert_one_line_error(status, stderr, fragment):
    """Exit status 1 and exactly one error line (progress messages may come before it)."""
    assert status == 1
    errors = [line for line in stderr.strip().splitlines() if "error:" in line]
    assert len(errors) == 1 and stderr.strip().endswith(errors[0]), stderr
    assert "Traceback" not in stderr
    assert fragment in errors[0]


@pytest.mark.parametrize("question", ["", "   ", "\t\n"])
def test_empty_question_is_a_one_line_error(question):
    status, stdout, stderr = run("ask", question)
    assert_one_line_error(status, stderr, "the question is empty")
    assert stdout == ""


def test_missing_documents_folder_is_a_one_line_error(tmp_path):
    status, _, stderr = run("ask", "--docs", str(tmp_path / "nowhere"), "--index", str(tmp_path / "index"), "What?")
    assert_one_line_error(status, stderr, "documents folder not found")


def test_missing_llm_is_a_one_line_error(tmp_path, seeds_index):
    status, _, stderr = run("ask", "--index", str(seeds_index), "--llm", str(tmp_path / "missing.gguf"), "What?")
    assert_one_line_error(status, stderr, "LLM file not found")


def test_a_file_that_is_not_a_gguf_is_a_one_line_error(tmp_path, seeds_index):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model at all")
    status, _, stderr = run("ask", "--index", str(seeds_index), "--llm", str(fake), "What?")
    assert_one_line_error(status, stderr, "not a GGUF model file")


def test_truncated_gguf_is_a_one_line_error(tmp_path, seeds_index):
    from rag.settings import load_settings

    settings = load_settings(environ={})
    truncated = tmp_path / "truncated.gguf"
    with settings.llm_path.open("rb") as source:
        truncated.write_bytes(source.read(settings.llm_model.pin.size // 50))
    status, _, stderr = run("ask", "--index", str(seeds_index), "--llm", str(truncated), "What?")
    assert_one_line_error(status, stderr, "cannot load LLM")


def test_missing_embedder_folder_is_a_one_line_error(tmp_path, seeds_index):
    status, _, stderr = run("ask", "--index", str(seeds_index), "--embedder", str(tmp_path / "no-model"), "What?")
    assert_one_line_error(status, stderr, "embedder folder not found")


def test_retrieve_only_json_has_the_documented_shape(seeds_index):
    status, stdout, stderr = run(
        "ask", "--index", str(seeds_index), "--json", "--retrieve-only", "--k", "3", "Berapa minggu Codex dibangun?"
    )
    assert status == 0, stderr
    answer = json.loads(stdout)
    assert answer["answer"] is None and answer["citations"] == []
    assert len(answer["retrieved"]) == 3
    assert set(answer["retrieved"][0]) == {"file", "paragraph_start", "paragraph_end", "text", "score"}
    assert set(answer["timings_ms"]) >= {"retrieve", "total"}
    assert answer["retrieved"][0]["file"] == "000_25ef5ea761165839.txt"


def test_batch_reads_one_question_per_line_and_reports_bad_lines(seeds_index):
    questions = "Who is Mark Chen?\n\n" + "x" * 5000 + "\n메타가 빼앗아 간 연구원은 최소 몇 명인가요?\n"
    status, stdout, stderr = run("ask", "--index", str(seeds_index), "--json", "--retrieve-only", "-", stdin=questions)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [line.get("question", "")[:10] for line in lines] == ["Who is Mar", "x" * 10, "메타가 빼앗아 간 "]
    assert "too long" in lines[1]["error"]
    assert status == 1  # one line failed


def paragraph_texts():
    from rag.documents import read_documents

    return {(p.file, p.number): p.text for d in read_documents(SEEDS)[0] for p in d.paragraphs}


@pytest.mark.slow
def test_ask_json_answers_with_citations_of_real_paragraphs(seeds_index):
    questions = [
        "How many minutes does the GPU test suite take according to the Indonesian article?",
        "Codex 출시를 이끈 핵심 인력 중 엔지니어는 몇 명이었나요?",
        "Brendan Gregg 为什么加入 OpenAI?",
        "Calvin French-Owen ikut mendirikan perusahaan apa?",
    ]
    # One process, one question per line on stdin, one JSON object per line out.
    status, stdout, stderr = run("ask", "--index", str(seeds_index), "--json", "-", stdin="\n".join(questions))
    assert status == 0, stderr
    answers = [json.loads(line) for line in stdout.splitlines()]
    assert [a["question"] for a in answers] == questions
    texts = paragraph_texts()
    for answer in answers:
        assert set(answer) >= {"question", "answer", "abstained", "citations", "unsupported", "retrieved", "timings_ms"}
        assert set(answer["timings_ms"]) >= {"retrieve", "first_token", "total"}
        assert answer["abstained"] is False, answer
        assert answer["citations"], answer
        for citation in answer["citations"]:
            assert texts[(citation["file"], citation["paragraph"])] == citation["text"]
            assert citation["quote"] in citation["text"]
            assert f"[{citation['n']}]" in answer["answer"]
        retrieved_files = {r["file"] for r in answer["retrieved"]}
        assert {c["file"] for c in answer["citations"]} <= retrieved_files


@pytest.mark.slow
def test_ask_prints_the_answer_then_the_sentence_it_rests_on(seeds_index):
    status, stdout, stderr = run(
        "ask", "--index", str(seeds_index), "Which company did Calvin French-Owen co-found before joining OpenAI?"
    )
    assert status == 0, stderr
    answer, evidence = stdout.splitlines()[:2]
    assert "Segment" in answer and answer.endswith("]")
    marker = answer[answer.rindex("[") :]
    from rag.index import load_index

    # Under the document's title, then where in which file: the title a reader knows it by.
    title = load_index(seeds_index).files["000_25ef5ea761165839.txt"]["title"]
    assert evidence.startswith(f"  {marker} {title} (000_25ef5ea761165839.txt ¶1): “"), evidence
    quote = evidence.split("): “", 1)[1].rstrip("”")
    assert quote in (SEEDS / "000_25ef5ea761165839.txt").read_text(encoding="utf-8").split("\n")[0]


def test_rag_models_reports_both_models():
    status, stdout, stderr = run("rag", "models")
    assert status == 0, stderr
    in_use = [line for line in stdout.splitlines() if line.endswith("<- in use")]
    assert len(in_use) == 2, stdout
    assert DEFAULT_LLM_FILE in in_use[0] and "sha256 verified" in in_use[0]
    assert "multilingual-e5-small" in in_use[1]
    assert "qwen-1.5b" in stdout and "gemma-300m" in stdout  # the catalogue is listed


@pytest.mark.slow
def test_ask_chat_appends_to_a_conversation_and_a_follow_up_leans_on_its_first_turn(seeds_index, tmp_path):
    from rag.history import ANSWERED, History

    where = ["--index", str(seeds_index), "--chats", str(tmp_path / "chats.sqlite3")]
    first = "Sebelum bekerja di OpenAI, perusahaan apa yang pernah ikut didirikan Calvin French-Owen?"
    follow_up = "Berapa bulan dia bekerja di OpenAI?"
    # One process for both (each run loads the models): each line is the conversation's next
    # turn, its earlier turns read back from the file, as a later shell session would.
    status, stdout, stderr = run("ask", *where, "--chat", "calvin", "-", stdin=f"{first}\n{follow_up}\n")
    assert status == 0 and "Segment" in stdout, stderr
    understood = next(line for line in stdout.splitlines() if line.startswith("↳ understood as"))
    assert understood.startswith("↳ understood as “Berapa bulan ") and " dia " not in understood, stdout

    (conversation,) = History(tmp_path / "chats.sqlite3").conversations()
    turns = History(tmp_path / "chats.sqlite3").turns(conversation.id)
    assert conversation.title == "calvin" and [t.question for t in turns] == [first, follow_up]
    assert all(t.status == ANSWERED for t in turns) and turns[0].citations
    assert turns[1].standalone != follow_up and turns[1].standalone in understood

    status, stdout, stderr = run("ask", *where, "--chat", "#99", follow_up)
    assert_one_line_error(status, stderr, "there is no conversation named '#99'")
