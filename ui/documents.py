"""The documents panel's logic, without Gradio: the library as the page shows it (the header's
counts, the panel's table and label, the choices of Remove and of the scope picker), documents
added, removed with Undo, an upload deleted after a confirmation naming it, and the folder
watcher's line.

`Documents` holds the Assistant (its Library does the work, rag/library.py) and no per-user
state. Each action gives back plain values; ui/app.py lays the panel out and turns them into
component updates; everything here is testable with the fakes of tests/fakes.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.library import DOCUMENT_SUFFIXES
from rag.scope import scope_choices

from . import render

KINDS = ", ".join(DOCUMENT_SUFFIXES)  # the kinds of file that can be added, for people
# The units of each re-indexing stage (rag.index's progress), for the upload's progress bar.
STAGE_UNITS = {"Reading": "files", "Chunking": "characters"}


@dataclass(frozen=True)
class Listing:
    """The indexed documents, wherever the page shows them."""

    header: str  # the page header's HTML: counts and models
    label: str  # the Documents panel's label
    table: str  # the panel's table (HTML)
    names: tuple[str, ...]  # the indexed documents, sorted: Remove's choices
    scope: list[tuple[str, str]]  # the scope picker's (label, value) choices


@dataclass(frozen=True)
class Removed:
    """What is offered after a removal: Undo, and deleting the file when the chat uploaded it."""

    name: str = ""  # the document just removed; "": nothing offered
    deletable: bool = False


@dataclass(frozen=True)
class Change:
    """What a library action did: the library after it, one or more status lines (HTML), and,
    for a removal and what follows it, the offer then (None: left as it was)."""

    listing: Listing
    status: str
    removed: Removed | None = None


@dataclass(frozen=True)
class DeleteQuestion:
    """The confirmation asked before an upload is deleted."""

    text: str  # HTML naming the file
    button: str  # the confirming button's label


@dataclass(frozen=True)
class WatchLine:
    """The folder watcher's status line; `listing` once an update finished since `version` was seen."""

    status: str  # HTML, "" when there is nothing to say
    version: int
    listing: Listing | None = None


def upload_path(upload: object) -> Path:
    """An uploaded file's path, given as a path or as an object with a `name` (a temp file)."""
    if isinstance(upload, (str, os.PathLike)):
        return Path(upload)
    return Path(getattr(upload, "name", str(upload)))


class Documents:
    """The documents of one Assistant as the chat's page manages them; `watcher` (a
    rag.watch.FolderWatcher) if the folder is watched."""

    def __init__(self, assistant, title: str, max_upload_bytes: int, watcher=None) -> None:
        self.assistant = assistant
        self.library = assistant.library
        self.title = title
        self.max_upload_bytes = max_upload_bytes
        self.watcher = watcher

    # -- the library as shown ----------------------------------------------------------------
    def header(self, files: dict[str, dict] | None = None) -> str:
        files = self.library.files if files is None else files
        settings = self.assistant.settings
        chunks = sum(int(info.get("chunks", 0)) for info in files.values())
        llm = self.assistant.llm.id if settings.llm_url is None else settings.llm_url
        return render.header(
            self.title,
            [
                f"{len(files)} documents · {chunks} chunks",
                f"LLM {llm}",
                f"embedder {Path(settings.embedder_name).name}",
            ],
        )

    def listing(self) -> Listing:
        files = self.library.files
        return Listing(
            header=self.header(files),
            label=f"Documents · {len(files)}",
            table=render.documents_table(files),
            names=tuple(sorted(files)),
            scope=scope_choices(files),
        )

    # -- actions -----------------------------------------------------------------------------
    def add(
        self, uploads: Sequence[object] | None, replace: bool, progress: Callable[..., None] | None = None
    ) -> Change:
        """Add uploaded files to the documents folder and index them; `progress` is called as a
        gr.Progress is: (amount or (done, total), desc=, unit=)."""
        paths = [upload_path(upload) for upload in uploads or []]
        if not paths:
            return Change(self.listing(), render.status("warning", f"Choose {KINDS} files to add."))
        progress = progress or (lambda *args, **kwargs: None)
        progress(0, desc="Reading the documents")
        result = self.library.add(
            [(path.name, path) for path in paths],
            replace=bool(replace),
            max_bytes=self.max_upload_bytes,
            progress=lambda stage, done, total: progress(
                (done, total or None), desc=f"{stage} the documents", unit=STAGE_UNITS.get(stage, "chunks")
            ),
        )
        lines = [render.status("error", f"Rejected: {why}") for _, why in result.rejected]
        if result.failed:
            lines.insert(0, render.status("error", f"Not added: {result.failed}"))
        for name in result.added:
            if name in result.notes:
                lines.insert(0, render.status("warning", f"{name}: {result.notes[name]}"))
            else:
                info = self.library.files.get(name, {})
                counts = (
                    f"{render.plural(info.get('paragraphs', 0), 'paragraph')}, "
                    f"{render.plural(info.get('chunks', 0), 'chunk')}"
                )
                lines.insert(0, render.status("ok", f"Added {name} ({counts})"))
        return Change(self.listing(), "".join(lines))

    def remove(self, name) -> Change:
        """Take one indexed document out of the index; its file stays in the documents folder.
        Offers Undo, and deleting the file if the chat uploaded it."""
        try:
            self.library.remove(name)
        except RagError as error:
            return Change(self.listing(), render.status("error", str(error)), Removed())
        message = render.status("ok", f"Removed {name} from the index; the file stays in the documents folder")
        return Change(self.listing(), message, Removed(name, self.library.uploaded_by_chat(name)))

    def undo(self, name) -> Change:
        """Bring the last removed document back into the index."""
        try:
            self.library.include([name] if name and isinstance(name, str) else [])
            message = render.status("ok", f"{name} is back in the index")
        except RagError as error:
            message = render.status("error", str(error))
        return Change(self.listing(), message, Removed())

    @staticmethod
    def delete_question(name) -> DeleteQuestion:
        """Deleting a file is not undone: asked first, naming it."""
        return DeleteQuestion(render.delete_question(name or ""), f"Delete {name}")

    def delete(self, name, confirmation) -> Change:
        """Delete a file the chat uploaded from the documents folder; `confirmation` repeats its name."""
        try:
            self.library.delete(name, confirm=confirmation)
            message = render.status("ok", f"Deleted the file {name}")
        except RagError as error:
            message = render.status("error", str(error))
        return Change(self.listing(), message, Removed())

    # -- the folder watcher -------------------------------------------------------------------
    def watched(self, seen: int | None) -> WatchLine:
        """The watcher's line; the library again once an update finished since version `seen`."""
        state = self.watcher.state
        kind = "error" if state.error else "warning" if state.indexing or state.pending else "ok"
        status = render.status(kind, state.message) if state.message else ""
        return WatchLine(status, state.version, self.listing() if state.version != seen else None)
