"""The documents panel's logic without Gradio (ui/documents.py), on the fakes: the listing, adding,
removing with Undo, deleting an upload after a confirmation, the folder watcher's line.

The same actions through the page in a real browser: tests/test_ui_browser.py; through the
API: tests/test_ui_api.py."""

from __future__ import annotations

from dataclasses import dataclass

from ui.documents import Documents, Removed

from .fakes import SMALL_DOCUMENTS, fake_assistant


def documents_of(root, **options) -> Documents:
    assistant = fake_assistant(root)
    assistant.update_index()
    return Documents(assistant, "Test title", 2**20, **options)


def test_the_listing_shows_the_library_everywhere_the_page_does(tmp_path):
    listing = documents_of(tmp_path).listing()
    assert listing.names == tuple(sorted(SMALL_DOCUMENTS)) and listing.label == "Documents · 3"
    assert "Test title" in listing.header and "3 documents" in listing.header and "LLM fake-llm" in listing.header
    assert all(name in listing.table for name in SMALL_DOCUMENTS)
    values = [value for _, value in listing.scope]
    assert "/language/id" in values and "rice.md" in values  # languages, then files


def test_added_files_are_listed_each_said_and_progress_reported(tmp_path):
    documents = documents_of(tmp_path)
    upload = tmp_path / "lighthouse.txt"
    upload.write_text("The lighthouse of Quillport is painted green.\n", encoding="utf-8")
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ")
    calls = []
    change = documents.add([str(upload), bad], False, lambda *args, **kwargs: calls.append((args, kwargs)))

    assert "lighthouse.txt" in change.listing.names and change.listing.label == "Documents · 4"
    assert "Added lighthouse.txt (1 paragraph, 1 chunk)" in change.status
    assert "Rejected:" in change.status and "tool.exe" in change.status
    assert change.status.index("Added") < change.status.index("Rejected")  # what was added first
    assert change.removed is None  # a removal's offer is left as it was
    assert calls[0] == ((0,), {"desc": "Reading the documents"})
    assert ({"desc": "Reading the documents", "unit": "files"}) in [kwargs for _, kwargs in calls[1:]]


def test_nothing_to_add_says_which_files_can_be(tmp_path):
    change = documents_of(tmp_path).add(None, False)
    assert "Choose" in change.status and ".pdf" in change.status and change.listing.label == "Documents · 3"


def test_removal_keeps_the_file_offers_undo_and_undo_brings_it_back(tmp_path):
    documents = documents_of(tmp_path)
    ships = documents.assistant.settings.docs_dir / "ships.txt"
    change = documents.remove("ships.txt")
    assert "ships.txt" not in change.listing.names and "the file stays" in change.status
    assert change.removed == Removed("ships.txt", deletable=False)  # the user's own file: never deleted
    assert ships.exists()

    change = documents.undo("ships.txt")
    assert "ships.txt" in change.listing.names and "back in the index" in change.status
    assert change.removed == Removed()  # the offer is withdrawn


def test_a_failed_removal_or_undo_says_why_and_offers_nothing(tmp_path):
    documents = documents_of(tmp_path)
    change = documents.remove("nowhere.txt")
    assert "status-error" in change.status and "not in the index" in change.status and change.removed == Removed()
    change = documents.undo("tea.txt")  # never removed
    assert "status-error" in change.status and change.listing.names == tuple(sorted(SMALL_DOCUMENTS))


def test_an_upload_is_deleted_only_after_a_confirmation_naming_it(tmp_path):
    documents = documents_of(tmp_path)
    docs = documents.assistant.settings.docs_dir
    documents.add([_write(tmp_path / "kettle.txt", "The kettle of Quillport whistles in B flat.\n")], False)
    change = documents.remove("kettle.txt")
    assert change.removed == Removed("kettle.txt", deletable=True)

    question = documents.delete_question("kettle.txt")
    assert "kettle.txt" in question.text and question.button == "Delete kettle.txt"
    change = documents.delete("kettle.txt", "tea.txt")
    assert "confirmation" in change.status and (docs / "kettle.txt").exists()
    change = documents.delete("kettle.txt", "kettle.txt")
    assert "Deleted the file kettle.txt" in change.status and not (docs / "kettle.txt").exists()
    assert change.removed == Removed()


@dataclass
class WatchState:
    version: int = 0
    indexing: int = 0
    pending: int = 0
    error: str | None = None
    message: str = ""


@dataclass
class Watcher:
    state: WatchState


def test_the_watchers_line_and_the_listing_once_an_update_finished(tmp_path):
    watcher = Watcher(WatchState(version=3, indexing=1, message="indexing 1 file…"))
    documents = documents_of(tmp_path, watcher=watcher)
    line = documents.watched(3)
    assert "status-warning" in line.status and "indexing 1 file" in line.status
    assert line.version == 3 and line.listing is None  # nothing new to list

    watcher.state = WatchState(version=4, message="added 1 file")
    line = documents.watched(3)
    assert "status-ok" in line.status and line.version == 4 and line.listing == documents.listing()

    watcher.state = WatchState(version=5, error="disk full", message="update failed: disk full")
    assert "status-error" in documents.watched(4).status
    watcher.state = WatchState(version=5)
    assert documents.watched(5).status == ""


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path
