"""The documents folder and its index changed together (`Assistant.library`), with the fakes.

The checks on names, sizes and contents of single files are in tests/test_ui_api.py
(test_library_checks_names_sizes_and_contents); the upload through the chat in the same file.
"""

import pytest

from rag.errors import RagError

from .fakes import FakeEmbedder, fake_assistant


def test_added_documents_are_stored_and_indexed_and_bad_ones_named(tmp_path):
    assistant = fake_assistant(tmp_path)
    assistant.update_index()
    upload = tmp_path / "upload.txt"
    upload.write_text("The lighthouse of Quillport is painted green.\n", encoding="utf-8")
    result = assistant.library.add([("lighthouse.txt", upload), ("tool.exe", b"MZ"), ("blank.txt", b"  \n")])
    assert result.added == ["lighthouse.txt"] and result.failed is None and result.notes == {}
    assert [name for name, _ in result.rejected] == ["tool.exe", "blank.txt"]
    assert "empty" in result.rejected[1][1]
    assert assistant.library.files["lighthouse.txt"]["chunks"] == 1
    assert assistant.retrieve("Which lighthouse is painted green?")[0].chunk.file == "lighthouse.txt"
    assert not (assistant.settings.docs_dir / "tool.exe").exists()


def test_nothing_valid_means_no_reindexing(tmp_path):
    embedder = FakeEmbedder()
    assistant = fake_assistant(tmp_path, embedder=embedder)
    assistant.update_index()
    encoded = embedder.passages_encoded
    result = assistant.library.add([("../escape.txt", b"Text.\n")])
    assert result.added == [] and len(result.rejected) == 1 and embedder.passages_encoded == encoded


def test_a_failed_reindex_takes_the_added_files_out_again(tmp_path):
    embedder = FakeEmbedder()
    assistant = fake_assistant(tmp_path, embedder=embedder)
    assistant.update_index()
    before = dict(assistant.library.files)
    embedder.failing = True
    result = assistant.library.add([("new.txt", b"Brand new text about Quillport.\n")])
    assert result.failed == "the fake embedder was told to fail" and result.added == []
    assert not (assistant.settings.docs_dir / "new.txt").exists()
    assert assistant.library.files == before


def test_removing_a_document_takes_it_out_of_the_index_for_good_and_keeps_the_file(tmp_path):
    assistant = fake_assistant(tmp_path)
    assistant.update_index()
    ships = assistant.settings.docs_dir / "ships.txt"
    original = ships.read_bytes()
    report = assistant.library.remove("ships.txt")
    assert report.removed_files == ["ships.txt"] and "ships.txt" not in assistant.library.files
    assert ships.read_bytes() == original  # the user's file is theirs
    assert assistant.library.excluded == ("ships.txt",)
    # Re-indexing, as `rag index` would, does not bring it back, and says why it is left out.
    report = assistant.update_index(rebuild=True)
    assert "ships.txt" not in assistant.library.files
    assert any(s.file == "ships.txt" and "rag index --include ships.txt" in s.reason for s in report.skipped)
    with pytest.raises(RagError, match="not in the index"):
        assistant.library.remove("ships.txt")
    with pytest.raises(RagError):
        assistant.library.remove("../index/CURRENT")
    # Undo: back in the index, and no longer remembered as removed.
    assistant.library.include(["ships.txt"])
    assert "ships.txt" in assistant.library.files and assistant.library.excluded == ()
    with pytest.raises(RagError, match="was not removed"):
        assistant.library.include(["ships.txt"])


def test_rag_index_lists_removed_documents_and_include_brings_one_back(tmp_path, monkeypatch):
    from rag import assistant as core
    from rag.cli import rag_main

    from .conftest import run_main

    assistant = fake_assistant(tmp_path)
    assistant.update_index()
    assistant.library.remove("tea.txt")
    made = core.Assistant.__init__  # the command's own Assistant gets the fakes too
    monkeypatch.setattr(
        core.Assistant,
        "__init__",
        lambda self, settings, **_: made(self, settings, embedder=assistant.embedder, llm=assistant.llm),
    )
    folders = ["--docs", str(assistant.settings.docs_dir), "--index", str(assistant.settings.index_dir)]
    code, out = run_main(rag_main, ["index", *folders])
    assert code == 0 and "skipped tea.txt: removed from the index (the file stays)" in out, out
    code, out = run_main(rag_main, ["index", "--include", "tea.txt", *folders])
    assert code == 0 and "skipped tea.txt" not in out and "1 new or changed" in out, out
    assert "tea.txt" in core.Assistant(assistant.settings).library.files


def test_only_a_file_the_chat_uploaded_can_be_deleted_and_only_when_named(tmp_path):
    assistant = fake_assistant(tmp_path)
    assistant.update_index()
    library, docs = assistant.library, assistant.settings.docs_dir
    with pytest.raises(RagError, match="not uploaded in the chat"):
        library.delete("tea.txt", confirm="tea.txt")  # the user's own file
    assert (docs / "tea.txt").exists()

    assert library.add([("kettle.txt", b"The kettle of Quillport whistles in B flat.\n")]).added == ["kettle.txt"]
    assert library.uploaded_by_chat("kettle.txt") and not library.uploaded_by_chat("tea.txt")
    library.remove("kettle.txt")
    assert (docs / "kettle.txt").exists()
    with pytest.raises(RagError, match="confirmation"):
        library.delete("kettle.txt", confirm="tea.txt")
    assert (docs / "kettle.txt").exists()
    library.delete("kettle.txt", confirm="kettle.txt")
    assert not (docs / "kettle.txt").exists() and library.excluded == ()

    # An upload the user has changed since is theirs: not deleted.
    library.add([("notes.txt", b"Notes about Quillport harbour.\n")])
    (docs / "notes.txt").write_text("My own notes now.\n", encoding="utf-8")
    assert not library.uploaded_by_chat("notes.txt")
    with pytest.raises(RagError, match="not uploaded in the chat"):
        library.delete("notes.txt", confirm="notes.txt")
    assert (docs / "notes.txt").exists()
