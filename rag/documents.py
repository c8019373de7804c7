"""Documents and their paragraphs: the only place that reads the documents folder.

Each format's reader (rag/readers.py, chosen by suffix) turns a file into paragraphs by
its paragraph rule; for .txt and .md a paragraph is one non-blank line of the file (blank
means nothing but whitespace, non-breaking spaces included), with its surrounding
whitespace removed. In every format, a paragraph longer than MAX_PARAGRAPH_CHARS is cut
into several, at the last sentence end before the limit, else the last space, else at the
limit: one paragraph can then not make every question that touches it slow. Paragraphs are
numbered from 1 within their file as its reader counts them, and the pieces of a cut one
share its number, so a citation's ¶N is the paragraph a reader finds in the file; each piece
also has its own place among the file's pieces, the key the stores look it up by. A PDF
paragraph also knows its page, and whether it was read by OCR.

The folder is walked from open folder descriptors downwards and every file is opened once,
relative to its folder and without following symlinks (O_NOFOLLOW); what is read is what
that descriptor holds, so a name switched to a symlink between listing and reading cannot
bring in a file from elsewhere.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import RagError
from .language import detect_language
from .readers import READERS, Block, Unreadable, text_blocks
from .text import SENTENCE_END

DOCUMENT_SUFFIXES = tuple(READERS)
# Longer paragraphs become several (see the module docstring).
MAX_PARAGRAPH_CHARS = 2000
# A title longer than this is cut (it is shown in a list).
MAX_TITLE_CHARS = 120
# Paragraphs a title may be taken from, when the first one is a poor title.
TITLE_PARAGRAPHS = 5
# Where a long title may be cut: after a clause or sentence end, else between words.
_CLAUSE_END = re.compile(r"(?<=[,;:.!?，、；：。！？])\s*")
_WORD_END = re.compile(r"\s+")
# A single word joined by `_`, or in camelCase (a capital between lower-case letters).
_IDENTIFIER = re.compile(r"\w_\w|[a-z][A-Z][a-z]")
# Eight or more hex digits with a digit among them: a hash or generated id, not a word.
_HASH_LIKE = re.compile(r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}")
# An address (`https://…`, `www.…`, and any `scheme:…`: a browser's printed page is titled
# `about:blank`, a saved one `file:///…`).
_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.\-]*:|www\.)\S", re.IGNORECASE)
# Why an excluded file is not read (see rag/library_records.py).
EXCLUDED = "removed from the index (the file stays)"
# PATH_MAX (4096) less the terminating NUL: a longer path cannot be opened by name, so a
# document there could be indexed but never opened or removed by name again.
MAX_PATH_BYTES = 4095

# Where a long paragraph may be cut: after a sentence end, else after a space.
_SPACE = re.compile(r"\s+")
_OPEN_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO put in a file's place after the listing does not block the open.
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class Paragraph:
    file: str  # path relative to the documents folder, with forward slashes
    number: int  # from 1 within its file, as its reader counts (¶N): shared by the pieces of a cut one
    piece: int  # from 1 within its file, counting every piece: the key chunks and stores use
    text: str
    page: int | None = None  # from 1, for formats with pages (PDF)
    ocr: bool = False  # read by OCR from an image of the page


@dataclass(frozen=True)
class Document:
    file: str
    sha256: str
    language: str
    paragraphs: tuple[Paragraph, ...]
    title: str = ""  # the document's title or first heading, else its first paragraph
    reader: str = "text 1"  # what the reading depends on besides the bytes (see rag.readers.Reader)


@dataclass(frozen=True)
class Skipped:
    """A file that was not read, or read with a caveat, and why: reported, never fatal."""

    file: str
    reason: str


def _cut(line: str) -> Iterator[str]:
    """A paragraph's text in pieces of at most MAX_PARAGRAPH_CHARS characters (positions, not
    slices of the rest, so a 20 MB line costs linear time)."""
    start = 0
    while len(line) - start > MAX_PARAGRAPH_CHARS:
        limit = start + MAX_PARAGRAPH_CHARS
        window = line[start : limit + 1]  # a sentence end right at the limit counts
        cut = max((m.end() for m in SENTENCE_END.finditer(window) if 0 < m.start() <= MAX_PARAGRAPH_CHARS), default=0)
        if not cut:
            cut = max(
                (m.end() for m in _SPACE.finditer(window) if 0 < m.start() <= MAX_PARAGRAPH_CHARS),
                default=MAX_PARAGRAPH_CHARS,
            )
        yield window[:cut].rstrip()
        start += cut
        while start < len(line) and line[start].isspace():
            start += 1
    if start < len(line):
        yield line[start:]


def numbered(file: str, blocks: list[Block]) -> tuple[Paragraph, ...]:
    """A reader's blocks as the file's paragraphs, numbered from 1; a long one is cut into
    pieces that keep its number."""
    pieces = (
        (number, text, block)
        for number, block in enumerate((b for b in blocks if b.text), 1)
        for text in _cut(block.text)
    )
    return tuple(
        Paragraph(file, number, piece, text, block.page, block.ocr)
        for piece, (number, text, block) in enumerate(pieces, 1)
    )


def split_paragraphs(file: str, text: str) -> tuple[Paragraph, ...]:
    """The paragraphs of a .txt or .md file's text."""
    return numbered(file, list(text_blocks(text)))


def _shown(name: str) -> str:
    """A file name as it can be printed and stored: undecodable bytes become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_document_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in DOCUMENT_SUFFIXES


def _listing(folder: int) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _open_files(folder: Path, skipped: list[Skipped], excluded: Collection[str] = ()) -> Iterator[tuple[str, int]]:
    """(relative name, open descriptor of a regular file) for every document under `folder`;
    the caller closes each descriptor. Hidden names are passed over; symlinks, other kinds
    of file, folders that cannot be read, paths too long to open and `excluded` names are reported."""
    try:
        root = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the folder itself was named by the user
        listing = _listing(root)
    except OSError as error:
        raise RagError(f"documents folder is not readable: {folder} ({error.strerror or error})") from None
    base_bytes = len(os.fsencode(folder)) + 1
    # Depth first, in name order, holding the descriptors of the folders on the way down.
    stack: list[tuple[int, str, Iterator[os.DirEntry]]] = [(root, "", iter(listing))]
    try:
        while stack:
            parent, prefix, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                os.close(parent)
                stack.pop()
                continue
            name, relative = entry.name, prefix + entry.name
            if name.startswith("."):
                continue
            try:
                is_link, is_folder = entry.is_symlink(), entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=False)
            except OSError:
                continue  # removed since the listing
            if not (is_folder or _is_document_name(name) or is_link):
                continue
            shown = _shown(relative)
            if base_bytes + len(os.fsencode(relative)) > MAX_PATH_BYTES:
                skipped.append(Skipped(shown, f"path longer than {MAX_PATH_BYTES} bytes; not read"))
            elif is_link:
                if _is_document_name(name):
                    skipped.append(Skipped(shown, "symlink; not followed"))
                elif _points_to_folder(parent, name):
                    skipped.append(Skipped(shown, "symlinked folder; not followed"))
            elif is_folder:
                try:
                    child = os.open(name, _OPEN_FOLDER, dir_fd=parent)
                except OSError as error:
                    skipped.append(Skipped(shown, _folder_problem(error)))
                    continue
                try:
                    listing = _listing(child)
                except OSError as error:
                    os.close(child)
                    skipped.append(Skipped(shown, _folder_problem(error)))
                    continue
                stack.append((child, relative + "/", iter(listing)))
            elif not is_file:
                skipped.append(Skipped(shown, "not a regular file"))  # a FIFO or device would block or never end
            elif shown != relative:  # the index stores names as UTF-8 text
                skipped.append(Skipped(shown, "file name is not valid UTF-8; rename the file"))
            elif relative in excluded:
                skipped.append(Skipped(shown, f"{EXCLUDED}; `rag index --include {relative}` brings it back"))
            else:
                try:
                    descriptor = os.open(name, _OPEN_FILE, dir_fd=parent)
                except OSError as error:
                    skipped.append(
                        Skipped(
                            shown,
                            "symlink; not followed"
                            if error.errno == errno.ELOOP
                            else f"unreadable ({error.strerror or error})",
                        )
                    )
                    continue
                yield relative, descriptor
    finally:
        for descriptor, _, _ in stack:
            os.close(descriptor)


def _points_to_folder(parent: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=parent).st_mode)
    except OSError:  # dangling, a loop, or gone
        return False


def _folder_problem(error: OSError) -> str:
    if error.errno in (errno.ELOOP, errno.ENOTDIR):  # replaced by a symlink since the listing
        return "symlinked folder; not followed"
    return f"folder not readable ({error.strerror or error}); its files are not indexed"


def _reader(name: str):
    return READERS[os.path.splitext(name)[1].lower()]


def _read(descriptor: int, limit: int) -> bytes | str:
    """The bytes of an open file, at most `limit`, or why they cannot be used; closes the descriptor."""
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):  # replaced by a folder, a FIFO or a device since the listing
        os.close(descriptor)
        return "not a regular file"
    with os.fdopen(descriptor, "rb") as handle:
        if info.st_size > limit:
            return f"larger than {limit // 2**20} MB ({info.st_size / 2**20:.0f} MB)"
        data = handle.read(info.st_size + 1)  # bounded, even if the file grows meanwhile
        if len(data) > info.st_size:
            data += handle.read(limit + 1 - len(data))
    if len(data) > limit:
        return f"larger than {limit // 2**20} MB"
    return data


def _document(name: str, data: bytes) -> tuple[Document | None, Skipped | None]:
    """One document from its bytes, or why it was skipped; a document read with a caveat comes with both."""
    reader = _reader(name)
    try:
        reading = reader.read(data)
    except Unreadable as error:
        return None, Skipped(name, str(error))
    paragraphs = numbered(name, reading.blocks)
    caveat = Skipped(name, "; ".join(reading.notes)) if reading.notes else None
    if not paragraphs:
        return None, Skipped(name, "; ".join(reading.notes) or "empty")
    sample = " ".join(p.text for p in paragraphs[:40])
    title = document_title(name, reading.title, [p.text for p in paragraphs[:TITLE_PARAGRAPHS]])
    document = Document(
        name, hashlib.sha256(data).hexdigest(), detect_language(sample), paragraphs, title, reader.version()
    )
    return document, caveat


def _shortened(text: str) -> str:
    """A title of at most MAX_TITLE_CHARS, cut at a clause or word end, never inside a word."""
    text = " ".join(text.lstrip("#").split())
    if len(text) <= MAX_TITLE_CHARS:
        return text
    window = text[: MAX_TITLE_CHARS - 1]
    for breaks in (_CLAUSE_END, _WORD_END):
        cuts = [m.start() for m in breaks.finditer(window) if m.start() >= MAX_TITLE_CHARS // 3]
        if cuts:
            return window[: cuts[-1]].rstrip(" ,;:、，") + "…"
    return window + "…"  # one long word or unspaced script: cut where it must be


def _poor_title(text: str) -> bool:
    """An identifier (`share_log`, `draftV2`), a hash-like or numeric name, an address, a file
    name (a converter's "Microsoft Word - report.docx"), or no words. Read as shown: a Markdown
    heading's marks and runs of white space left out."""
    text = " ".join(text.lstrip("#").split())
    words = text.split()
    if not any(c.isalpha() for c in text) or _ADDRESS.match(words[0]):
        return True
    if words[-1].casefold().endswith(DOCUMENT_SUFFIXES):
        return True
    return len(words) == 1 and bool(_IDENTIFIER.search(text) or _HASH_LIKE.search(text))


def _cleaned_name(name: str) -> str:
    """A file name as words: folder and suffix dropped, `_` and `-` as spaces, hash-like parts left out."""
    stem = os.path.splitext(name.rsplit("/", 1)[-1])[0]
    words = [w for w in re.split(r"[\s_\-.]+", stem) if w and not _HASH_LIKE.fullmatch(w)]
    return " ".join(words)


def document_title(name: str, own_title: str | None, first_paragraphs: list[str]) -> str:
    """The title shown for a document: its own (a DOCX title, the HTML <title>, PDF metadata),
    else its first paragraph; when that is poor (an identifier, a hash, a link), the file
    name as words, else the first good title among the next paragraphs, else the file name."""
    candidates = [own_title] if own_title else []
    candidates += first_paragraphs[:1]
    for text in candidates:
        if not _poor_title(text):
            return _shortened(text)
    cleaned = _cleaned_name(name)
    if cleaned and not _poor_title(cleaned):
        return _shortened(cleaned)
    for text in first_paragraphs[1:]:
        if not _poor_title(text):
            return _shortened(text)
    return name


def retitle_stored(files: dict[str, dict], first_paragraphs: Callable[[str, int], list[str]]) -> None:
    """The titles an index stored (its manifest's `files`), made as the rule now makes them where
    they are poor: an index built before the rule knew `about:blank` or "Microsoft Word - x.docx"
    keeps one until `rag index` runs. The document's own title is not stored, so its first
    paragraphs decide, read only for such a file (`first_paragraphs(file, n)`: the texts of its
    first n stored pieces). A good title stays, and so does none (a record made without one:
    every store shows it the same)."""
    for file, info in files.items():
        title = info.get("title") if isinstance(info, dict) else None
        if title and _poor_title(title):
            info["title"] = document_title(file, None, first_paragraphs(file, TITLE_PARAGRAPHS))


def document_stats(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, modification time in ns) of every file `read_documents` would read, without
    reading any: what tells cheaply whether the folder changed since it was indexed."""
    if not folder.is_dir():
        raise RagError(f"documents folder not found: {folder}")
    stats = {}
    for name, descriptor in _open_files(folder, []):
        try:
            info = os.fstat(descriptor)
        finally:
            os.close(descriptor)
        stats[name] = (info.st_size, info.st_mtime_ns)
    return stats


def file_sha256(folder: Path, name: str) -> str | None:
    """The sha256 of a document's bytes, as `read_documents` computes it; None if it cannot be
    read (gone, replaced by a symlink)."""
    try:
        descriptor = os.open(folder / name, _OPEN_FILE)
        with os.fdopen(descriptor, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def read_documents(
    folder: Path, progress: Callable[[int], None] | None = None, excluded: Collection[str] = ()
) -> tuple[list[Document], list[Skipped]]:
    """Every document under `folder` in name order but the `excluded` names (relative, with
    forward slashes), and every file skipped or read with a caveat; `progress` gets the number
    of files read so far."""
    if not folder.is_dir():
        raise RagError(f"documents folder not found: {folder}")
    read: list[Document] = []
    skipped: list[Skipped] = []
    for count, (name, descriptor) in enumerate(_open_files(folder, skipped, frozenset(excluded)), 1):
        try:
            data = _read(descriptor, _reader(name).max_bytes)
        except OSError as error:
            data = f"unreadable ({error.strerror or error})"
        document, problem = (None, Skipped(name, data)) if isinstance(data, str) else _document(name, data)
        if problem:
            skipped.append(problem)
        if document:
            read.append(document)
        if progress:
            progress(count)
    documents: list[Document] = []
    first_with_content: dict[str, str] = {}
    for document in sorted(read, key=lambda d: d.file.split("/")):
        # A copy of a file would only crowd the retrieved passages with the same text twice.
        original = first_with_content.setdefault(document.sha256, document.file)
        if original != document.file:
            skipped.append(Skipped(document.file, f"same content as {original}"))
            continue
        documents.append(document)
    return documents, skipped
