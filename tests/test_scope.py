"""Scoped questions (rag/scope.py) and the stale-index note: patterns, languages and `@file`
mentions, retrieval that filters before it ranks on FAISS and Milvus, and a documents
folder that changed since its index was built."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.retrieval import CANDIDATES, Retriever
from rag.scope import (
    Scope,
    folders_of,
    language_codes,
    match_pattern,
    mentions,
    named_files,
    scope_choices,
    scope_of_choices,
)
from rag.settings import add_scope_flags, load_settings, settings_from_args

from .fakes import FakeEmbedder, FakeLLM
from .test_ui_browser import browser, page  # noqa: F401 -- the browser fixtures

FILES = {
    "contract.pdf": {"language": "en"},
    "reports/2024/q1.md": {"language": "ko"},
    "reports/2024/q2.md": {"language": "ko"},
    "reports/summary.txt": {"language": "zh"},
    "notes/contract.pdf": {"language": "id"},
    "draft[1].txt": {"language": "en"},
}


# -- patterns, languages, mentions ---------------------------------------------------------
@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("q1.md", {"reports/2024/q1.md"}),  # a name: in any folder
        ("contract.pdf", {"contract.pdf"}),  # a path names its file alone
        ("notes/contract.pdf", {"notes/contract.pdf"}),
        ("./contract.pdf", {"contract.pdf"}),
        ("draft[1].txt", {"draft[1].txt"}),  # a file whose name looks like a glob
        ("reports", {"reports/2024/q1.md", "reports/2024/q2.md", "reports/summary.txt"}),  # a folder
        ("reports/2024/", {"reports/2024/q1.md", "reports/2024/q2.md"}),
        ("*.md", {"reports/2024/q1.md", "reports/2024/q2.md"}),  # a glob without / matches names
        ("reports/*.txt", {"reports/summary.txt"}),
        ("report", set()),  # no prefix matching: a folder is a whole path part
        ("Contract.pdf", set()),
    ],
)
def test_a_pattern_names_files_folders_or_globs(pattern, expected):
    assert match_pattern(pattern, FILES) == expected


def test_a_scope_joins_its_patterns_and_narrows_to_its_languages():
    assert Scope().resolve(FILES) is None
    assert Scope(("contract.pdf", "reports/summary.txt", "q*.md")).resolve(FILES) == {
        "contract.pdf",
        "reports/summary.txt",
        "reports/2024/q1.md",
        "reports/2024/q2.md",
    }
    assert Scope(languages=("ko", "zh")).resolve(FILES) == {
        "reports/2024/q1.md",
        "reports/2024/q2.md",
        "reports/summary.txt",
    }
    assert Scope(("reports",), ("zh",)).resolve(FILES) == {"reports/summary.txt"}
    assert Scope(("a",), ("ko",)) | Scope(("b", "a")) == Scope(("a", "b"), ("ko",))


@pytest.mark.parametrize(
    "scope, message",
    [
        (Scope(("contrat.pdf",)), "no indexed document matches 'contrat.pdf' (did you mean 'contract.pdf'?)"),
        (Scope(("*.docx",)), "no indexed document matches '*.docx'"),
        (Scope(("contract.pdf", "nowhere.txt")), "no indexed document matches 'nowhere.txt'"),
        (Scope(languages=("ja",)), "no indexed document is in Japanese"),
        (Scope(("reports",), ("en",)), "the scope matches nothing: no document 'reports' names is in English"),
    ],
)
def test_a_scope_that_matches_nothing_is_a_one_line_error(scope, message):
    with pytest.raises(RagError) as raised:
        scope.resolve(FILES)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_path_in_the_documents_folder_is_named_relative_to_it(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    (docs / "reports").mkdir(parents=True)
    (docs / "reports" / "summary.txt").write_text("x", encoding="utf-8")
    (docs / "new.txt").write_text("not indexed yet", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert Scope(("docs/reports/summary.txt",)).resolve(FILES, docs) == {"reports/summary.txt"}
    assert Scope((str(docs / "reports"),)).resolve(FILES, docs) == set(match_pattern("reports", FILES))
    with pytest.raises(RagError, match="'new.txt' is in the documents folder but not in the index; run `rag index`"):
        Scope(("new.txt",)).resolve(FILES, docs)


def test_languages_are_codes_or_names_and_an_unknown_one_is_a_one_line_error():
    assert language_codes("ko, Chinese,,ID") == ("ko", "zh", "id")
    with pytest.raises(RagError, match=r"unknown language 'kr'; use one of en \(English\), ko \(Korean\)"):
        load_settings(environ={}, languages=("ko", "kr"))


def test_ask_flags_repeat_and_take_comma_lists():
    import argparse

    parser = argparse.ArgumentParser()
    add_scope_flags(parser)
    args = parser.parse_args(["--only", "a,b.txt", "--only", "reports/", "--lang", "ko,zh", "--lang", "Indonesian"])
    settings = settings_from_args(args, environ={})
    assert settings.only == ("a,b.txt", "reports/") and settings.languages == ("ko", "zh", "id")
    assert settings_from_args(parser.parse_args([]), environ={}).only == ()


@pytest.mark.parametrize(
    "question, stripped, only",
    [
        ("What does @contract.pdf say about fees?", "What does say about fees?", ("contract.pdf",)),
        ("Fees in @notes/contract.pdf?", "Fees in ?", ("notes/contract.pdf",)),
        (
            'Totals in @"reports/2024" and @reports/summary.txt',
            "Totals in and",
            ("reports/2024", "reports/summary.txt"),
        ),
        ("@reports/ 요약은?", "요약은?", ("reports/",)),
        ("Mail ceo@contract.pdf or ask @openai", "Mail ceo@contract.pdf or ask @openai", ()),  # not mentions
    ],
)
def test_mentions_become_the_scope_and_leave_the_question(question, stripped, only):
    assert mentions(question, FILES) == (stripped, Scope(only))


def test_a_mention_of_an_unknown_document_is_a_one_line_error():
    with pytest.raises(
        RagError, match="no indexed document matches '@contrakt.pdf' \\(did you mean 'contract.pdf'\\?\\)"
    ):
        mentions("What does @contrakt.pdf say?", FILES)


def test_a_picker_offers_languages_folders_and_files_and_its_choices_are_a_scope():
    assert folders_of(FILES) == ["notes/", "reports/", "reports/2024/"]
    choices = scope_choices(FILES)
    assert choices[:2] == [("English documents (en)", "/language/en"), ("Indonesian documents (id)", "/language/id")]
    assert ("reports/2024/", "reports/2024/") in choices and ("draft[1].txt", "draft[1].txt") in choices
    scope = scope_of_choices(["/language/ko", "reports/2024/", "contract.pdf", "/language/ko"])
    assert scope == Scope(("reports/2024/", "contract.pdf"), ("ko",))
    assert scope.resolve(FILES) == {"reports/2024/q1.md", "reports/2024/q2.md"}
    assert not scope_of_choices(None) and not scope_of_choices([])


TITLED = {
    "a.txt": {"title": "Why I Joined OpenAI"},
    "b.txt": {"title": "OpenAI, 메타의 공격적인 재능 공격에 대응하기 위해 일주일간 셧다운 실시"},
    "c.txt": {"title": "我为什么加入 OpenAI"},
    "d.txt": {"title": "Seorang mantan insinyur OpenAI telah membagikan wawasan mendalam tentang operasi internal…"},
    "reports/contract.pdf": {"title": "Contract"},
}


@pytest.mark.parametrize(
    "question, named",
    [
        ("According to 'Why I Joined OpenAI', who is his manager?", {"a.txt"}),
        ("根据《我为什么加入OpenAI》，他为什么加入？", {"c.txt"}),  # Han characters are words; spaces do not matter
        ("메타의 공격적인 재능 공격에 대응하기 위해 OpenAI가 몇 주 쉬었나요?", {"b.txt"}),  # half the title, in one run
        ("What does contract.pdf say about payment?", {"reports/contract.pdf"}),  # a file name
        ("Why did he join OpenAI?", set()),  # words of a title, not a run of half of them
        ("Who joined OpenAI in 2024?", set()),
        ("What did the former OpenAI engineer share?", set()),  # another language's title is not named
        ("Is the contract.pdfx draft ready?", set()),  # a name only as a whole word
        ("Seorang mantan insinyur OpenAI bekerja berapa lama?", set()),  # a long title needs half its words
    ],
)
def test_a_question_names_a_document_by_its_file_name_or_by_half_its_title(question, named):
    assert named_files(question, TITLED) == named


def test_a_question_that_names_a_document_searches_it_alone(tmp_path):
    docs = corpus(tmp_path / "docs")
    (docs / "tea" / "t2.md").write_text("# Tea Farmers of West Java\n\n" + TEA.format(n=12) + "\n", encoding="utf-8")
    assistant = fake_assistant_on(docs, tmp_path / "index")
    assistant.update_index()
    answer = assistant.ask(QUESTION + " (as the Tea Farmers of West Java say)", retrieve_only=True)
    assert answer.searched == ("tea/t2.md",) and {h.chunk.file for h in answer.hits} == {"tea/t2.md"}
    asked, scope = assistant.without_mentions("What do the tea farmers of west java sell?")
    assert scope == Scope(("tea/t2.md",)) and asked.startswith("What do")
    with_scope = assistant.ask(QUESTION + " in tea farmers of west java", retrieve_only=True, scope=Scope(("harbour",)))
    assert with_scope.searched is not None and len(with_scope.searched) > 1  # named outside the scope: not narrowed
    assert assistant.ask(QUESTION, retrieve_only=True).searched is None


# -- retrieval filters before ranking (FAISS, fakes for the models) -----------------------
HARBOUR = "The harbour of Quillport handles {n} container ships a year, and its cranes lift containers to the pasar."
TEA = "Petani teh di Bandung menjual {n} karung daun teh setiap minggu kepada pembeli di pasar."


def corpus(folder: Path) -> Path:
    """Files on the harbour (English), more than retrieval's candidates, and six on tea
    (Indonesian), in two folders: the unscoped candidates hold no tea at all."""
    for n in range(CANDIDATES + 10):
        (folder / "harbour").mkdir(parents=True, exist_ok=True)
        (folder / "harbour" / f"h{n}.txt").write_text(HARBOUR.format(n=100 + n) + "\n", encoding="utf-8")
    for n in range(6):
        (folder / "tea").mkdir(parents=True, exist_ok=True)
        (folder / "tea" / f"t{n}.md").write_text(TEA.format(n=10 + n) + "\n", encoding="utf-8")
    return folder


def fake_assistant_on(docs: Path, index: Path, **settings):
    from rag.assistant import Assistant

    return Assistant(
        load_settings(environ={}, docs_dir=docs, index_dir=index, **settings),
        log=lambda message: None,
        embedder=FakeEmbedder(),
        llm=FakeLLM(""),
    )


QUESTION = "How many container ships does the harbour of Quillport handle?"


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_a_scope_gets_its_own_k_best_even_when_the_unscoped_best_hold_none_of_it(tmp_path, mode):
    assistant = fake_assistant_on(corpus(tmp_path / "docs"), tmp_path / "index")
    assistant.update_index()
    question = QUESTION + " pasar"  # the one word the tea files share with it; every harbour file has it too
    unscoped = assistant.retrieve(question, k=CANDIDATES, mode=mode)  # all the candidates either side ranks
    assert {h.chunk.file.split("/")[0] for h in unscoped} == {"harbour"}
    scoped = assistant.retrieve(question, k=3, mode=mode, scope=Scope(("tea",)))
    assert len(scoped) == 3 and {h.chunk.file.split("/")[0] for h in scoped} == {"tea"}
    by_language = assistant.retrieve(QUESTION + " teh", k=5, mode=mode, scope=Scope(languages=("id",)))
    assert len(by_language) == 5 and all(h.chunk.file.startswith("tea/") for h in by_language)


def test_the_answer_says_which_documents_a_scoped_question_searched(tmp_path):
    assistant = fake_assistant_on(corpus(tmp_path / "docs"), tmp_path / "index", only=("tea/t1.md",))
    answer = assistant.ask(QUESTION, retrieve_only=True)  # the settings' --only
    assert answer.searched == ("tea/t1.md",) and [h.chunk.file for h in answer.hits] == ["tea/t1.md"]
    answer = assistant.ask(f"{QUESTION} @h3.txt", retrieve_only=True, scope=Scope())  # an explicit scope replaces it
    assert answer.searched == ("harbour/h3.txt",) and answer.question == QUESTION
    assert answer.to_json()["searched"] == ["harbour/h3.txt"]
    assert assistant.ask(QUESTION, retrieve_only=True, scope=Scope()).to_json()["searched"] is None


# -- a documents folder that changed since its index was built -----------------------------
def test_folder_changes_tell_new_changed_and_removed_files(tmp_path):
    docs = corpus(tmp_path / "docs")
    (docs / "empty.txt").write_text("", encoding="utf-8")  # skipped when indexing: not "new" later
    assistant = fake_assistant_on(docs, tmp_path / "index")
    assistant.update_index()
    assert not assistant.folder_changes()

    touched = docs / "harbour" / "h0.txt"  # same bytes, new mtime: hashed, unchanged
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    same_size = docs / "harbour" / "h1.txt"  # other bytes, same size: only the hash tells
    same_size.write_text(same_size.read_text(encoding="utf-8").replace("101", "999"), encoding="utf-8")
    os.utime(same_size, ns=(same_size.stat().st_atime_ns, same_size.stat().st_mtime_ns + 10**9))
    (docs / "tea" / "t0.md").write_text(TEA.format(n=12345) + "\n", encoding="utf-8")
    (docs / "tea" / "t1.md").unlink()
    (docs / "harbour" / "new.txt").write_text("A new file about cranes.\n", encoding="utf-8")
    (docs / ".hidden.txt").write_text("never read", encoding="utf-8")
    changes = assistant.folder_changes()
    assert changes.new == ("harbour/new.txt",)
    assert changes.changed == ("harbour/h1.txt", "tea/t0.md")
    assert changes.removed == ("tea/t1.md",)
    assert changes.summary() == "1 new, 2 changed, 1 removed"

    assistant.update_index()
    assert not assistant.folder_changes()
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    (docs / "empty.txt").write_text(" \n", encoding="utf-8")  # still skipped, but edited
    assert assistant.folder_changes().changed == ("empty.txt",)
    report = assistant.update_index()  # nothing to embed, yet the new sizes and mtimes are kept
    assert not report.embedded_files and not assistant.folder_changes()
    manifest = json.loads((assistant.index.folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["skipped"]["empty.txt"][0] == 2 and manifest["files"]["harbour/h0.txt"]["size"] > 0


def test_an_index_without_sizes_and_mtimes_is_compared_by_hashes(tmp_path):
    from rag.store import folder_changes

    docs = corpus(tmp_path / "docs")
    assistant = fake_assistant_on(docs, tmp_path / "index")
    assistant.update_index()
    manifest = json.loads(json.dumps(assistant.index.manifest))
    for info in manifest["files"].values():
        del info["size"], info["mtime_ns"]
    del manifest["skipped"]
    assert not folder_changes(manifest, docs)
    (docs / "tea" / "t2.md").write_text("Berubah.\n", encoding="utf-8")
    assert folder_changes(manifest, docs).changed == ("tea/t2.md",)


# -- the real stores and models ----------------------------------------------------------------
@pytest.mark.full  # milvus-lite runs its server in a process of its own
def test_milvus_filters_by_scope_before_ranking_as_faiss_does(tmp_path):
    from rag.chunking import ChunkingSettings
    from rag.stores import update_store

    docs = corpus(tmp_path / "docs")
    (docs / "empty.txt").write_text("", encoding="utf-8")
    embedder, chunking = FakeEmbedder(), ChunkingSettings(128, 16)
    milvus, _ = update_store(
        load_settings(environ={}, docs_dir=docs, store="milvus", milvus_uri=str(tmp_path / "scope.db")),
        embedder,
        chunking,
    )
    faiss, _ = update_store(load_settings(environ={}, docs_dir=docs, index_dir=tmp_path / "index"), embedder, chunking)
    assert milvus.manifest["skipped"] == faiss.manifest["skipped"] and "empty.txt" in milvus.manifest["skipped"]
    assert milvus.files == faiss.files
    tea = Scope(("tea",)).resolve(milvus.files)
    named = Scope(("tea/t1.md", "harbour/h2.txt")).resolve(milvus.files)
    question = QUESTION + " pasar"
    query = embedder.encode_queries([question])[0]
    # The scope's rows only, before ranking: the unscoped candidates hold no tea at all.
    unscoped = Retriever(milvus, embedder).search(question, CANDIDATES, "hybrid", query)
    assert {h.chunk.file.split("/")[0] for h in unscoped} == {"harbour"}
    questions = (question, "Menurut artikel berbahasa Indonesia: " + question)  # the second names a language
    for files, question in [(files, question) for files in (tea, named) for question in questions]:
        query = embedder.encode_queries([question])[0]
        for mode in ("dense", "keyword", "hybrid"):
            on_milvus = Retriever(milvus, embedder).search(question, 3, mode, query, files)
            on_faiss = Retriever(faiss, embedder).search(question, 3, mode, query, files)
            assert [h.chunk for h in on_milvus] == [h.chunk for h in on_faiss], (files, mode)
            assert {h.chunk.file for h in on_milvus} <= files and len(on_milvus) == min(3, len(files))


def test_a_scoped_question_on_the_seeds_searches_only_its_documents(assistant):
    question = "Which outlet were Mark Chen's internal Slack messages leaked to?"
    unscoped = {h.chunk.file for h in assistant.retrieve(question, k=4)}
    other = next(f for f in sorted(assistant.index.files) if f not in unscoped)
    hits = assistant.retrieve(question, k=4, scope=Scope((other,)))
    assert len(hits) == 4 and {h.chunk.file for h in hits} == {other}
    korean = {f for f, info in assistant.index.files.items() if info["language"] == "ko"}
    hits = assistant.retrieve(question, k=4, scope=Scope(languages=("ko",)))
    assert korean and {h.chunk.file for h in hits} <= korean


@pytest.mark.full  # runs `ask` in child processes, as from a shell
def test_ask_only_on_a_folder_changed_since_its_index(seeds_index, docs_copy):
    from rag.index import load_index

    from .test_cli import assert_one_line_error, run

    # The session's index of seeds/, asked about a copy of the folder that has changed since.
    (docs_copy / "notes.txt").write_text("A new note about the harbour.\n", encoding="utf-8")
    changed = docs_copy / "001_4708e06e0a8d51e4.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "One more line.\n", encoding="utf-8")
    (docs_copy / "004_0d217c6e9b2bf852.txt").unlink()
    where = ["--index", str(seeds_index), "--docs", str(docs_copy)]
    note = (
        "ask: note: the documents folder changed since the index was built (1 new, 1 changed, 1 removed); "
        "answering from the index as it is; run `rag index` to update it"
    )
    korean = "Which outlet were Mark Chen's internal Slack messages leaked to?"
    only = ["--only", "003_15cb4250a3f963ee.txt", "--only", "000_25ef5ea761165839.txt"]
    status, stdout, stderr = run("ask", *where, "--retrieve-only", "--json", "--k", "6", *only, korean)
    assert status == 0, stderr
    answer = json.loads(stdout)
    assert answer["searched"] == ["000_25ef5ea761165839.txt", "003_15cb4250a3f963ee.txt"]
    assert len(answer["retrieved"]) == 6 and {h["file"] for h in answer["retrieved"]} <= set(answer["searched"])
    assert [line for line in stderr.splitlines() if "note:" in line] == [note]

    # An answer from the LLM, scoped by --lang; the note is shown though the LLM loads meanwhile.
    status, stdout, stderr = run("ask", *where, "--lang", "ko", korean)
    assert status == 0, stderr
    languages = {file: info["language"] for file, info in load_index(seeds_index).files.items()}
    korean_files = sorted(file for file, language in languages.items() if language == "ko")
    first_line = stdout.splitlines()[0]
    assert first_line.startswith(f"Searched only {len(korean_files)} document") and korean_files[0] in first_line
    assert note in stderr.splitlines()
    other = sorted({"en", "id", "zh", "ko"} - {languages["004_0d217c6e9b2bf852.txt"]})

    for args, message in [
        (["--only", "nowhere.txt"], "no indexed document matches 'nowhere.txt'"),
        (["--only", "notes.txt"], "'notes.txt' is in the documents folder but not in the index; run `rag index`"),
        (["--lang", "kr"], "unknown language 'kr'"),
        (["--only", "004_0d217c6e9b2bf852.txt", "--lang", ",".join(other)], "the scope matches nothing"),
    ]:
        status, stdout, stderr = run("ask", *where, "--retrieve-only", *args, korean)
        assert_one_line_error(status, stderr, message)
        assert stdout == ""


def test_the_chat_searches_what_the_picker_and_mentions_name(seeds_app, page, assistant):  # noqa: F811 -- fixture
    """In a real browser: a mention of an unknown document is a one-line error in the chat;
    the picker's "Korean documents" limits the answer's search to them, and the answer says so."""
    from .test_ui_browser import KOREAN_QUESTION, ask, screenshot

    files = assistant.index.files
    korean = sorted(file for file, info in files.items() if info["language"] == "ko")
    page.goto(seeds_app)
    page.wait_for_selector("#scope input")
    page.fill("#question textarea", "What does @nowhere.txt say?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat >> text=no indexed document matches '@nowhere.txt'")

    page.click("#scope input")
    page.click('[role=option][aria-label="Korean documents (ko)"]')
    ask(page, KOREAN_QUESTION, turn=1)
    screenshot(page, "scope-picker.png")
    assert f"searched only {len(korean)} document" in page.inner_text("#chat")
    sources = page.inner_html('#sources section.src-turn[data-turn="1"]')
    assert any(file in sources for file in korean)
    assert not any(file in sources for file in files if file not in korean), sources


@pytest.mark.parametrize(
    "only, languages, message",
    [(["nowhere.txt"], [], "no indexed document matches 'nowhere.txt'"), ([], ["kr"], "unknown language 'kr'")],
)
def test_the_ask_api_takes_a_scope_and_says_what_is_wrong_with_it(seeds_app, only, languages, message):
    from gradio_client.exceptions import AppError

    from .test_ui_api import client

    with pytest.raises(AppError) as raised:
        client(seeds_app).predict("What happened?", only, languages, api_name="/ask")
    assert message in html.unescape(str(raised.value))  # the app escapes its error messages
