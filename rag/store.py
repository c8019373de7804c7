"""The store seam: where chunk vectors, keywords, paragraphs and file hashes live.

Two stores, chosen by `--store`: the FAISS index folder (rag/index.py, the default) and a
Milvus collection (rag/milvus_store.py: milvus-lite's embedded file, a Milvus server or a
cluster). Both keep the same rows in the same order, store the same language-centred
vectors and the same BM25 weights, so retrieval (rag/retrieval.py) ranks alike on either.

What is shared lives here, once: the incremental-update plan (which files are unchanged
and keep their vectors, which are re-embedded, which are gone) and the embedding of the
changed chunks. Each store only reads its own rows and writes a complete new generation,
which it makes current in one atomic step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .chunking import Chunk, ChunkingSettings, chunk_document
from .documents import Document, Paragraph, Skipped, document_stats, file_sha256
from .embedding import Embedder
from .errors import RagError

# Bumped when what a store holds changes meaning: an older store is then rebuilt.
# 3: lines split only at \n, \r\n, \r, and lines over 2,000 characters cut into paragraphs.
# 4: the pieces of a cut paragraph keep its number; chunks and paragraphs know their pieces.
INDEX_FORMAT = 4
# Passages embedded per batch (sorted by length, so a batch pads little).
EMBED_BATCH = 32

# Called as progress(stage, done, total) from the first file read on: stages "Reading" (files;
# total 0, not known in advance), "Chunking" (characters) and "Embedding" (chunks).
Progress = Callable[[str, int, int], None]


class Store:
    """What retrieval, passages and the UI read. Rows are 0..chunk_count-1 in build order."""

    manifest: dict  # format, embedder, chunking, index_type, files
    offsets: dict[str, np.ndarray]  # language -> vector subtracted from its chunks' vectors

    @property
    def files(self) -> dict[str, dict]:
        """file -> {"sha256", "language", "reader", "title", "paragraphs", "pieces", "chunks"}."""
        return self.manifest["files"]

    def cosine(self, query: np.ndarray, chunk: Chunk, centred_score: float) -> float:
        """The true cosine similarity of a chunk, from its centred score."""
        return centred_score + float(self.offsets[chunk.language] @ query)

    @property
    def chunk_count(self) -> int:
        raise NotImplementedError

    def chunks_at(self, rows: list[int]) -> list[Chunk]:
        raise NotImplementedError

    def chunks_by_file(self) -> dict[str, list[tuple[int, Chunk]]]:
        """Every chunk with its row, by file: what an update may reuse."""
        raise NotImplementedError

    def search(
        self, query: np.ndarray, k: int, language: str | None = None, files: frozenset[str] | None = None
    ) -> list[tuple[int, float]]:
        """(row, centred score) of the k best chunks for a normalised query vector, best
        first, among all chunks or only those in `language` and of `files` (a scope,
        rag/scope.py): the filter applies before the ranking, so a scope gets its own k best."""
        raise NotImplementedError

    def centred_scores(self, query: np.ndarray, rows: list[int]) -> np.ndarray:
        raise NotImplementedError

    def keyword_search(self, question: str, n: int, files: frozenset[str] | None = None) -> dict[int, float]:
        """Row -> BM25 score of the n best chunks with a positive score (of `files` only, if given)."""
        raise NotImplementedError

    def paragraph(self, file: str, piece: int) -> Paragraph:
        """A file's paragraph piece by its `piece` (see rag.documents.Paragraph)."""
        raise NotImplementedError

    def paragraphs_of(self, file: str) -> list[Paragraph]:
        """A file's paragraph pieces in order; piece n is [n - 1]."""
        raise NotImplementedError

    def raw_vectors(self, rows: list[int]) -> np.ndarray:
        """The chunks' own embeddings (offsets added back), in the order of `rows`."""
        raise NotImplementedError


@dataclass
class UpdateReport:
    """What an update did, for the CLI and UI to print."""

    rebuilt_reason: str | None = None  # why everything was re-embedded, if it was
    embedded_files: list[str] = field(default_factory=list)
    unchanged_files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    retitled_files: list[str] = field(default_factory=list)  # unchanged, but their title is made anew
    skipped: list[Skipped] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.rebuilt_reason or self.embedded_files or self.removed_files or self.retitled_files)

    def to_json(self) -> dict:
        data = asdict(self)
        data["skipped"] = [asdict(s) for s in self.skipped]
        return data


@dataclass(frozen=True)
class StoreBackend:
    """One kind of store, as rag/backends.py registers it; each function takes the settings."""

    exists: Callable[..., bool]  # (settings): is there a live index to open?
    open: Callable[..., Store]  # (settings): the live index; RagError if missing or corrupt
    # (settings, embedder, chunking, rebuild, progress, excluded): the index brought in line with
    # the documents folder but the excluded names, re-embedding only changed files, and what changed
    update: Callable[..., tuple[Store, UpdateReport]]
    location: Callable[..., str]  # (settings): where it lives, for messages (never a secret)


@dataclass
class UpdatePlan:
    """The next generation's rows: which come from the old store, which must be embedded."""

    manifest: dict
    chunks: list[Chunk]
    reused: list[tuple[int, int]]  # (new row, old row)
    to_embed: list[int]  # new rows
    report: UpdateReport


def new_manifest(embedder: Embedder, chunking: ChunkingSettings, index_type: str) -> dict:
    """What a store was built with (its files are added as they are indexed)."""
    return {
        "format": INDEX_FORMAT,
        "embedder": {"id": embedder.id, "dim": embedder.dim},
        "chunking": chunking.to_json(),
        "index_type": index_type,
        "files": {},
    }


def file_entry(document: Document, chunks: int) -> dict:
    return {
        "sha256": document.sha256,
        "language": document.language,
        "reader": document.reader,
        "title": document.title,
        "paragraphs": document.paragraphs[-1].number if document.paragraphs else 0,
        "pieces": len(document.paragraphs),
        "chunks": chunks,
    }


def manifest_of(
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    embedder: Embedder,
    chunking: ChunkingSettings,
    index_type: str,
) -> dict:
    """The manifest of chunks embedded elsewhere (in document order, one vector each), for a
    store written whole, e.g. a synthetic corpus too large to embed."""
    if len(vectors) != len(chunks):
        raise RagError(f"{len(vectors)} vectors for {len(chunks)} chunks")
    manifest = new_manifest(embedder, chunking, index_type)
    per_file: dict[str, int] = {}
    for chunk in chunks:
        per_file[chunk.file] = per_file.get(chunk.file, 0) + 1
    for document in documents:
        manifest["files"][document.file] = file_entry(document, per_file.get(document.file, 0))
    return manifest


def rebuild_reason(old_manifest: dict, manifest: dict) -> str | None:
    """Why an old store's vectors cannot be reused for `manifest`, or None if they can."""
    old_embedder, embedder = old_manifest.get("embedder") or {}, manifest["embedder"]
    if old_manifest.get("format") == manifest["format"] and old_embedder != embedder:
        # Never a mix of two vector spaces: say which, so that a changed default is understood.
        return f"embedder changed from {old_embedder.get('id')} to {embedder['id']}"
    for key in ("format", "embedder", "chunking", "index_type"):
        if old_manifest.get(key) != manifest[key]:
            return f"{key} changed"
    return None


def plan_update(
    documents: list[Document],
    skipped: list[Skipped],
    manifest: dict,
    old: Store | None,
    reason: str | None,
    chunking: ChunkingSettings,
    embedder: Embedder,
    progress: Progress | None = None,
) -> UpdatePlan:
    """Unchanged files (same sha256) keep their chunks and vectors; the rest are re-chunked."""
    report = UpdateReport(rebuilt_reason=reason, skipped=skipped)
    old_chunks = old.chunks_by_file() if old else {}
    if old:
        report.removed_files = sorted(set(old.files) - {d.file for d in documents})
    chunks: list[Chunk] = []
    reused: list[tuple[int, int]] = []
    to_embed: list[int] = []
    # Same bytes read the same way (rag.readers: e.g. OCR installed since) keep their vectors.
    unchanged = {
        d.file
        for d in documents
        if old
        and (info := old.files.get(d.file) or {}).get("sha256") == d.sha256
        and info.get("reader", "text 1") == d.reader
    }
    characters = [0, sum(len(p.text) + 1 for d in documents if d.file not in unchanged for p in d.paragraphs)]

    def chunked(count: int) -> None:
        characters[0] += count
        progress("Chunking", characters[0], characters[1])

    for document in documents:
        first_row = len(chunks)
        if document.file in unchanged:
            for old_row, chunk in old_chunks.get(document.file, []):
                reused.append((len(chunks), old_row))
                chunks.append(chunk)
            report.unchanged_files.append(document.file)
            if old.files[document.file].get("title") != document.title:  # titles made by an older rule
                report.retitled_files.append(document.file)
        else:
            new_chunks = chunk_document(document, chunking, embedder.count_tokens, progress and chunked)
            to_embed.extend(range(len(chunks), len(chunks) + len(new_chunks)))
            chunks.extend(new_chunks)
            report.embedded_files.append(document.file)
        manifest["files"][document.file] = file_entry(document, len(chunks) - first_row)
    report.chunks_total = len(chunks)
    report.chunks_embedded = len(to_embed)
    return UpdatePlan(manifest, chunks, reused, to_embed, report)


def record_stats(manifest: dict, stats: dict[str, tuple[int, int]]) -> None:
    """Note each file's size and mtime, taken before the folder was read (rag.documents.
    document_stats), in its manifest entry, or under "skipped" for a file that was not
    indexed: `folder_changes` compares them later without reading the files. Taken before
    the reading, a file written meanwhile differs from them and is hashed, never missed."""
    manifest["skipped"] = {}
    for file, (size, mtime_ns) in stats.items():
        if file in manifest["files"]:
            manifest["files"][file].update(size=size, mtime_ns=mtime_ns)
        else:
            manifest["skipped"][file] = [size, mtime_ns]


def stats_changed(old_manifest: dict, manifest: dict) -> bool:
    """Whether a build with nothing to re-embed must still write its manifest: a recorded
    size or mtime differs (a file touched, a skipped file edited), or a skipped file is not
    recorded, and `folder_changes` would otherwise hash or report it after every build. A
    manifest that never had them (an older one, or one of `write_index`) is compared by
    hashes instead and kept."""
    if (old_manifest.get("skipped") or {}) != manifest.get("skipped", {}):
        return True
    old_files = old_manifest["files"]
    return any(
        "size" in old_files.get(file, {})
        and (old_files[file]["size"], old_files[file].get("mtime_ns")) != (info.get("size"), info.get("mtime_ns"))
        for file, info in manifest["files"].items()
    )


@dataclass(frozen=True)
class FolderChanges:
    """How the documents folder differs from what a store was built from."""

    new: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.new or self.changed or self.removed)

    def summary(self) -> str:
        return f"{len(self.new)} new, {len(self.changed)} changed, {len(self.removed)} removed"


def folder_changes(manifest: dict, docs_dir: Path) -> FolderChanges:
    """The files added, changed and removed in `docs_dir` since the store of `manifest` was
    built: by size and mtime where the manifest has them, by content hash when those cannot
    tell (same size, other mtime; a manifest without them). A file skipped when indexing
    (empty, unreadable, a duplicate) is new only if it was not there then."""
    now = document_stats(docs_dir)
    indexed: dict[str, dict] = manifest["files"]
    skipped: dict[str, list[int]] = manifest.get("skipped") or {}
    new = sorted(set(now) - set(indexed) - set(skipped))
    removed = sorted(set(indexed) - set(now))
    changed = []
    for file in sorted(set(now) & (set(indexed) | set(skipped))):
        size, mtime_ns = now[file]
        info = indexed.get(file)
        if info is None:  # skipped then: changed if it is not the same file now
            if skipped[file] != [size, mtime_ns]:
                changed.append(file)
            continue
        if info.get("size") == size and info.get("mtime_ns") == mtime_ns:
            continue
        if info.get("size") not in (None, size) or file_sha256(docs_dir, file) != info.get("sha256"):
            changed.append(file)
    return FolderChanges(tuple(new), tuple(changed), tuple(removed))


def plan_vectors(plan: UpdatePlan, old: Store | None, embedder: Embedder, progress: Progress | None) -> np.ndarray:
    """Every planned chunk's own embedding: reused from the old store, or computed now."""
    vectors = np.zeros((len(plan.chunks), embedder.dim), dtype=np.float32)
    if plan.reused:
        new_rows, old_rows = map(list, zip(*plan.reused))
        vectors[new_rows] = old.raw_vectors(old_rows)
    if plan.to_embed:
        vectors[plan.to_embed] = embed(embedder, [plan.chunks[i].text for i in plan.to_embed], progress)
    return vectors


def embed(embedder: Embedder, texts: list[str], progress: Progress | None, batch_size: int = EMBED_BATCH) -> np.ndarray:
    """Embed in length-sorted batches (little padding), reporting progress after each batch."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        vectors[rows] = embedder.encode_passages([texts[i] for i in rows], batch_size=batch_size)
        if progress:
            progress("Embedding", min(start + batch_size, len(texts)), len(texts))
    return vectors


def language_offsets(vectors: np.ndarray, languages: list[str], prior: int = 10) -> dict[str, np.ndarray]:
    """Per language, its mean vector minus the global mean, shrunk towards zero when the
    language has few chunks (`prior` chunks of weight for the global mean)."""
    if not len(vectors):
        return {}
    overall = vectors.mean(axis=0)
    labels = np.array(languages)
    offsets = {}
    for language in sorted(set(languages)):
        members = vectors[labels == language]
        weight = len(members) / (len(members) + prior)
        offsets[language] = (weight * (members.mean(axis=0) - overall)).astype(np.float32)
    return offsets


def centred(vectors: np.ndarray, languages: list[str], offsets: dict[str, np.ndarray]) -> np.ndarray:
    """The vectors each store keeps: each chunk's own minus its language's offset."""
    if not len(vectors):
        return vectors
    return vectors - np.stack([offsets[language] for language in languages])
