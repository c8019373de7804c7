"""The index folder: FAISS vectors, BM25 keywords, chunk and paragraph tables, a manifest.

Layout: `index/CURRENT` names the live generation folder `index/gen-*`; a build writes a
whole new generation, then replaces CURRENT atomically (os.replace), so a reader sees the
old index or the new one and never half of either. CURRENT also holds the manifest's
sha256 and the manifest holds every other file's, so truncation or tampering is detected
on load. One writer at a time: `index/.lock`.

The index folder is the project's own: a build only writes into a folder that is empty,
new, or already an index (`index/OWNED` lists every name a build created there), and it
only ever deletes names that list holds, so a user's file that happens to be called
`gen-*` is never touched.

Vectors are stored centred per language: multilingual-e5 scores a question higher
against any text in its own language, which buries the right passage in another
language. Subtracting each language's mean vector (shrunk towards the global mean when
a language has few chunks) removes that offset from every inner product (its effect on
eval/gold.jsonl: docs/evaluation.md). The offsets are kept, so true cosine similarities
can still be computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .chunking import Chunk, ChunkingSettings
from .documents import Document, Paragraph, document_stats, read_documents, retitle_stored
from .embedding import Embedder
from .errors import RagError
from .keywords import KeywordIndex, top_positive
from .library_records import RECORDS
from .settings import INDEX_TYPES
from .store import (
    INDEX_FORMAT,
    Progress,
    Store,
    StoreBackend,
    UpdateReport,
    centred,
    language_offsets,
    manifest_of,
    new_manifest,
    plan_update,
    plan_vectors,
    rebuild_reason,
    record_stats,
    stats_changed,
)

CURRENT = "CURRENT"
# The names (generation folders, pointer drafts) builds created in the index folder, and
# the mark that the folder is an index: only these are ever deleted.
OWNED = "OWNED"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
CHUNKS = "chunks.jsonl"
PARAGRAPHS = "paragraphs.jsonl"
KEYWORDS = "keywords"
OFFSETS = "language_offsets.npz"
# What CURRENT may name: a generation folder directly inside the index folder.
_GENERATION = re.compile(r"gen-[A-Za-z0-9_-]+")
# The names a build gives what it creates in the index folder (_write_generation): only these,
# when also recorded in OWNED, are ever removed.
_BUILT = re.compile(r"gen-\d{8}-\d{6}-[0-9a-f]{8}|CURRENT\.tmp-\d+")
# Sizes and mtimes of the files the last load hashed and found intact (see _verify_files).
VERIFIED = "verified.json"
# What a build or a load writes inside a generation folder.
_GENERATION_FILE = re.compile(
    "|".join(re.escape(name) for name in (MANIFEST, VECTORS, CHUNKS, PARAGRAPHS, KEYWORDS, OFFSETS, VERIFIED))
    + rf"|{re.escape(VERIFIED)}\.tmp-\d+"
)
# A search limited to at most this many rows (a scope) scores them exactly, without FAISS.
EXACT_ROWS = 20_000
# Seconds a second writer waits for the first before giving up.
LOCK_TIMEOUT = 600
# Times a reader loads the live generation when builds keep replacing it meanwhile.
LOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class Index(Store):
    """The FAISS store: one generation folder, loaded whole into memory."""

    folder: Path  # the generation folder it was loaded from
    manifest: dict
    chunks: list[Chunk]
    paragraphs: dict[str, list[str]]  # file -> texts of its paragraph pieces; piece n is [n - 1]
    # file -> (page, read by OCR) of each piece, for files with pages (PDF) only
    places: dict[str, list[tuple[int | None, bool]]]
    # file -> the paragraph number (¶) of each piece, for files with a cut paragraph only
    numbers: dict[str, list[int]]
    vectors: object  # faiss.Index of language-centred vectors
    keywords: KeywordIndex
    offsets: dict[str, np.ndarray]  # language -> vector subtracted from its chunks' vectors
    rows_by_language: dict[str, np.ndarray] = field(default_factory=dict)
    # file -> its rows, built on the first scoped search (a cold question needs none)
    _rows_by_file: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    # language -> FAISS search parameters selecting its rows, built once on first use (building
    # the selector costs more than the filtered search itself).
    _language_filters: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        languages = np.array([c.language for c in self.chunks])
        for language in set(languages):
            self.rows_by_language[language] = np.flatnonzero(languages == language).astype(np.int64)

    @property
    def chunk_count(self) -> int:
        return len(self.chunks)

    def chunks_at(self, rows: list[int]) -> list[Chunk]:
        return [self.chunks[row] for row in rows]

    def chunks_by_file(self) -> dict[str, list[tuple[int, Chunk]]]:
        by_file: dict[str, list[tuple[int, Chunk]]] = {}
        for row, chunk in enumerate(self.chunks):
            by_file.setdefault(chunk.file, []).append((row, chunk))
        return by_file

    def paragraph(self, file: str, piece: int) -> Paragraph:
        text = self.paragraphs[file][piece - 1]
        page, ocr = self.places[file][piece - 1] if file in self.places else (None, False)
        number = self.numbers[file][piece - 1] if file in self.numbers else piece
        return Paragraph(file, number, piece, text, page, ocr)

    def paragraphs_of(self, file: str) -> list[Paragraph]:
        return [self.paragraph(file, piece) for piece in range(1, len(self.paragraphs.get(file, [])) + 1)]

    def rows_of(self, files: frozenset[str]) -> np.ndarray:
        """The rows of `files`' chunks, in order."""
        if not self._rows_by_file:  # filled in one step: another thread sees all of it or none
            self._rows_by_file.update(
                {
                    file: np.array([row for row, _ in rows], dtype=np.int64)
                    for file, rows in self.chunks_by_file().items()
                }
            )
        parts = [self._rows_by_file[file] for file in files if file in self._rows_by_file]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def search(
        self, query: np.ndarray, k: int, language: str | None = None, files: frozenset[str] | None = None
    ) -> list[tuple[int, float]]:
        import faiss

        if files is not None:
            rows = self.rows_of(files)
            if language is not None:
                rows = np.intersect1d(rows, self.rows_by_language.get(language, rows[:0]))
            return self._search_rows(query, k, rows)
        params = None
        if language is not None:
            rows = self.rows_by_language.get(language)
            if rows is None:
                return []
            if language not in self._language_filters:
                selector = faiss.IDSelectorBatch(rows)  # kept beside the parameters that point to it
                self._language_filters[language] = (faiss.SearchParameters(sel=selector), selector)
            params = self._language_filters[language][0]
        k = min(k, len(self.chunks))
        if k == 0:
            return []
        scores, rows = self.vectors.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def _search_rows(self, query: np.ndarray, k: int, rows: np.ndarray) -> list[tuple[int, float]]:
        """The k best of `rows` only: scored exactly when they are few (an approximate HNSW
        search filtered to a small part of the graph can miss them), else by FAISS with a
        selector of those rows."""
        import faiss

        k = min(k, len(rows))
        if k == 0:
            return []
        if len(rows) <= EXACT_ROWS:
            scores = self.vectors.reconstruct_batch(rows) @ query
            best = np.argsort(-scores, kind="stable")[:k]
            return [(int(rows[i]), float(scores[i])) for i in best]
        allowed = np.zeros(len(self.chunks), dtype=bool)
        allowed[rows] = True
        bitmap = np.packbits(allowed, bitorder="little")  # kept alive until the search returns
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        found_scores, found_rows = self.vectors.search(
            query.reshape(1, -1).astype(np.float32), k, params=faiss.SearchParameters(sel=selector)
        )
        return [(int(r), float(s)) for r, s in zip(found_rows[0], found_scores[0]) if r >= 0]

    def centred_scores(self, query: np.ndarray, rows: list[int]) -> np.ndarray:
        return self.vectors.reconstruct_batch(np.array(rows, dtype=np.int64)) @ query

    def keyword_search(self, question: str, n: int, files: frozenset[str] | None = None) -> dict[int, float]:
        scores = self.keywords.scores(question)
        if files is not None:  # only the scope's rows can rank
            allowed = np.zeros(len(scores), dtype=bool)
            allowed[self.rows_of(files)] = True
            scores = np.where(allowed, scores, 0.0)
        return {int(row): float(scores[row]) for row in top_positive(scores, n)}

    def raw_vectors(self, rows: list[int] | None = None) -> np.ndarray:
        """The chunks' own embeddings (offsets added back), of `rows` or of every row in order."""
        rows = np.arange(len(self.chunks)) if rows is None else np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros((0, self.vectors.d), dtype=np.float32)
        vectors = self.vectors.reconstruct_batch(rows)
        languages = np.array([self.chunks[row].language for row in rows])
        for language in set(languages):
            vectors[languages == language] += self.offsets[language]
        return vectors


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def exists(index_dir: Path) -> bool:
    """True if the index folder has a pointer: a regular file CURRENT (a symlink is none)."""
    try:
        return stat.S_ISREG(os.lstat(index_dir / CURRENT).st_mode)
    except OSError:
        return False


def _current_generation(index_dir: Path) -> tuple[Path, str]:
    """The live generation folder and its manifest's sha256, from CURRENT, which is read
    without following a symlink and must name a generation folder directly inside index_dir."""
    path = index_dir / CURRENT
    corrupt = f"index pointer {path} is corrupt; rebuild with `rag index --rebuild`"
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RagError(f"no index in {index_dir} (build one with `rag index`)") from None
    except NotADirectoryError:
        raise RagError(f"the index folder {index_dir} is a file, not a folder; choose another --index") from None
    except OSError as error:  # ELOOP: a symlink
        raise RagError(
            f"index pointer {path} is not a file ({error.strerror or error}); run `rag index` to repair it"
        ) from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise RagError(f"index pointer {path} is not a file; run `rag index` to repair it")
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(4096)
    try:
        pointer = json.loads(data)
        generation, manifest_sha = pointer["generation"], pointer["manifest_sha256"]
    except (ValueError, KeyError, TypeError):
        raise RagError(corrupt) from None
    if not (isinstance(generation, str) and _GENERATION.fullmatch(generation) and isinstance(manifest_sha, str)):
        raise RagError(corrupt)
    folder = index_dir / generation
    if folder.is_symlink():  # the index is read from inside the index folder only
        raise RagError(f"index generation {folder} is a symlink; rebuild with `rag index --rebuild`")
    return folder, manifest_sha


def _set_aside_broken_pointer(index_dir: Path) -> str | None:
    """A CURRENT that is not a regular file (a folder, a symlink) cannot be replaced by the
    next build's pointer: rename it out of the way (it is not ours to delete); what was done."""
    path = index_dir / CURRENT
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            return None
        aside = index_dir / f"{CURRENT}.set-aside-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RagError(
            f"index pointer {path} is not a file and cannot be moved aside "
            f"({error.strerror or error}); remove it and run `rag index`"
        ) from None
    return f"{path} was not a file; moved aside to {aside.name}"


def _verify_files(folder: Path, checksums: dict[str, str], rebuild: str) -> None:
    """Check every file against its sha256, unless none changed (size, mtime) since the last
    load verified them all: a generation is never rewritten, and hashing a large index took
    a noticeable part of a cold question. A file that is truncated or written to gets a new
    size or mtime, and is hashed again."""
    stats = {}
    for name in checksums:
        info = (folder / name).stat(follow_symlinks=False)  # a file swapped for a link is hashed
        stats[name] = [info.st_size, info.st_mtime_ns]
    try:
        if json.loads((folder / VERIFIED).read_text(encoding="utf-8")) == stats:
            return
    except (OSError, ValueError):
        pass
    for name, expected in checksums.items():
        if _sha256(folder / name) != expected:
            raise RagError(f"index file {folder / name} is corrupt (checksum mismatch); {rebuild}")
    draft = folder / f"{VERIFIED}.tmp-{os.getpid()}"
    try:
        draft.write_text(json.dumps(stats), encoding="utf-8")
        os.replace(draft, folder / VERIFIED)
    except OSError:  # a read-only index: verified again next time
        draft.unlink(missing_ok=True)


def load_index(index_dir: Path) -> Index:
    """The live index, verified against its checksums; RagError if missing or corrupt."""
    folder, manifest_sha = _current_generation(index_dir)
    attempts = 1
    while True:
        try:
            return _load_generation(index_dir, folder, manifest_sha)
        except RagError:
            # A build may have made another generation live and removed this one while it
            # was being read: then the live one is read instead.
            live, live_sha = _current_generation(index_dir)
            if live == folder or attempts == LOAD_ATTEMPTS:
                raise
            folder, manifest_sha, attempts = live, live_sha, attempts + 1


def _load_generation(index_dir: Path, folder: Path, manifest_sha: str) -> Index:
    import faiss

    rebuild = "rebuild with `rag index --rebuild`"
    try:
        if _sha256(folder / MANIFEST) != manifest_sha:
            raise RagError(f"index manifest {folder / MANIFEST} does not match its checksum; {rebuild}")
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise RagError(f"index manifest {folder / MANIFEST} is not an index manifest; {rebuild}")
        if manifest.get("format") != INDEX_FORMAT:
            raise RagError(
                f"the index in {index_dir} was built by another version of polyglot-rag; run `rag index` to rebuild it"
            )
        if not all(isinstance(manifest.get(key), dict) for key in ("checksums", "files", "embedder")):
            raise RagError(f"index manifest {folder / MANIFEST} is not an index manifest; {rebuild}")
        _verify_files(folder, manifest["checksums"], rebuild)
        chunks = [Chunk(**row) for row in _read_jsonl(folder / CHUNKS)]
        paragraphs: dict[str, list[str]] = {}
        places: dict[str, list[tuple[int | None, bool]]] = {}
        numbers: dict[str, list[int]] = {}
        for row in _read_jsonl(folder / PARAGRAPHS):
            paragraphs.setdefault(row["file"], []).append(row["text"])
            numbers.setdefault(row["file"], []).append(int(row["number"]))
            if row.get("page") is not None:
                places.setdefault(row["file"], []).append((row["page"], bool(row.get("ocr"))))
        # Only files with a cut paragraph keep their numbers: elsewhere a piece's number is its place.
        numbers = {file: values for file, values in numbers.items() if values[-1] != len(values)}
        vectors = faiss.read_index(str(folder / VECTORS))
        keywords = KeywordIndex.load(folder / KEYWORDS)
        with np.load(folder / OFFSETS) as stored:
            offsets = {language: stored[language] for language in stored.files}
    except FileNotFoundError as error:
        raise RagError(f"index file missing: {error.filename}; {rebuild}") from None
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise RagError(f"index in {folder} is unreadable ({str(error).splitlines()[0]}); {rebuild}") from None
    except OSError as error:  # a folder where a file should be, no permission, an I/O error
        raise RagError(f"cannot read the index in {folder} ({error.strerror or error}); {rebuild}") from None
    if vectors.ntotal != len(chunks):
        raise RagError(f"index in {folder} has {vectors.ntotal} vectors for {len(chunks)} chunks; {rebuild}")
    if any(len(places[file]) != len(paragraphs[file]) for file in places):
        raise RagError(f"index in {folder} has paragraphs without a page in a paged file; {rebuild}")
    retitle_stored(manifest["files"], lambda file, n: paragraphs.get(file, [])[:n])
    return Index(folder, manifest, chunks, paragraphs, places, numbers, vectors, keywords, offsets)


def _new_vector_index(dim: int, index_type: str):
    import faiss

    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 64
        return index
    return faiss.IndexFlatIP(dim)


def _check_index_type(index_type: str) -> None:
    if index_type not in INDEX_TYPES:
        raise RagError(f"index type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}")


def write_index(
    index_dir: Path,
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    embedder: Embedder,
    chunking: ChunkingSettings,
    index_type: str = "flat",
) -> Path:
    """Write chunks embedded elsewhere (in document order, one vector each) as the current index
    of a new or empty `index_dir`, e.g. a synthetic corpus too large to embed; its generation folder."""
    _check_index_type(index_type)
    manifest = manifest_of(documents, chunks, vectors, embedder, chunking, index_type)
    index_dir.mkdir(parents=True, exist_ok=True)
    return _write_generation(index_dir, manifest, chunks, documents, vectors)


def _write_generation(
    index_dir: Path, manifest: dict, chunks: list[Chunk], documents: list[Document], vectors: np.ndarray
) -> Path:
    """Write a complete generation folder and make it current; the old one stays until then."""
    import faiss

    folder = _own(index_dir, f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}")
    folder.mkdir()
    languages = [c.language for c in chunks]
    offsets = language_offsets(vectors, languages)
    vector_index = _new_vector_index(vectors.shape[1], manifest["index_type"])
    if len(vectors):
        vector_index.add(centred(vectors, languages, offsets))
    faiss.write_index(vector_index, str(folder / VECTORS))
    np.savez(folder / OFFSETS, **offsets)
    _write_jsonl(folder / CHUNKS, [asdict(c) for c in chunks])
    _write_jsonl(folder / PARAGRAPHS, [asdict(p) for d in documents for p in d.paragraphs])
    KeywordIndex.build([c.text for c in chunks]).save(folder / KEYWORDS)
    manifest["checksums"] = {
        p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    _fsync_tree(folder)
    pointer = _own(index_dir, f"{CURRENT}.tmp-{os.getpid()}")
    pointer.write_text(json.dumps({"generation": folder.name, "manifest_sha256": _sha256(folder / MANIFEST)}))
    with pointer.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, index_dir / CURRENT)
    return folder


def _owned(index_dir: Path) -> list[str]:
    try:
        names = json.loads((index_dir / OWNED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (ValueError, OSError) as error:
        raise RagError(
            f"{index_dir / OWNED} is unreadable ({error}); move the index folder away and "
            f"run `rag index` to build a new one"
        ) from None
    if not isinstance(names, list) or not all(isinstance(n, str) and "/" not in n for n in names):
        raise RagError(
            f"{index_dir / OWNED} is not a list of names; move the index folder away and "
            f"run `rag index` to build a new one"
        )
    return names


def _write_owned(index_dir: Path, names: list[str]) -> None:
    draft = index_dir / f"{OWNED}.tmp"
    draft.write_text(json.dumps(sorted(set(names))), encoding="utf-8")
    os.replace(draft, index_dir / OWNED)


def _own(index_dir: Path, name: str) -> Path:
    """Record `name` as created by a build before creating it, so a killed build's leftover is
    still known to be ours and is swept by the next build."""
    _write_owned(index_dir, _owned(index_dir) + [name])
    return index_dir / name


def claim_index_folder(index_dir: Path, docs_dir: Path) -> None:
    """Make sure a build may write into `index_dir`: refuse a documents folder, a folder inside
    or around it, a file, and a folder that holds anything but an index; mark a new one ours."""
    try:
        docs, index = docs_dir.resolve(), index_dir.resolve()
    except (OSError, RuntimeError) as error:  # Python 3.11 raises RuntimeError for a symlink loop
        raise RagError(f"cannot use the index folder {index_dir} ({error}); choose another --index") from None
    if index == docs or index.is_relative_to(docs) or docs.is_relative_to(index):
        raise RagError(
            f"the index folder {index_dir} and the documents folder {docs_dir} must be separate "
            f"(neither inside the other); choose another --index"
        )
    if index_dir.exists() and not index_dir.is_dir():
        raise RagError(f"the index folder {index_dir} is a file, not a folder; choose another --index")
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        if (index_dir / OWNED).is_file():
            return
        entries = {p.name for p in index_dir.iterdir()}
    except OSError as error:
        raise RagError(f"cannot use the index folder {index_dir} ({error.strerror or error})") from None
    legacy = _legacy_generation(index_dir)
    # The lock, and the library's records (rag/library_records.py), which `rag index --include`
    # or a chat's removal may write before any build, as Milvus keeps them here too.
    if entries - {".lock", RECORDS} and not legacy:
        raise RagError(
            f"the index folder {index_dir} is not empty and holds no index; choose an empty or new folder for --index"
        )
    # An index made before OWNED existed is used, but its generation was never recorded, so it
    # is never deleted: only what a build names and records itself is ours.
    _write_owned(index_dir, [])


def _legacy_generation(index_dir: Path) -> str | None:
    """The generation of an index made before OWNED existed, if CURRENT names a generation folder
    whose manifest is the one CURRENT records (so the pair is an index, not a user's files)."""
    try:
        folder, manifest_sha = _current_generation(index_dir)
        if folder.is_dir() and _sha256(folder / MANIFEST) == manifest_sha:
            return folder.name
    except (RagError, OSError):
        pass
    return None


def _remove_stale(index_dir: Path, keep: Path) -> None:
    """Old generations and leftovers of killed builds: names a build generated and recorded in
    OWNED, each checked again for the shape a build gives it, whatever OWNED or CURRENT says."""
    for name in _owned(index_dir):
        path = index_dir / name
        if path == keep or not _BUILT.fullmatch(name) or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            if _holds_only_built_files(path):
                shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    _write_owned(index_dir, [keep.name])


def _holds_only_built_files(folder: Path) -> bool:
    """True if every entry of a generation folder is one a build writes: a folder the user
    put something into is not removed."""
    try:
        return all(_GENERATION_FILE.fullmatch(entry.name) for entry in folder.iterdir())
    except OSError:
        return False


def _unwritable(index_dir: Path, error: OSError) -> RagError:
    where = f"{Path(error.filename).name}: " if error.filename else ""
    return RagError(
        f"cannot write the index in {index_dir} ({where}{error.strerror or error}); "
        f"make the folder writable or choose another --index"
    )


def _reusable(index_dir: Path, manifest: dict, rebuild: bool) -> tuple[Index | None, str | None]:
    """The current index if its vectors can be reused, else None and why not."""
    if rebuild:
        return None, "--rebuild asked"
    if not exists(index_dir):
        return None, "no index yet"
    try:
        old = load_index(index_dir)
    except RagError as error:
        return None, str(error).split(";")[0]
    reason = rebuild_reason(old.manifest, manifest)
    return (None, reason) if reason else (old, None)


def update_index(
    docs_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunking: ChunkingSettings,
    index_type: str = "flat",
    rebuild: bool = False,
    progress: Progress | None = None,
    excluded: Collection[str] = (),
) -> tuple[Index, UpdateReport]:
    """Bring the index in line with the documents folder (but the `excluded` names),
    re-embedding only changed files."""
    from filelock import FileLock, Timeout

    started = time.perf_counter()
    _check_index_type(index_type)
    stats = document_stats(docs_dir)  # before reading: see record_stats
    documents, skipped = read_documents(docs_dir, progress and (lambda count: progress("Reading", count, 0)), excluded)
    if not documents:  # an index of nothing answers nothing, and BM25 cannot be built on it
        example = f", e.g. {skipped[0].file}: {skipped[0].reason}" if skipped else ""
        raise RagError(
            f"no readable document in {docs_dir} ({len(skipped)} skipped{example}); add documents and run `rag index`"
        )
    # Read-only, on a read-only file system, or immutable: said before anything is embedded.
    if index_dir.is_dir() and not os.access(index_dir, os.W_OK):
        raise RagError(f"the index folder {index_dir} is read-only; make it writable or choose another --index")
    try:
        claim_index_folder(index_dir, docs_dir)
    except OSError as error:
        raise _unwritable(index_dir, error) from None
    try:
        lock = FileLock(str(index_dir / ".lock"), timeout=LOCK_TIMEOUT)
        lock.acquire()
    except Timeout:
        raise RagError(f"another process has been writing {index_dir} for {LOCK_TIMEOUT} s; try again later") from None
    except OSError as error:
        raise _unwritable(index_dir, error) from None
    try:
        manifest = new_manifest(embedder, chunking, index_type)
        set_aside = _set_aside_broken_pointer(index_dir)
        old, reason = _reusable(index_dir, manifest, rebuild)
        reason = f"{reason}; {set_aside}" if set_aside and reason else reason
        plan = plan_update(documents, skipped, manifest, old, reason, chunking, embedder, progress)
        record_stats(manifest, stats)
        report = plan.report
        if old and not report.changed and not stats_changed(old.manifest, manifest):
            try:
                _remove_stale(index_dir, keep=old.folder)  # leftovers of builds killed since the last one
            except OSError as error:
                raise _unwritable(index_dir, error) from None
            report.seconds = time.perf_counter() - started
            return old, report
        vectors = plan_vectors(plan, old, embedder, progress)
        try:
            folder = _write_generation(index_dir, manifest, plan.chunks, documents, vectors)
            _remove_stale(index_dir, keep=folder)
        except OSError as error:  # a full disk, a folder made read-only meanwhile
            raise _unwritable(index_dir, error) from None
    finally:
        lock.release()
    report.seconds = time.perf_counter() - started
    return load_index(index_dir), report


def _update_from_settings(
    settings, embedder, chunking, rebuild=False, progress=None, excluded=()
) -> tuple[Index, UpdateReport]:
    return update_index(
        settings.docs_dir, settings.index_dir, embedder, chunking, settings.index_type, rebuild, progress, excluded
    )


# The default store (rag/backends.py): the index folder named by --index.
STORE = StoreBackend(
    exists=lambda settings: exists(settings.index_dir),
    open=lambda settings: load_index(settings.index_dir),
    update=_update_from_settings,
    location=lambda settings: str(settings.index_dir),
)
