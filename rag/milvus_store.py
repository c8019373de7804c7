"""The Milvus store: the index in Milvus collections, through pymilvus.

`--milvus-uri` is a local `*.db` path (milvus-lite's embedded database, one process at a
time) or `http(s)://host:19530` (milvus-lite's gRPC server, Milvus Standalone or a
Distributed cluster: the same client calls).

A generation is two collections, `polyglot_rag_<stamp>` (one row per chunk: the
language-centred vector, the BM25 weights as a sparse vector, file, paragraphs, language,
text) and `<that>_meta` (paragraph pieces with their number, page and OCR flag, per-file
hashes, the manifest and language offsets; Milvus wants a vector field in every
collection, so it carries a 2-d marker).
A build writes a whole new generation, then points the alias `polyglot_rag` at it: readers
always see a complete generation, and a build killed half way leaves the alias on the old
one. Each build drops the generations that are neither live nor the one just replaced
(kept for readers that opened it), so a killed build's leftovers go with the next build.
Rows are numbered as in the FAISS store, so both rank alike.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from .chunking import Chunk, ChunkingSettings
from .documents import Document, Paragraph, document_stats, read_documents, retitle_stored
from .embedding import Embedder
from .errors import RagError
from .keywords import KeywordIndex, query_vector
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

ALIAS = "polyglot_rag"
META = "_meta"
# Seconds before a call gives up: a read answers in milliseconds when the server is up.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 10
WRITE_TIMEOUT = 600
BATCH = 1000  # rows per insert or fetch
# pymilvus pings every 10 s, even between calls; a gRPC server left at gRPC's defaults
# (milvus-lite's) allows one ping per 5 minutes and none between calls, and may answer
# GOAWAY "too_many_pings" (seen here once, mid-build, followed by a lost connection). Every
# call has its own timeout, so rarer pings lose nothing.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 360_000, "grpc.keepalive_permit_without_calls": False}
MAX_TEXT_BYTES = 60000  # VARCHAR holds 65,535 bytes: longer paragraphs are stored in parts
MAX_FILE_BYTES = 4096
PARAGRAPH_FIELDS = ["number", "piece", "part", "text", "data"]
CHUNK_FIELDS = ["id", "file", "first", "last", "language", "text", "first_piece", "last_piece"]
HNSW = {"M": 32, "efConstruction": 40}  # as FAISS's IndexHNSWFlat(dim, 32)
HNSW_EF = 64


def shown_uri(uri: str) -> str:
    """The URI without any user:password in it, for messages."""
    parts = urlsplit(uri)
    return uri if "@" not in parts.netloc else uri.replace(parts.netloc, parts.netloc.rsplit("@", 1)[1])


@contextmanager
def milvus_errors(uri: str) -> Iterator[None]:
    """Milvus and gRPC failures become one line naming the server."""
    import grpc
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except (MilvusException, grpc.RpcError) as error:
        if isinstance(error, grpc.RpcError) and callable(getattr(error, "code", None)):
            message = f"{error.code().name}: {error.details()}"
        else:
            message = getattr(error, "message", None) or str(error)
        message = " ".join(message.split())[:300]
        lowered = message.lower()
        if "deadline" in lowered or "retry timeout" in lowered:
            raise RagError(f"Milvus at {shown_uri(uri)} did not answer in time ({message})") from None
        if "unavailable" in lowered or "connect" in lowered:
            raise RagError(f"cannot reach Milvus at {shown_uri(uri)} ({message}); is the server running?") from None
        raise RagError(f"Milvus at {shown_uri(uri)} failed: {message}") from None


def connect(settings):
    """A client for settings.milvus_uri; RagError naming the URI if it cannot be reached."""
    uri = settings.milvus_uri
    local = urlsplit(uri).scheme not in ("http", "https", "tcp", "grpc", "unix")
    if local:
        if not uri.endswith(".db"):
            raise RagError(f"--milvus-uri {uri!r} is neither http(s)://host:port nor a local file ending in .db")
        if not Path(uri).parent.is_dir():
            raise RagError(f"--milvus-uri {uri}: the folder {Path(uri).parent} does not exist")
        _check_local_database(Path(uri))
    import logging

    from pymilvus import MilvusClient

    # Failures become our one-line RagError (milvus-lite logs its own with a traceback).
    for name in ("pymilvus", "milvus_lite"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with milvus_errors(uri):
        try:
            return MilvusClient(
                uri=uri, token=settings.milvus_token or "", timeout=CONNECT_TIMEOUT, grpc_options=GRPC_OPTIONS
            )
        except RagError:
            raise
        except Exception as error:  # pymilvus raises several types for a server that is not there
            message = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
            if local:
                raise RagError(_local_failure(Path(uri), message)) from None
            raise RagError(f"cannot reach Milvus at {shown_uri(uri)} ({message}); is the server running?") from None


# milvus-lite keeps a local database in a folder holding this lock file and these folders.
LITE_LOCK = "LOCK"
LITE_FOLDER = "collections"
LITE_SERVER_PORT = 19530


def _check_local_database(path: Path) -> None:
    """Refuse a local path that is something else than milvus-lite's database folder (new, empty
    or its own): milvus-lite would fail on a file, and write its folders into a user's folder."""
    if not path.exists():
        return
    if not path.is_dir():
        raise RagError(
            f"--milvus-uri {path} is a file that is not a Milvus database (milvus-lite keeps its data in a "
            f"folder); name a path that does not exist yet"
        )
    try:
        foreign = any(path.iterdir()) and not (path / LITE_FOLDER).is_dir()
    except OSError as error:
        raise RagError(f"cannot open the Milvus database {path} ({error.strerror or error})") from None
    if foreign:
        raise RagError(
            f"--milvus-uri {path} is a folder that holds no Milvus database; name a path that does not exist yet"
        )


def _local_failure(path: Path, message: str) -> str:
    """Why milvus-lite could not open a local database, said as the user can act on it."""
    holder = lock_holder(path / LITE_LOCK)
    if holder is None:
        return f"cannot open the Milvus database {path} ({message})"
    pid, command = holder
    who = f" (pid {pid}: {command})" if pid else ""
    return (
        f"the Milvus database {path} is in use by another process{who}, and milvus-lite opens a .db in one "
        f"process at a time: wait for it to finish, or serve the database to every process with "
        f"`milvus-lite server --data-dir {path}` and use --milvus-uri http://127.0.0.1:{LITE_SERVER_PORT}"
    )


def lock_holder(lock: Path) -> tuple[int | None, str] | None:
    """The process holding a flock on `lock` (its pid and command; None and "" when it cannot be
    told), or None when no process holds it."""
    import fcntl

    try:
        info = lock.stat()
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
                    return int(fields[4]), _command(int(fields[4]))
    except OSError:  # no /proc: only whether it is held can be told
        pass
    try:
        descriptor = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    except OSError:
        return None, ""
    finally:
        os.close(descriptor)


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read(4096).split(b"\0")
    except OSError:
        return ""
    return " ".join(word.decode(errors="replace") for word in words if word)[:200]


def _literal(text: str) -> str:
    """A string literal for a Milvus filter expression."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _filter(language: str | None, files: frozenset[str] | None) -> str:
    """The filter expression on the chunk fields `language` and `file`: Milvus applies it
    before ranking, so a scope gets its own best rows."""
    parts = [f"language == {_literal(language)}"] if language else []
    if files is not None:
        parts.append(f"file in [{', '.join(_literal(file) for file in sorted(files))}]")
    return " and ".join(parts)


def _live(client, uri: str) -> str | None:
    """The collection the alias points to, or None if there is none yet."""
    with milvus_errors(uri):
        if ALIAS not in client.list_aliases(timeout=READ_TIMEOUT).get("aliases", []):
            return None
        return client.describe_alias(ALIAS, timeout=READ_TIMEOUT)["collection_name"]


class MilvusStore(Store):
    """One generation, read through the client; only the manifest and offsets are held here."""

    def __init__(self, client, uri: str, collection: str) -> None:
        self.client, self.uri, self.collection = client, uri, collection
        self.meta = collection + META
        with milvus_errors(uri):
            client.load_collection(collection, timeout=WRITE_TIMEOUT)
            client.load_collection(self.meta, timeout=WRITE_TIMEOUT)
            about = client.query(self.meta, filter='kind == "about"', output_fields=["data"], timeout=READ_TIMEOUT)
        if not about:
            raise RagError(
                f"Milvus collection {collection} at {shown_uri(uri)} is incomplete; rebuild with `rag index --rebuild`"
            )
        data = about[0]["data"]
        if data.get("format") != INDEX_FORMAT:
            raise RagError(
                f"the index in Milvus at {shown_uri(uri)} was built by another version of "
                f"polyglot-rag; run `rag index` to rebuild it"
            )
        self.replaces = data.get("replaces")
        self.offsets = {language: np.array(v, dtype=np.float32) for language, v in data["offsets"].items()}
        self.manifest = {key: data[key] for key in ("format", "embedder", "chunking", "index_type")}
        self.manifest["files"] = {
            row["file"]: row["data"] for row in self._iterate(self.meta, 'kind == "file"', ["file", "data"])
        }
        self.manifest["skipped"] = {
            row["file"]: row["data"]["stat"] for row in self._iterate(self.meta, 'kind == "skipped"', ["file", "data"])
        }
        self._paragraphs: dict[tuple[str, int], Paragraph] = {}
        retitle_stored(self.manifest["files"], lambda file, n: [p.text for p in self.paragraphs_of(file, n)])

    def _iterate(self, collection: str, expression: str, fields: list[str]) -> Iterator[dict]:
        with milvus_errors(self.uri):
            iterator = self.client.query_iterator(
                collection, batch_size=BATCH, filter=expression, output_fields=fields, timeout=READ_TIMEOUT
            )
            try:
                while batch := iterator.next():
                    yield from batch
            finally:
                iterator.close()

    def _get(self, rows: list[int], fields: list[str]) -> dict[int, dict]:
        found: dict[int, dict] = {}
        with milvus_errors(self.uri):
            for start in range(0, len(rows), BATCH):
                for row in self.client.get(
                    self.collection, ids=rows[start : start + BATCH], output_fields=fields, timeout=READ_TIMEOUT
                ):
                    found[int(row["id"])] = row
        missing = set(rows) - set(found)
        if missing:
            raise RagError(
                f"Milvus collection {self.collection} at {shown_uri(self.uri)} lacks rows "
                f"{sorted(missing)[:5]}; rebuild with `rag index --rebuild`"
            )
        return found

    @property
    def chunk_count(self) -> int:
        return sum(info["chunks"] for info in self.files.values())

    def chunks_at(self, rows: list[int]) -> list[Chunk]:
        found = self._get(list(rows), CHUNK_FIELDS)
        return [_chunk(found[row]) for row in rows]

    def chunks_by_file(self) -> dict[str, list[tuple[int, Chunk]]]:
        by_file: dict[str, list[tuple[int, Chunk]]] = {}
        for row in self._iterate(self.collection, "id >= 0", CHUNK_FIELDS):
            by_file.setdefault(row["file"], []).append((int(row["id"]), _chunk(row)))
        for chunks in by_file.values():
            chunks.sort(key=lambda pair: pair[0])
        return by_file

    def search(
        self, query: np.ndarray, k: int, language: str | None = None, files: frozenset[str] | None = None
    ) -> list[tuple[int, float]]:
        k = min(k, self.chunk_count)
        if k == 0 or files is not None and not files:
            return []
        params = {"metric_type": "IP", "params": {"ef": max(HNSW_EF, k)}}
        with milvus_errors(self.uri):
            found = self.client.search(
                self.collection,
                data=[query.astype(np.float32).tolist()],
                anns_field="vector",
                limit=k,
                search_params=params,
                filter=_filter(language, files),
                timeout=READ_TIMEOUT,
            )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def centred_scores(self, query: np.ndarray, rows: list[int]) -> np.ndarray:
        found = self._get(list(rows), ["id", "vector"])
        return np.array([found[row]["vector"] for row in rows], dtype=np.float32) @ query

    def keyword_search(self, question: str, n: int, files: frozenset[str] | None = None) -> dict[int, float]:
        vector = query_vector(question)
        if not vector or files is not None and not files:
            return {}
        with milvus_errors(self.uri):
            found = self.client.search(
                self.collection,
                data=[vector],
                anns_field="keywords",
                limit=n,
                search_params={"metric_type": "IP"},
                filter=_filter(None, files),
                timeout=READ_TIMEOUT,
            )
        return {int(hit["id"]): float(hit["distance"]) for hit in found[0] if hit["distance"] > 0}

    def paragraph(self, file: str, piece: int) -> Paragraph:
        key = (file, piece)
        if key not in self._paragraphs:
            expression = f'kind == "paragraph" and file == {_literal(file)} and piece == {int(piece)}'
            with milvus_errors(self.uri):
                parts = self.client.query(
                    self.meta, filter=expression, output_fields=PARAGRAPH_FIELDS, timeout=READ_TIMEOUT
                )
            if not parts:
                raise RagError(f"{file} has no paragraph piece {piece} in the index")
            self._paragraphs[key] = _paragraph(file, parts)
        return self._paragraphs[key]

    def paragraphs_of(self, file: str, first: int | None = None) -> list[Paragraph]:
        """The file's paragraph pieces in order (only its first `first` when given)."""
        parts: dict[int, list[dict]] = {}
        expression = f'kind == "paragraph" and file == {_literal(file)}'
        if first is not None:
            expression += f" and piece <= {int(first)}"
        for row in self._iterate(self.meta, expression, PARAGRAPH_FIELDS):
            parts.setdefault(row["piece"], []).append(row)
        return [_paragraph(file, parts[piece]) for piece in sorted(parts)]

    def raw_vectors(self, rows: list[int]) -> np.ndarray:
        found = self._get(list(rows), ["id", "vector", "language"])
        return np.array(
            [np.asarray(found[row]["vector"], dtype=np.float32) + self.offsets[found[row]["language"]] for row in rows],
            dtype=np.float32,
        ).reshape(len(rows), -1)


def _chunk(row: dict) -> Chunk:
    return Chunk(
        row["file"],
        int(row["first"]),
        int(row["last"]),
        row["text"],
        row["language"],
        int(row["first_piece"]),
        int(row["last_piece"]),
    )


def _paragraph(file: str, parts: list[dict]) -> Paragraph:
    """One paragraph piece from its rows (a long text is stored in several parts)."""
    parts = sorted(parts, key=lambda p: p["part"])
    place = parts[0]["data"] or {}
    text = "".join(p["text"] for p in parts)
    number, piece = int(parts[0]["number"]), int(parts[0]["piece"])
    return Paragraph(file, number, piece, text, place.get("page"), bool(place.get("ocr")))


def exists(settings) -> bool:
    return _live(connect(settings), settings.milvus_uri) is not None


def open_milvus(settings) -> MilvusStore:
    """The live generation; RagError if there is none or the server cannot be reached."""
    client = connect(settings)
    collection = _live(client, settings.milvus_uri)
    if collection is None:
        raise RagError(
            f"no index in Milvus at {shown_uri(settings.milvus_uri)} (build one with `rag index --store milvus`)"
        )
    return MilvusStore(client, settings.milvus_uri, collection)


# -- writing -----------------------------------------------------------------------------
def _schemas(dim: int):
    from pymilvus import DataType, MilvusClient

    chunks = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    chunks.add_field("id", DataType.INT64, is_primary=True)
    chunks.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    chunks.add_field("keywords", DataType.SPARSE_FLOAT_VECTOR)
    chunks.add_field("file", DataType.VARCHAR, max_length=MAX_FILE_BYTES)
    chunks.add_field("first", DataType.INT64)
    chunks.add_field("last", DataType.INT64)
    chunks.add_field("first_piece", DataType.INT64)
    chunks.add_field("last_piece", DataType.INT64)
    chunks.add_field("language", DataType.VARCHAR, max_length=16)
    chunks.add_field("text", DataType.VARCHAR, max_length=65535)
    meta = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    meta.add_field("id", DataType.INT64, is_primary=True)
    meta.add_field("kind", DataType.VARCHAR, max_length=16)
    meta.add_field("file", DataType.VARCHAR, max_length=MAX_FILE_BYTES)
    meta.add_field("number", DataType.INT64)
    meta.add_field("piece", DataType.INT64)
    meta.add_field("part", DataType.INT64)
    meta.add_field("text", DataType.VARCHAR, max_length=65535)
    meta.add_field("data", DataType.JSON)
    meta.add_field("marker", DataType.FLOAT_VECTOR, dim=2)
    return chunks, meta


def _index_params(client, index_type: str):
    chunks = client.prepare_index_params()
    if index_type == "hnsw":
        chunks.add_index("vector", index_type="HNSW", metric_type="IP", params=HNSW)
    else:
        chunks.add_index("vector", index_type="FLAT", metric_type="IP")
    chunks.add_index("keywords", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    meta = client.prepare_index_params()
    meta.add_index("marker", index_type="FLAT", metric_type="L2")
    return chunks, meta


def _text_parts(text: str) -> list[str]:
    """`text` cut into pieces of at most MAX_TEXT_BYTES UTF-8 bytes, on character boundaries."""
    parts, current, size = [], [], 0
    for character in text:
        width = len(character.encode("utf-8"))
        if size + width > MAX_TEXT_BYTES:
            parts.append("".join(current))
            current, size = [], 0
        current.append(character)
        size += width
    parts.append("".join(current))
    return parts


def _meta_rows(
    manifest: dict, offsets: dict[str, np.ndarray], documents: list[Document], replaces: str | None
) -> Iterator[dict]:
    about = {key: manifest[key] for key in ("format", "embedder", "chunking", "index_type")}
    about.update(offsets={language: v.tolist() for language, v in offsets.items()}, replaces=replaces)
    blank = {"file": "", "number": 0, "piece": 0, "part": 0, "text": "", "data": {}, "marker": [1.0, 0.0]}
    yield {**blank, "kind": "about", "data": about}
    for file, info in manifest["files"].items():
        yield {**blank, "kind": "file", "file": file, "data": info}
    for file, stat in (manifest.get("skipped") or {}).items():  # one row each: a JSON value has a size limit
        yield {**blank, "kind": "skipped", "file": file, "data": {"stat": stat}}
    for document in documents:
        for paragraph in document.paragraphs:
            text = paragraph.text
            pieces = [text] if len(text) <= MAX_TEXT_BYTES // 4 else _text_parts(text)
            place = {"page": paragraph.page, "ocr": paragraph.ocr} if paragraph.page is not None else {}
            for part, piece in enumerate(pieces):
                yield {
                    **blank,
                    "kind": "paragraph",
                    "file": paragraph.file,
                    "number": paragraph.number,
                    "piece": paragraph.piece,
                    "part": part,
                    "text": piece,
                    "data": place,
                }


def _insert(client, collection: str, rows: Iterator[dict]) -> None:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            client.insert(collection, batch, timeout=WRITE_TIMEOUT)
            batch = []
    if batch:
        client.insert(collection, batch, timeout=WRITE_TIMEOUT)


def _write_generation(
    client, manifest: dict, chunks: list[Chunk], documents: list[Document], vectors: np.ndarray, replaces: str | None
) -> str:
    """Create and fill a new generation's two collections; the alias does not move yet."""
    collection = f"{ALIAS}_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:8]}"
    languages = [c.language for c in chunks]
    offsets = language_offsets(vectors, languages)
    stored = centred(vectors, languages, offsets)
    keywords = KeywordIndex.build([c.text for c in chunks]).document_vectors() if chunks else []
    chunk_schema, meta_schema = _schemas(vectors.shape[1])
    chunk_index, meta_index = _index_params(client, manifest["index_type"])
    # The meta collection first: a generation whose chunks exist is then always complete
    # enough to be recognised, and dropped, as a leftover.
    client.create_collection(
        collection + META,
        schema=meta_schema,
        index_params=meta_index,
        consistency_level="Strong",
        timeout=WRITE_TIMEOUT,
    )
    client.create_collection(
        collection, schema=chunk_schema, index_params=chunk_index, consistency_level="Strong", timeout=WRITE_TIMEOUT
    )
    _insert(
        client,
        collection,
        (
            {
                "id": row,
                "vector": stored[row].tolist(),
                "keywords": keywords[row],
                "file": chunk.file,
                "first": chunk.first,
                "last": chunk.last,
                "first_piece": chunk.first_piece,
                "last_piece": chunk.last_piece,
                "language": chunk.language,
                "text": chunk.text,
            }
            for row, chunk in enumerate(chunks)
        ),
    )
    rows = _meta_rows(manifest, offsets, documents, replaces)
    _insert(client, collection + META, ({**row, "id": n} for n, row in enumerate(rows)))
    client.flush(collection, timeout=WRITE_TIMEOUT)
    client.flush(collection + META, timeout=WRITE_TIMEOUT)
    return collection


def _switch(client, collection: str, had_alias: bool) -> None:
    if had_alias:
        client.alter_alias(collection, ALIAS, timeout=WRITE_TIMEOUT)
    else:
        client.create_alias(collection, ALIAS, timeout=WRITE_TIMEOUT)


def _drop_leftovers(client, keep: set[str | None]) -> None:
    """Every generation of ours but those in `keep`: old ones and killed builds' remains."""
    for name in client.list_collections(timeout=READ_TIMEOUT):
        if name.startswith(ALIAS + "_") and name.removesuffix(META) not in keep:
            client.drop_collection(name, timeout=WRITE_TIMEOUT)


def _replace_live(
    client, uri: str, manifest: dict, chunks: list[Chunk], documents: list[Document], vectors: np.ndarray
) -> MilvusStore:
    """Write a whole new generation, make it live, drop what is neither it nor the one it replaced."""
    live = _live(client, uri)
    with milvus_errors(uri):
        collection = _write_generation(client, manifest, chunks, documents, vectors, replaces=live)
        _switch(client, collection, had_alias=live is not None)
        _drop_leftovers(client, keep={collection, live})
    return MilvusStore(client, uri, collection)


def write_milvus(
    settings,
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    embedder: Embedder,
    chunking: ChunkingSettings,
) -> MilvusStore:
    """Write chunks embedded elsewhere as the live Milvus index (as rag.index.write_index does
    for FAISS), e.g. a synthetic corpus too large to embed."""
    manifest = manifest_of(documents, chunks, vectors, embedder, chunking, settings.index_type)
    return _replace_live(connect(settings), settings.milvus_uri, manifest, chunks, documents, vectors)


def update_milvus(
    settings,
    embedder: Embedder,
    chunking: ChunkingSettings,
    rebuild: bool = False,
    progress: Progress | None = None,
    excluded: Collection[str] = (),
) -> tuple[MilvusStore, UpdateReport]:
    """Bring the Milvus index in line with the documents folder, re-embedding only changed files.
    One writer at a time: a second concurrent build could drop the first one's collections."""
    started = time.perf_counter()
    if settings.index_type not in ("flat", "hnsw"):
        raise RagError(f"index type must be flat or hnsw, not {settings.index_type!r}")
    stats = document_stats(settings.docs_dir)  # before reading: see record_stats
    documents, skipped = read_documents(
        settings.docs_dir, progress and (lambda count: progress("Reading", count, 0)), excluded
    )
    too_long = [d.file for d in documents if len(d.file.encode("utf-8")) > MAX_FILE_BYTES]
    if too_long:
        raise RagError(f"file name {too_long[0]!r} is longer than {MAX_FILE_BYTES} bytes, Milvus's limit here")
    client, uri = connect(settings), settings.milvus_uri
    manifest = new_manifest(embedder, chunking, settings.index_type)
    live = _live(client, uri)
    old, reason = None, "--rebuild asked" if rebuild else "no index yet" if live is None else None
    if live and not rebuild:
        try:
            old = MilvusStore(client, uri, live)
            reason = rebuild_reason(old.manifest, manifest)
        except RagError as error:  # an incomplete or older generation is rebuilt; a server problem is not
            if "rag index" not in str(error):
                raise
            reason = str(error).split(";")[0]
        old = None if reason else old
    plan = plan_update(documents, skipped, manifest, old, reason, chunking, embedder, progress)
    record_stats(manifest, stats)
    report = plan.report
    if old and not report.changed and not stats_changed(old.manifest, manifest):
        with milvus_errors(uri):
            _drop_leftovers(client, keep={live, old.replaces})
        report.seconds = time.perf_counter() - started
        return old, report
    vectors = plan_vectors(plan, old, embedder, progress)
    store = _replace_live(client, uri, manifest, plan.chunks, documents, vectors)
    report.seconds = time.perf_counter() - started
    return store, report


# The store of `--store milvus` (rag/backends.py); the token never appears in its location.
STORE = StoreBackend(
    exists=exists,
    open=open_milvus,
    update=update_milvus,
    location=lambda settings: f"Milvus at {settings.milvus_uri}",
)
