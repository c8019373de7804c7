"""Conversations kept in SQLite (rag/history.py): saved as they happen, owned, exported, and
honest about citations whose documents changed since. Fast: the fakes and a temporary folder.

The same through the chat in a browser: tests/test_ui_browser.py; through `ask --chat`:
tests/test_cli.py."""

from __future__ import annotations

import json
import sqlite3

import pytest

from rag.errors import RagError
from rag.history import (
    ANSWERED,
    CHANGED,
    PENDING,
    REMOVED,
    STOPPED,
    History,
    changes,
    folder_sha256,
    settled_answer,
)

from .test_chat import CLAIM, answering_assistant

QUESTION = "Who founded Zorblax Analytics?"


@pytest.fixture
def answered(tmp_path):
    """(assistant, history, conversation id) with one answered question citing tea.txt."""
    assistant = answering_assistant(tmp_path)
    history = History(assistant.settings.chats_path)
    conversation = history.create(QUESTION)
    n = history.ask(conversation.id, QUESTION, QUESTION)
    history.answer(conversation.id, n, assistant.ask(QUESTION), assistant.index.files)
    return assistant, history, conversation.id


def test_the_file_sits_beside_the_index_uses_wal_and_is_not_made_by_looking(tmp_path):
    assistant = answering_assistant(tmp_path)
    path = assistant.settings.chats_path
    assert path == tmp_path / "index.chats.sqlite3"
    history = History(path)
    assert history.conversations() == [] and not path.exists()
    history.create("first")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_conversations_are_listed_newest_first_renamed_and_deleted(tmp_path):
    history = History(tmp_path / "chats.sqlite3")
    old, new = history.create("Tea farmers"), history.create("Rice prices")
    assert [c.title for c in history.conversations()] == ["Rice prices", "Tea farmers"]
    history.ask(old.id, "What do tea farmers buy?", "What do tea farmers buy?")  # using it makes it the newest
    assert [c.title for c in history.conversations()] == ["Tea farmers", "Rice prices"]
    assert history.rename(new.id, "  Harga   beras ").title == "Harga beras"
    assert history.find("Harga beras").id == new.id and history.find(f"#{old.id}").id == old.id
    history.delete(old.id)
    assert [c.title for c in history.conversations()] == ["Harga beras"]
    with sqlite3.connect(tmp_path / "chats.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0  # its turns went with it
    for wrong in (lambda: history.delete(old.id), lambda: history.rename(old.id, "x"), lambda: history.turns(old.id)):
        with pytest.raises(RagError, match=f"^there is no conversation {old.id}$"):
            wrong()
    with pytest.raises(RagError, match="no conversation named 'Tea farmers'"):
        history.find("Tea farmers")
    with pytest.raises(RagError, match="empty"):
        history.rename(new.id, "   ")


def test_each_owner_sees_only_their_own(tmp_path):
    history = History(tmp_path / "chats.sqlite3")
    mine = history.create("mine", owner="ana")
    history.create("theirs", owner="budi")
    assert [c.title for c in history.conversations("ana")] == ["mine"]
    assert history.conversations() == []  # the local user is another owner
    for wrong in (
        lambda: history.turns(mine.id, owner="budi"),
        lambda: history.delete(mine.id, owner="budi"),
        lambda: history.rename(mine.id, "taken", owner="budi"),
        lambda: history.ask(mine.id, "q", "q", owner="budi"),
        lambda: history.find("mine", owner="budi"),
    ):
        with pytest.raises(RagError):
            wrong()
    assert history.get(mine.id, "ana").title == "mine"


def test_a_question_is_kept_from_the_moment_it_is_asked(tmp_path):
    path = tmp_path / "chats.sqlite3"
    history = History(path)
    conversation = history.create("asked")
    history.ask(conversation.id, "first?", "first?")
    history.end(conversation.id, 1, STOPPED, "a draft")
    history.ask(conversation.id, "second?", "second?")
    # The server dies here, mid-answer; whoever opens the file next finds both questions.
    turns = History(path).turns(conversation.id)
    assert [(t.n, t.question, t.status, t.answer) for t in turns] == [
        (1, "first?", STOPPED, "a draft"),
        (2, "second?", PENDING, None),
    ]
    assert History(path).history(conversation.id) == []  # neither is an answer to follow up on


def test_an_answer_keeps_its_citations_and_the_cited_documents_hashes(answered):
    assistant, history, conversation = answered
    (turn,) = history.turns(conversation)
    assert turn.status == ANSWERED and turn.answer.startswith(CLAIM)
    (citation,) = turn.citations
    assert citation["file"] == "tea.txt" and citation["paragraph"] == 2 and citation["quote"] == CLAIM
    assert turn.hashes == {"tea.txt": assistant.index.files["tea.txt"]["sha256"]}
    assert history.history(conversation) == [(QUESTION, turn.answer)]
    again = settled_answer(turn)
    assert again.text == turn.answer and again.citations[0].location == "tea.txt ¶2"
    assert changes(turn, folder_sha256(assistant.settings.docs_dir)) == {}


def test_a_cited_document_changed_or_removed_since_marks_the_citation(answered):
    assistant, history, conversation = answered
    docs = assistant.settings.docs_dir
    (docs / "tea.txt").write_text("Zorblax Analytics was sold in 2040.\n", encoding="utf-8")
    (turn,) = history.turns(conversation)
    assert changes(turn, folder_sha256(docs)) == {"tea.txt": CHANGED}
    (docs / "tea.txt").unlink()
    assert changes(turn, folder_sha256(docs)) == {"tea.txt": REMOVED}


def test_exports_carry_quotes_locations_and_changes(answered):
    assistant, history, conversation = answered
    history.ask(conversation, "And then?", "And then?")  # interrupted: kept, and said so
    docs = assistant.settings.docs_dir
    exported = history.export_json(conversation, folder_sha256(docs))
    json.dumps(exported)  # plain JSON
    first, second = exported["turns"]
    assert first["citations"][0]["quote"] == CLAIM and first["citations"][0]["changed_since"] is None
    assert second["status"] == PENDING and second["answer"] is None
    markdown = history.export_markdown(conversation, folder_sha256(docs))
    assert (
        f"## 1. {QUESTION}" in markdown
        and f"> [{first['citations'][0]['n']}] “{CLAIM}”" in markdown
        and "> — tea.txt ¶2" in markdown
    )
    assert "(interrupted" in markdown and "changed since" not in markdown

    (docs / "tea.txt").write_text("Zorblax Analytics was sold in 2040.\n", encoding="utf-8")
    assert f"⚠ {CHANGED}" in history.export_markdown(conversation, folder_sha256(docs))
    assert (
        history.export_json(conversation, folder_sha256(docs))["turns"][0]["citations"][0]["changed_since"] == CHANGED
    )


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path):
    path = tmp_path / "chats.sqlite3"
    path.write_text("not a database", encoding="utf-8")
    with pytest.raises(RagError, match="cannot be used"):
        History(path).conversations()
    assert path.read_text(encoding="utf-8") == "not a database"  # left as it was


def rag_chats(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """`rag chats ...` in this process. The subcommand is given to rag_main as the installed
    entry point would give it (an install made before it existed does not list it)."""
    from rag import cli

    monkeypatch.setattr(cli, "_commands", lambda: {"chats": cli.chats_command})
    code = cli.rag_main(["chats", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_rag_chats_lists_exports_renames_and_deletes(answered, monkeypatch, capsys):
    assistant, history, conversation = answered
    where = ["--docs", str(assistant.settings.docs_dir), "--index", str(assistant.settings.index_dir)]
    code, out, _ = rag_chats(monkeypatch, capsys, "list", *where)
    assert code == 0 and out.startswith(f"#{conversation}  {QUESTION} · ") and "(1 question)" in out
    code, out, _ = rag_chats(monkeypatch, capsys, "export", QUESTION, *where)
    assert code == 0 and out.startswith(f"# {QUESTION}\n") and "> — tea.txt ¶2" in out
    code, out, _ = rag_chats(monkeypatch, capsys, "export", f"#{conversation}", "--json", *where)
    assert code == 0 and json.loads(out)["turns"][0]["citations"][0]["file"] == "tea.txt"
    code, out, _ = rag_chats(monkeypatch, capsys, "rename", QUESTION, "Zorblax", *where)
    assert code == 0 and [c.title for c in history.conversations()] == ["Zorblax"]
    code, out, _ = rag_chats(monkeypatch, capsys, "delete", "Zorblax", *where)
    assert code == 0 and history.conversations() == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "Nope"], "there is no conversation named 'Nope'"),
        (["delete", "#99"], "there is no conversation named '#99'"),
        (["export"], "needs the conversation's title or #number"),
    ],
)
def test_rag_chats_on_a_conversation_that_does_not_exist_is_a_one_line_error(
    answered, monkeypatch, capsys, args, message
):
    assistant, history, _ = answered
    where = ["--docs", str(assistant.settings.docs_dir), "--index", str(assistant.settings.index_dir)]
    code, out, err = rag_chats(monkeypatch, capsys, *args, *where)
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("rag: error: ") and message in err
    assert len(history.conversations()) == 1
