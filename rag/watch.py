"""A watched documents folder: files added, changed or removed there are indexed in the background.

The file system's notifications (watchdog: inotify on Linux) only say that something
happened; what changed is decided, as always, by `Assistant.update_index`, which compares
content hashes and swaps in a new index generation atomically. Questions keep being answered
from the index they started with meanwhile (the Assistant hands out the old index until the
new one is complete). A burst of changes (a folder copied in, an editor's save, a sync tool's
rename) is waited out and indexed once: an update starts only after DEBOUNCE_SECONDS without
a new change. Where the notifications cannot be had (inotify's watch limit reached, a network
file system), the folder is polled instead.

Hidden files are not documents, and the library writes uploads and removals under hidden
names first: changes to them are ignored, as are files of other types.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .documents import DOCUMENT_SUFFIXES
from .errors import RagError

if TYPE_CHECKING:
    from .store import UpdateReport

# Quiet time after the last change before the index is updated.
DEBOUNCE_SECONDS = 1.0
# How often the fallback looks at the folder.
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class WatchState:
    """What the watcher is doing, for a status line: `version` grows with every finished update."""

    pending: int = 0  # changed paths waiting for the quiet time
    indexing: int = 0  # changed paths being indexed now
    version: int = 0
    report: UpdateReport | None = None  # the last update's
    error: str | None = None  # why the last update failed

    @property
    def message(self) -> str:
        """One line for people: what is being done, or what the last update did."""
        if self.indexing:
            return f"indexing {self.indexing} {'file' if self.indexing == 1 else 'files'}…"
        if self.pending:
            return f"{self.pending} {'change' if self.pending == 1 else 'changes'} seen, indexing soon…"
        if self.error:
            return f"the documents folder changed, but indexing failed: {self.error}"
        if self.report is not None:
            return describe(self.report)
        return ""


def describe(report: UpdateReport) -> str:
    """What an update changed, in one line."""
    parts = []
    if report.embedded_files:
        parts.append(
            f"{len(report.embedded_files)} new or changed ({', '.join(report.embedded_files[:3])}"
            + (", …)" if len(report.embedded_files) > 3 else ")")
        )
    if report.removed_files:
        parts.append(
            f"{len(report.removed_files)} removed ({', '.join(report.removed_files[:3])}"
            + (", …)" if len(report.removed_files) > 3 else ")")
        )
    if not parts:
        return "index up to date"
    return f"indexed: {'; '.join(parts)} ({report.seconds:.1f} s)"


def announcer(
    say: Callable[[str], None], finished: Callable[[UpdateReport], str] = describe, starts: bool = True
) -> Callable[[WatchState], None]:
    """An on_change for FolderWatcher that says one line when indexing starts ("indexing 3
    files…", unless not `starts`) and one when it is done (`finished(report)`); failures the
    watcher logs itself."""
    shown = {"indexing": 0, "version": 0}

    def announce(state: WatchState) -> None:
        if starts and state.indexing and not shown["indexing"]:
            say(state.message)
        if state.version != shown["version"] and state.error is None and state.report is not None:
            say(finished(state.report))
        shown.update(indexing=state.indexing, version=state.version)

    return announce


def is_document_change(docs_dir: Path, path: str, is_directory: bool) -> bool:
    """Whether a change at `path` (inside `docs_dir`) can change what is indexed: a visible
    document file, or a visible folder (moved or removed with the documents in it)."""
    try:
        relative = PurePosixPath(Path(path).relative_to(docs_dir).as_posix())
    except ValueError:
        return False
    if not relative.parts or any(part.startswith(".") for part in relative.parts):
        return False
    return is_directory or relative.suffix.lower() in DOCUMENT_SUFFIXES


class FolderWatcher:
    """Watches `assistant.settings.docs_dir` and updates the assistant's index after changes.

    `on_change(state)` is called (in the watcher's thread) whenever the state changes.
    """

    def __init__(
        self,
        assistant,
        *,
        debounce: float = DEBOUNCE_SECONDS,
        polling: bool = False,
        poll_seconds: float = POLL_SECONDS,
        on_change: Callable[[WatchState], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.assistant = assistant
        self.docs_dir = Path(assistant.settings.docs_dir).resolve()
        self.debounce = debounce
        self.polling = polling  # poll from the start instead of asking for notifications
        self.poll_seconds = poll_seconds
        self.on_change = on_change
        self.log = log or assistant.log
        self.how = ""  # "notifications" or "polling", once started
        self._state = WatchState()
        self._pending: set[str] = set()
        self._last_change = 0.0
        self._condition = threading.Condition()
        self._state_lock = threading.Lock()
        self._stopped = False
        self._observer = None
        self._worker: threading.Thread | None = None

    @property
    def state(self) -> WatchState:
        return self._state

    def _set(self, finished: bool = False, **changes) -> None:
        """Change the state (`finished`: an update ended, so the version grows) and tell on_change."""
        import dataclasses

        with self._state_lock:  # the observer's thread and the worker both report
            if finished:
                changes["version"] = self._state.version + 1
            self._state = state = dataclasses.replace(self._state, **changes)
        if self.on_change is not None:
            try:
                self.on_change(state)
            except Exception as error:  # a display's trouble must not stop the watching
                self.log(f"watching {self.docs_dir}: {error}")

    # -- notifications ---------------------------------------------------------------------
    def changed(self, path: str, is_directory: bool = False) -> None:
        """Note a change at `path`; the index is updated once changes pause."""
        if not is_document_change(self.docs_dir, path, is_directory):
            return
        with self._condition:
            self._pending.add(path)
            self._last_change = time.monotonic()
            self._condition.notify_all()
            pending = len(self._pending)
        self._set(pending=pending)

    def _handler(self):
        from watchdog.events import EVENT_TYPE_CLOSED_NO_WRITE, EVENT_TYPE_OPENED, FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if event.event_type in (EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE):
                    return  # reading a file changes nothing (and indexing reads every file)
                if event.is_directory and event.event_type == "modified":
                    return  # a folder's listing changed: its entries report themselves
                for path in (event.src_path, event.dest_path):
                    if path:
                        watcher.changed(os.fsdecode(path), event.is_directory)

        return Handler()

    def _start_observer(self) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if not self.polling:
            observer = Observer()
            try:
                observer.schedule(self._handler(), str(self.docs_dir), recursive=True)
                observer.start()
                self._observer, self.how = observer, "notifications"
                return
            except OSError as error:  # e.g. inotify's limit of watches or instances reached
                self.log(
                    f"cannot watch {self.docs_dir} with notifications ({error.strerror or error}); "
                    f"polling it every {self.poll_seconds:g} s instead"
                )
        observer = PollingObserver(timeout=self.poll_seconds)
        observer.schedule(self._handler(), str(self.docs_dir), recursive=True)
        observer.start()
        self._observer, self.how = observer, "polling"

    # -- life ------------------------------------------------------------------------------
    def start(self) -> FolderWatcher:
        if not self.docs_dir.is_dir():
            raise RagError(f"documents folder not found: {self.docs_dir}")
        self._start_observer()
        self._worker = threading.Thread(target=self._run, name="watch-documents", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        """Stop watching. An update in progress finishes in the background (the swap is atomic
        either way, and a killed build leaves the previous index)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()

    def __enter__(self) -> FolderWatcher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending or being indexed; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self._state
            if not state.pending and not state.indexing:
                return True
            time.sleep(0.05)
        return False

    def _next_batch(self) -> set[str] | None:
        """Wait for changes, then for the quiet time after the last one; the changed paths
        (None once stopped)."""
        with self._condition:
            while not self._stopped:
                if not self._pending:
                    self._condition.wait()
                    continue
                quiet = time.monotonic() - self._last_change
                if quiet >= self.debounce:
                    batch, self._pending = self._pending, set()
                    return batch
                self._condition.wait(self.debounce - quiet)
        return None

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._set(pending=0, indexing=len(batch))
            try:
                report = self.assistant.update_index()
            except Exception as error:  # keep watching: the next change may mend it
                message = str(error) if isinstance(error, RagError) else f"{type(error).__name__}: {error}"
                self.log(f"indexing after a change in {self.docs_dir} failed: {message}")
                with self._condition:
                    pending = len(self._pending)
                self._set(indexing=0, pending=pending, error=message, finished=True)
                continue
            with self._condition:
                pending = len(self._pending)
            self._set(indexing=0, pending=pending, error=None, report=report, finished=True)
