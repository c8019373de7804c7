"""Adding and removing files in the documents folder, safely, and keeping the index in step:
`Assistant.library` (for the chat UI, or any caller).

Every check happens here, on the server, whatever a browser claims: the file type, the
size, a file name that stays inside the documents folder (no path, no hidden file, no
reserved characters), text that is UTF-8 and not binary, and no silent overwriting.
A file is written to a hidden temporary name first (hidden files are not documents), then
linked into place, so the folder never holds half a file. `Library` re-indexes after a
change, and takes added files out again when re-indexing fails, so the folder stays as
the index knows it.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from .documents import DOCUMENT_SUFFIXES, split_paragraphs
from .errors import RagError
from .library_records import LibraryRecords, read_records, write_records
from .readers import READERS, Unreadable, decode

if TYPE_CHECKING:
    from .settings import Settings
    from .store import Store, UpdateReport

# Uploads larger than this are refused (each format's reader also has its own limit).
DEFAULT_MAX_BYTES = 5 * 2**20
MAX_NAME_BYTES = 200
# Characters that are reserved on some file systems or confusing in a shell or a URL.
_RESERVED = set('/\\:*?"<>|')
# Control characters other than these are a sign of binary content.
_TEXT_CONTROLS = set("\t\n\r\f\v\x1b")


def safe_name(name: str) -> str:
    """`name` if it is a plain, visible document file name; RagError saying why not otherwise.

    No folders (so no path traversal), no hidden files, no control or reserved
    characters; the name is returned in Unicode NFC form.
    """
    if not isinstance(name, str) or not name.strip():
        raise RagError("the file has no name")
    shown = repr(name) if len(name) <= 80 else repr(name[:77] + "...")
    name = unicodedata.normalize("NFC", name)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise RagError(f"file name {shown} contains a folder; only a plain file name is accepted")
    if name != name.strip():
        raise RagError(f"file name {shown} starts or ends with a space")
    if name.startswith("."):
        raise RagError(f"file name {shown} is hidden (starts with a dot)")
    if any(unicodedata.category(c)[0] == "C" or c in _RESERVED for c in name):
        raise RagError(f"file name {shown} contains control or reserved characters")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise RagError(f"file name {shown} is too long (at most {MAX_NAME_BYTES} bytes)")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES:
        kinds = ", ".join(DOCUMENT_SUFFIXES)
        raise RagError(f"{name}: only {kinds} files can be added, not {suffix or 'files without a type'}")
    return name


def check_text(name: str, data: bytes) -> str:
    """The decoded text of `data` if it is a usable UTF-8 text document; RagError otherwise."""
    if not data.strip():
        raise RagError(f"{name} is empty")
    if b"\x00" in data[:8192]:
        raise RagError(f"{name} is binary, not text")
    text, valid = decode(data)
    if not valid:
        raise RagError(f"{name} is not UTF-8 text; save it as UTF-8 and try again")
    controls = sum(1 for c in text[:65536] if unicodedata.category(c) == "Cc" and c not in _TEXT_CONTROLS)
    if controls > max(2, len(text[:65536]) // 100):
        raise RagError(f"{name} is binary, not text ({controls} control characters)")
    if not split_paragraphs(name, text):
        raise RagError(f"{name} has no text")
    return text


def check_document(name: str, data: bytes) -> None:
    """RagError if `data` is not a usable document of the type its name says."""
    reader = READERS[PurePosixPath(name).suffix.lower()]
    if reader.read is READERS[".txt"].read:
        check_text(name, data)
        return
    if not data.strip():
        raise RagError(f"{name} is empty")
    try:
        reading = reader.read(data)
    except Unreadable as error:
        raise RagError(f"{name}: {error}") from None
    if not reading.blocks:
        raise RagError(f"{name} has no text" + (f" ({'; '.join(reading.notes)})" if reading.notes else ""))


def _read_limited(source: Path | bytes, name: str, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError as error:
            raise RagError(f"cannot read the uploaded {name}: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise RagError(f"{name} is larger than the limit of {_size(max_bytes)}")
    return data


def _size(count: int) -> str:
    return f"{count / 2**20:.3g} MB" if count >= 2**20 else f"{count / 2**10:.3g} KB"


def _documents_folder(docs_dir: Path) -> Path:
    if not docs_dir.is_dir():
        raise RagError(f"documents folder not found: {docs_dir}")
    return docs_dir.resolve()


def add_document(
    docs_dir: Path,
    name: str,
    source: Path | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    replace: bool = False,
    known: Mapping[str, Mapping] | None = None,
) -> str:
    """Copy one uploaded file into the top of the documents folder; its stored name.

    `source` is the uploaded bytes or a file to copy (read up to `max_bytes` + 1 bytes).
    An existing file of the same name is only replaced when `replace` is true. `known` is
    the index's file table (name -> {"sha256": ...}): a file with the same content as an
    indexed one is refused, as the index would skip it anyway.
    """
    name = safe_name(name)
    max_bytes = min(max_bytes, READERS[PurePosixPath(name).suffix.lower()].max_bytes)
    data = _read_limited(source, name, max_bytes)
    check_document(name, data)
    digest = hashlib.sha256(data).hexdigest()
    for other, info in (known or {}).items():
        if info.get("sha256") == digest and other != name:
            raise RagError(f"{name} has the same content as {other}, which is already indexed")

    folder = _documents_folder(docs_dir)
    target = folder / name
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise RagError(f"{name} exists in the documents folder and is not a regular file")
    if target.exists() and not replace:
        raise RagError(f"{name} already exists; remove it first or choose to replace it")
    temporary = folder / f".{name}.upload-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)  # fails if the name was taken meanwhile: never clobbers
            except FileExistsError:
                raise RagError(f"{name} already exists; remove it first or choose to replace it") from None
    except OSError as error:
        raise RagError(f"cannot write {name} to {docs_dir}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(folder)
    return name


def _document_path(docs_dir: Path, name: str, known: Collection[str] | None) -> Path:
    """The path of the document with this indexed name; RagError if the name could lead
    anywhere but to a document file inside the documents folder."""
    if not isinstance(name, str) or not name.strip():
        raise RagError("no document chosen")
    parts = PurePosixPath(name).parts
    if (
        PurePosixPath(name).is_absolute()
        or "\\" in name
        or not parts
        or any(p in (".", "..") or p.startswith(".") for p in parts)
    ):
        raise RagError(f"{name!r} is not the name of a document in the documents folder")
    if PurePosixPath(name).suffix.lower() not in DOCUMENT_SUFFIXES:
        raise RagError(f"{name!r} is not a document ({', '.join(DOCUMENT_SUFFIXES)})")
    if known is not None and name not in known:
        raise RagError(f"{name} is not in the index")
    folder = _documents_folder(docs_dir)
    path = folder.joinpath(*parts)
    # The folders on the way must not lead outside (a symlinked folder, say).
    try:
        inside = path.parent.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError for a symlink loop
        inside = False
    if not inside:
        raise RagError(f"{name!r} is outside the documents folder")
    if not path.is_symlink() and not path.is_file():
        raise RagError(f"{name} is no longer in the documents folder")
    return path


def remove_document(docs_dir: Path, name: str, known: Collection[str] | None = None) -> str:
    """Delete the document with this indexed name (relative, forward slashes); its name.

    The name must stay inside the documents folder and be a document file; a symlink is
    removed itself, never what it points to. With `known` (the indexed names), only those
    can be removed.
    """
    with removing(docs_dir, name, known):
        pass
    return name


@contextmanager
def removing(docs_dir: Path, name: str, known: Collection[str] | None = None) -> Iterator[str]:
    """Remove a document only if the block (re-indexing, say) succeeds, so that the folder
    and the index never disagree: meanwhile the file waits under a hidden name (hidden files
    are not documents); it is put back if the block raises, and deleted otherwise."""
    path = _document_path(docs_dir, name, known)
    aside = path.with_name(f".{path.name}.removing-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.rename(path, aside)
    except OSError as error:
        raise RagError(f"cannot remove {name}: {error.strerror or error}") from None
    try:
        yield name
    except BaseException:
        os.rename(aside, path)
        raise
    try:
        aside.unlink()
    except OSError as error:
        raise RagError(
            f"removed {name}, but its copy {aside.name} could not be deleted: {error.strerror or error}"
        ) from None
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# -- the folder and its index, in step ---------------------------------------------------------
class Indexed(Protocol):
    """What a Library works through: the Assistant (settings, its index, re-indexing)."""

    settings: Settings

    @property
    def index(self) -> Store: ...

    def update_index(
        self, rebuild: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> UpdateReport: ...


@dataclass
class Added:
    """What became of a batch of uploads."""

    added: list[str] = field(default_factory=list)  # stored and indexed (none if re-indexing failed)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, why), nothing stored
    notes: dict[str, str] = field(default_factory=dict)  # added, but the reader skipped it or had a caveat
    failed: str | None = None  # why re-indexing failed; the added files were taken out again


class Library:
    """The documents folder of an Assistant, changed only together with its index.

    Removing a document takes it out of the index and leaves its file where it is (the folder
    is the user's); the removal is remembered in the index folder (rag/library_records.py)
    and can be undone. Only a file the chat itself uploaded, unchanged since, can be deleted,
    and only when the caller names it again as confirmation.
    """

    def __init__(self, owner: Indexed) -> None:
        self.owner = owner

    @property
    def files(self) -> dict[str, dict]:
        """The indexed documents: name -> {"sha256", "language", "paragraphs", "chunks"}."""
        return self.owner.index.files

    @property
    def _index_dir(self) -> Path:
        return self.owner.settings.index_dir

    @property
    def excluded(self) -> tuple[str, ...]:
        """The documents taken out of the index, oldest first; their files stay in the folder."""
        return read_records(self._index_dir).excluded

    def add(
        self,
        uploads: Sequence[tuple[str, Path | bytes]],
        *,
        replace: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Added:
        """Store each (name, file or bytes) that passes the checks, then re-index once
        (`progress(stage, done, total)` as in rag.index). An added name that had been removed
        from the index is included again; each stored file is recorded as the chat's upload."""
        docs_dir = self.owner.settings.docs_dir
        result = Added()
        for name, source in uploads:
            try:
                result.added.append(
                    add_document(docs_dir, name, source, max_bytes=max_bytes, replace=replace, known=self.files)
                )
            except RagError as error:
                result.rejected.append((name, str(error)))
        if not result.added:
            return result
        before = read_records(self._index_dir)
        records = before.including(set(result.added))
        for name in result.added:
            records = records.with_upload(name, _sha256(_documents_folder(docs_dir) / name))
        try:
            write_records(self._index_dir, records)
            report = self.owner.update_index(progress=progress)
        except Exception as error:
            for name in result.added:  # leave the folder as the index knows it, whatever went wrong
                try:
                    remove_document(docs_dir, name)
                except RagError:
                    pass
            _restore(self._index_dir, before)
            if not isinstance(error, RagError):
                raise
            result.added, result.failed = [], str(error)
            return result
        skipped = {s.file: s.reason for s in report.skipped}
        result.notes = {name: skipped[name] for name in result.added if name in skipped}
        return result

    def remove(self, name: str) -> UpdateReport:
        """Take one indexed document out of the index, for good (re-indexing leaves it out), and
        leave its file where it is; RagError if it is not indexed. `include` undoes it."""
        if not isinstance(name, str) or not name:
            raise RagError("no document chosen")
        if name not in self.files:
            raise RagError(f"{name} is not in the index")
        before = read_records(self._index_dir)
        write_records(self._index_dir, before.excluding(name))
        return self._update_or_restore(before)

    def include(
        self,
        names: Sequence[str],
        rebuild: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> UpdateReport:
        """Bring documents removed from the index back into it (undo a removal)."""
        if not names:
            raise RagError("no removed document named")
        before = read_records(self._index_dir)
        unknown = [name for name in names if name not in before.excluded]
        if unknown:
            listed = ", ".join(before.excluded) or "none"
            raise RagError(f"{unknown[0]} was not removed from the index (removed: {listed})")
        write_records(self._index_dir, before.including(set(names)))
        return self._update_or_restore(before, rebuild, progress)

    def uploaded_by_chat(self, name: str) -> bool:
        """True if the chat wrote this file and it is unchanged since: only then may it be deleted."""
        recorded = read_records(self._index_dir).uploaded.get(name) if isinstance(name, str) else None
        if recorded is None:
            return False
        try:
            path = _document_path(self.owner.settings.docs_dir, name, None)
        except RagError:
            return False
        return not path.is_symlink() and _sha256(path) == recorded

    def delete(self, name: str, *, confirm: str) -> None:
        """Delete a file the chat uploaded from the documents folder (and the index), when
        `confirm` repeats its name; RagError for any other file: the folder is the user's."""
        if not isinstance(name, str) or not name or confirm != name:
            raise RagError("deleting a file needs a confirmation naming it")
        if not self.uploaded_by_chat(name):
            raise RagError(f"{name} was not uploaded in the chat (or has changed since); only you can delete it")
        before = read_records(self._index_dir)
        indexed = name in self.files
        with removing(self.owner.settings.docs_dir, name):
            if indexed:  # if re-indexing fails, the file is put back
                self.owner.update_index()
        write_records(self._index_dir, before.including({name}).without_upload(name))

    def _update_or_restore(
        self,
        before: LibraryRecords,
        rebuild: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> UpdateReport:
        try:
            return self.owner.update_index(rebuild=rebuild, progress=progress)
        except BaseException:
            _restore(self._index_dir, before)
            raise


def _restore(index_dir: Path, records: LibraryRecords) -> None:
    try:
        write_records(index_dir, records)
    except RagError:
        pass


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
