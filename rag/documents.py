"""Documents and their paragraphs: the only place that reads the documents folder.

The paragraph rule: a paragraph is one non-blank line of the file (blank means nothing
but whitespace, non-breaking spaces included), with its surrounding whitespace removed.
Paragraphs are numbered from 1 within their file, counting only non-blank lines.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import RagError
from .language import detect_language

DOCUMENT_SUFFIXES = (".txt", ".md")
# Larger files are refused rather than read into memory whole.
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Paragraph:
    file: str  # path relative to the documents folder, with forward slashes
    number: int  # from 1 within its file
    text: str


@dataclass(frozen=True)
class Document:
    file: str
    sha256: str
    language: str
    paragraphs: tuple[Paragraph, ...]


@dataclass(frozen=True)
class Skipped:
    """A file that was not read, or read with a caveat, and why: reported, never fatal."""

    file: str
    reason: str


def split_paragraphs(file: str, text: str) -> tuple[Paragraph, ...]:
    lines = (line.strip() for line in text.splitlines())
    return tuple(Paragraph(file, number, line) for number, line in enumerate(filter(None, lines), 1))


def decode(data: bytes) -> tuple[str, bool]:
    """The text of a file and whether it was valid UTF-8 (otherwise bad bytes become U+FFFD)."""
    try:
        return data.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), False


def document_files(folder: Path, skipped: list[Skipped] | None = None) -> list[Path]:
    """The document files under `folder`, sorted; symlinks leading outside it are not followed
    (and, with a `skipped` list, reported there), nor are symlinked folders."""
    if not folder.is_dir():
        raise RagError(f"documents folder not found: {folder}")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise RagError(f"documents folder is not readable: {folder}")
    root = folder.resolve()
    found = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        if skipped is not None:  # os.walk does not enter symlinked folders
            skipped.extend(Skipped(_shown(relative_name(folder, Path(directory, d))), "symlinked folder; not followed")
                           for d in subdirectories if os.path.islink(os.path.join(directory, d)))
        for name in names:
            path = Path(directory, name)
            if name.startswith(".") or path.suffix.lower() not in DOCUMENT_SUFFIXES:
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                if skipped is not None:
                    skipped.append(Skipped(_shown(relative_name(folder, path)),
                                           "symlink to a file outside the documents folder; not followed"))
                continue
            found.append(path)
    return sorted(found)


def relative_name(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


def _shown(name: str) -> str:
    """A file name as it can be printed and stored: undecodable bytes become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_document(folder: Path, path: Path) -> tuple[Document | None, Skipped | None]:
    """One document, or why it was skipped; a document read with a caveat comes with both."""
    name = relative_name(folder, path)
    if _shown(name) != name:  # the index stores names as UTF-8 text
        return None, Skipped(_shown(name), "file name is not valid UTF-8; rename the file")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            return None, Skipped(name, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            return None, Skipped(name, f"larger than {MAX_FILE_BYTES // 2**20} MB ({info.st_size / 2**20:.0f} MB)")
        with path.open("rb") as handle:  # bounded, even if the file grows meanwhile
            data = handle.read(info.st_size + 1)
            if len(data) > info.st_size:
                data += handle.read(MAX_FILE_BYTES + 1 - len(data))
    except OSError as error:
        return None, Skipped(name, f"unreadable ({error.strerror or error})")
    if len(data) > MAX_FILE_BYTES:
        return None, Skipped(name, f"larger than {MAX_FILE_BYTES // 2**20} MB")
    if b"\x00" in data[:8192]:
        return None, Skipped(name, "binary content, not text")
    text, valid = decode(data)
    paragraphs = split_paragraphs(name, text)
    if not paragraphs:
        return None, Skipped(name, "empty")
    sample = " ".join(p.text for p in paragraphs[:40])
    document = Document(name, hashlib.sha256(data).hexdigest(), detect_language(sample), paragraphs)
    return document, None if valid else Skipped(name, "not valid UTF-8; undecodable bytes replaced")


def read_documents(folder: Path) -> tuple[list[Document], list[Skipped]]:
    documents, skipped = [], []
    first_with_content: dict[str, str] = {}
    for path in document_files(folder, skipped):
        document, problem = read_document(folder, path)
        if problem:
            skipped.append(problem)
        if document is None:
            continue
        # A copy of a file would only crowd the retrieved passages with the same text twice.
        original = first_with_content.setdefault(document.sha256, document.file)
        if original != document.file:
            skipped.append(Skipped(document.file, f"same content as {original}"))
            continue
        documents.append(document)
    return documents, skipped
