"""The watched documents folder (rag/watch.py): files dropped in, changed or removed are indexed
in the background, a burst of changes once, by notifications or by polling.

Fast tests use the fake embedder on real files and a real watchdog observer; one full-layer
test drops a file into a copy of the seeds watched with the real embedder and retrieves it.
The waits are bounded by DEADLINE and end as soon as the watched-for state is reached."""

from __future__ import annotations

import threading
import time

import pytest

from rag.watch import FolderWatcher, WatchState, announcer, describe, is_document_change

from .conftest import seeds_with_index
from .fakes import FakeEmbedder, fake_assistant

DEADLINE = 60.0  # seconds: far beyond what indexing a few small files takes, even on a busy machine


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE:g} s: {what}")
        time.sleep(0.05)


class GatedEmbedder(FakeEmbedder):
    """Embeds passages only while `gate` is open, and says when it is waiting at it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.embedding = threading.Event(), threading.Event()
        self.gate.set()

    def encode_passages(self, texts, batch_size=32, show_progress=False):
        self.embedding.set()
        self.gate.wait(DEADLINE)
        return super().encode_passages(texts, batch_size, show_progress)


class CountingUpdates:
    """Counts the Assistant's index updates (the watcher's work), and the files each saw."""

    def __init__(self, assistant) -> None:
        self.assistant, self.reports = assistant, []
        update = assistant.update_index

        def counted(*args, **kwargs):
            report = update(*args, **kwargs)
            self.reports.append(report)
            return report

        assistant.update_index = counted


@pytest.mark.parametrize("polling", [False, True], ids=["notifications", "polling"])
def test_a_dropped_file_is_indexed_and_retrievable_and_its_removal_too(tmp_path, polling):
    assistant = fake_assistant(tmp_path)
    docs = assistant.settings.docs_dir
    assistant.index  # noqa: B018 -- built before watching, as `rag ui` and `rag serve` do
    states: list[WatchState] = []
    with FolderWatcher(assistant, debounce=0.2, polling=polling, poll_seconds=0.2, on_change=states.append) as watcher:
        assert watcher.how == ("polling" if polling else "notifications")
        (docs / "cranes.txt").write_text("The Quillport crane lifts 96 tonnes.\n", encoding="utf-8")
        wait_until(lambda: "cranes.txt" in assistant.index.files, "the new file is in the index")
        assert assistant.retrieve("How much does the Quillport crane lift?", k=1)[0].chunk.file == "cranes.txt"
        assert any(s.indexing == 1 and s.message == "indexing 1 file…" for s in states), states

        (docs / "cranes.txt").unlink()
        wait_until(lambda: "cranes.txt" not in assistant.index.files, "the removed file is out of the index")
        assert all(h.chunk.file != "cranes.txt" for h in assistant.retrieve("Quillport crane tonnes", k=4))
    assert watcher.state.message.startswith("indexed: 1 removed (cranes.txt)")


def test_polling_takes_over_when_notifications_cannot_be_had(tmp_path, monkeypatch):
    import errno

    import watchdog.observers

    class Exhausted(watchdog.observers.Observer):
        def start(self):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", Exhausted)
    assistant = fake_assistant(tmp_path)
    assistant.index  # noqa: B018
    logged: list[str] = []
    with FolderWatcher(assistant, debounce=0.2, poll_seconds=0.2, log=logged.append) as watcher:
        assert watcher.how == "polling"
        (assistant.settings.docs_dir / "cranes.txt").write_text(
            "The Quillport crane lifts 96 tonnes.\n", encoding="utf-8"
        )
        wait_until(lambda: "cranes.txt" in assistant.index.files, "the new file is in the index")
    assert logged == [
        f"cannot watch {assistant.settings.docs_dir.resolve()} with notifications (inotify watch limit reached); "
        "polling it every 0.2 s instead"
    ]


def test_a_burst_of_changes_is_indexed_once(tmp_path):
    assistant = fake_assistant(tmp_path)
    docs = assistant.settings.docs_dir
    assistant.index  # noqa: B018
    updates = CountingUpdates(assistant)
    # A debounce far longer than writing five small files takes: they are one burst.
    with FolderWatcher(assistant, debounce=1.0) as watcher:
        for n in range(5):
            (docs / f"note{n}.md").write_text(f"Note number {n} about harbour crane {n}.\n", encoding="utf-8")
        wait_until(lambda: watcher.state.version >= 1, "an update has run")
        wait_until(lambda: not watcher.state.pending and not watcher.state.indexing, "the watcher is idle")
    assert len(updates.reports) == 1, [r.embedded_files for r in updates.reports]
    assert updates.reports[0].embedded_files == [f"note{n}.md" for n in range(5)]
    assert {f"note{n}.md" for n in range(5)} <= set(assistant.index.files)


def test_questions_are_answered_from_the_previous_index_while_the_next_is_built(tmp_path):
    embedder = GatedEmbedder()
    assistant = fake_assistant(tmp_path, embedder=embedder)
    docs = assistant.settings.docs_dir
    before = assistant.index
    embedder.gate.clear()  # from now on, embedding passages waits for the gate
    embedder.embedding.clear()
    with FolderWatcher(assistant, debounce=0.2) as watcher:
        (docs / "cranes.txt").write_text("The Quillport crane lifts 96 tonnes.\n", encoding="utf-8")
        wait_until(embedder.embedding.is_set, "the update is embedding the new file")
        answered = []
        asking = threading.Thread(target=lambda: answered.append(assistant.retrieve("Quillport crane", k=1)))
        asking.start()
        asking.join(DEADLINE)  # a bound, not a measurement: it waited for the update (the gate) if not done
        assert answered, "a question waited for the index update"
        assert assistant.index is before and answered[0][0].chunk.file != "cranes.txt"
        embedder.gate.set()
        wait_until(lambda: "cranes.txt" in assistant.index.files, "the new index is swapped in")
    assert watcher.state.indexing == 0


def test_hidden_files_and_other_types_are_not_changes(tmp_path):
    docs = tmp_path / "docs"
    assert is_document_change(docs, str(docs / "a.txt"), False)
    assert is_document_change(docs, str(docs / "sub" / "b.PDF"), False)
    assert is_document_change(docs, str(docs / "sub"), True)  # a folder moved or removed, with its documents
    for ignored in [".a.txt.upload-1-ab", "sub/.hidden/c.txt", "notes.py", "image.png"]:
        assert not is_document_change(docs, str(docs / ignored), False), ignored
    assert not is_document_change(docs, str(tmp_path / "elsewhere.txt"), False)
    assert not is_document_change(docs, str(docs), True)


def test_the_library_s_temporary_names_start_no_update(tmp_path):
    assistant = fake_assistant(tmp_path)
    docs = assistant.settings.docs_dir
    assistant.index  # noqa: B018
    updates = CountingUpdates(assistant)
    with FolderWatcher(assistant, debounce=0.2) as watcher:
        (docs / ".tea.txt.upload-1-ab").write_text("half an upload\n", encoding="utf-8")
        (docs / "script.py").write_text("print('not a document')\n", encoding="utf-8")
        (docs / "ships.txt").write_text("The harbour of Quillport handles 500 ships a year.\n", encoding="utf-8")
        wait_until(lambda: watcher.state.version >= 1, "an update has run")
    assert len(updates.reports) == 1 and updates.reports[0].embedded_files == ["ships.txt"]


def test_announcer_says_when_indexing_starts_and_what_it_did(tmp_path):
    from rag.store import UpdateReport

    lines: list[str] = []
    announce = announcer(lines.append)
    report = UpdateReport(embedded_files=["a.txt", "b.txt", "c.txt", "d.txt"], removed_files=["old.md"], seconds=0.4)
    for state in [
        WatchState(pending=2),
        WatchState(indexing=3),
        WatchState(indexing=3, pending=1),  # more changes seen meanwhile: no second start line
        WatchState(pending=1, version=1, report=report),
        WatchState(indexing=1, version=1, report=report),
        WatchState(version=2, error="disk full"),  # the watcher logs failures itself
    ]:
        announce(state)
    assert lines == [
        "indexing 3 files…",
        "indexed: 4 new or changed (a.txt, b.txt, c.txt, …); 1 removed (old.md) (0.4 s)",
        "indexing 1 file…",
    ]
    assert describe(UpdateReport()) == "index up to date"


def test_a_failed_update_is_reported_and_watching_goes_on(tmp_path):
    assistant = fake_assistant(tmp_path)
    docs = assistant.settings.docs_dir
    assistant.index  # noqa: B018
    logged: list[str] = []
    with FolderWatcher(assistant, debounce=0.2, log=logged.append) as watcher:
        for path in list(docs.iterdir()):
            path.unlink()  # an index of nothing is refused
        wait_until(lambda: watcher.state.error is not None, "the failure is reported")
        assert "no readable document" in watcher.state.message
        assert set(assistant.index.files) == {"tea.txt", "rice.md", "ships.txt"}  # the previous index serves on
        (docs / "back.txt").write_text("Documents are back in the folder.\n", encoding="utf-8")
        wait_until(lambda: "back.txt" in assistant.index.files, "the next change is indexed")
    assert watcher.state.error is None and any("no readable document" in line for line in logged)


def test_a_dropped_file_is_retrieved_with_the_real_embedder(tmp_path, seeds_index, shared_assistant):
    docs, index = seeds_with_index(tmp_path, seeds_index)
    assistant = shared_assistant(docs_dir=docs, index_dir=index)
    question = "Who founded Zorblax Analytics?"
    assert all(h.chunk.file != "zorblax.txt" for h in assistant.retrieve(question))
    with FolderWatcher(assistant):
        (docs / "zorblax.txt").write_text(
            "Zorblax Analytics is a fictional company founded in Bandung in 2031 by Dewi Kartika.\n", encoding="utf-8"
        )
        wait_until(lambda: "zorblax.txt" in assistant.index.files, "the dropped file is indexed")
        assert assistant.retrieve(question)[0].chunk.file == "zorblax.txt"
        (docs / "zorblax.txt").unlink()
        wait_until(lambda: "zorblax.txt" not in assistant.index.files, "the removed file is out of the index")
    assert all(h.chunk.file != "zorblax.txt" for h in assistant.retrieve(question))


# -- the chat page ---------------------------------------------------------------------------
@pytest.fixture
def watched_app(tmp_path, seeds_index, shared_assistant):
    """The chat on a copy of the seeds with a watcher whose updates wait for `gate` (so that
    the page can be seen while indexing); (url, docs folder, gate)."""
    from harness.probes import free_port
    from ui.app import UiOptions, serve

    docs, index = seeds_with_index(tmp_path, seeds_index)
    assistant = shared_assistant(docs_dir=docs, index_dir=index)
    gate, update = threading.Event(), assistant.update_index
    assistant.update_index = lambda *args, **kwargs: gate.wait(DEADLINE) and update(*args, **kwargs)
    with FolderWatcher(assistant) as watcher:
        demo, url = serve(assistant, UiOptions(), port=free_port(), watcher=watcher)
        try:
            yield url, docs, gate
        finally:
            gate.set()
            demo.close()


def test_the_chat_shows_indexing_then_the_dropped_files_in_its_documents_list(watched_app):
    from playwright.sync_api import sync_playwright

    from .test_ui_browser import CHROMIUM, CHROMIUM_ARGS

    url, docs, gate = watched_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.click("#documents button, #documents .label-wrap")  # open the documents panel
        page.wait_for_selector("#docs-table table.docs", state="visible")
        assert "Documents · 5" in page.locator("#documents").inner_text()
        for name in ("cranes.txt", "harbour.md", "tides.txt"):
            (docs / name).write_text(f"A note about {name.split('.')[0]} in Quillport.\n", encoding="utf-8")
        page.wait_for_function(
            "() => document.querySelector('#watch-status').innerText.includes('indexing 3 files…')",
            timeout=DEADLINE * 1000,
        )
        assert "cranes.txt" not in page.locator("#docs-table").inner_text()  # not yet indexed
        gate.set()
        page.wait_for_function(
            "() => document.querySelector('#documents').innerText.includes('Documents · 8')", timeout=DEADLINE * 1000
        )
        table = page.locator("#docs-table").inner_text()
        assert all(name in table for name in ("cranes.txt", "harbour.md", "tides.txt")), table
        assert "indexed: 3 new or changed" in page.locator("#watch-status").inner_text()
        browser.close()


# -- rag index --watch -------------------------------------------------------------------------
@pytest.mark.full  # a child process, as from a shell
def test_rag_index_watch_indexes_a_dropped_file_and_stops_on_ctrl_c(tmp_path):
    import signal
    import subprocess
    import sys

    from .conftest import ROOT
    from .fakes import small_docs

    docs, index = small_docs(tmp_path / "docs"), tmp_path / "index"
    code = "import sys; from rag.cli import rag_main; sys.exit(rag_main(sys.argv[1:]))"
    child = subprocess.Popen(
        [sys.executable, "-c", code, "index", "--docs", str(docs), "--index", str(index), "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        # Ctrl+C must reach it even where this test runs with SIGINT ignored (a background job).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        while "Watching" not in (line := child.stderr.readline()):
            assert line, "the command ended before watching"
        assert child.stdout.readline() == "Full build (no index yet).\n"
        assert child.stdout.readline().startswith(f"3 files, 3 chunks in {index}")
        (docs / "cranes.txt").write_text("The Quillport crane lifts 96 tonnes.\n", encoding="utf-8")
        assert child.stdout.readline() == "indexing 1 file…\n"
        assert child.stdout.readline().startswith("indexed: 1 new or changed (cranes.txt)")
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=DEADLINE)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert err.strip().splitlines()[-1] == f"Stopped watching {docs}." and "Traceback" not in err
    assert out == ""
