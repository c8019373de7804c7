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


def test_removing_a_document_reindexes_and_only_indexed_names_can_go(tmp_path):
    assistant = fake_assistant(tmp_path)
    assistant.update_index()
    report = assistant.library.remove("ships.txt")
    assert report.removed_files == ["ships.txt"] and "ships.txt" not in assistant.library.files
    assert not (assistant.settings.docs_dir / "ships.txt").exists()
    with pytest.raises(RagError, match="not in the index"):
        assistant.library.remove("ships.txt")
    with pytest.raises(RagError):
        assistant.library.remove("../index/CURRENT")
